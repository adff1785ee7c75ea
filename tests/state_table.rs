//! The Table client and the Table state store against a real Azurite (started per test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use defender_sentinel_sync::adapters::table::{
    BatchOp, Entity, IfMatch, Query, TableClient, TableClientOptions, TableError,
};
use defender_sentinel_sync::config::StorageConfig;
use defender_sentinel_sync::domain::{DefenderIncidentId, TenantId};
use defender_sentinel_sync::state::table::TableStateStore;
use defender_sentinel_sync::state::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use support::azurite::Azurite;
use time::macros::datetime;

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn client(az: &Azurite, table: &str) -> TableClient {
    let cfg = StorageConfig::parse_connection_string(&az.connection_string()).unwrap();
    TableClient::new(
        &cfg,
        table,
        Arc::new(support::NoTokens),
        tenant("t0"),
        TableClientOptions::default(),
    )
    .unwrap()
}

async fn store(az: &Azurite, table: &str) -> TableStateStore {
    let cfg = StorageConfig::parse_connection_string(&az.connection_string()).unwrap();
    let s = TableStateStore::connect(
        &cfg,
        table,
        Arc::new(support::NoTokens),
        tenant("t0"),
        TableClientOptions::default(),
    )
    .unwrap();
    s.ensure_ready().await.unwrap();
    s.ensure_ready().await.unwrap(); // idempotent
    s
}

fn incident(t: &str, id: &str) -> IncidentState {
    IncidentState::new(tenant(t), DefenderIncidentId::parse(id).unwrap())
}

#[tokio::test]
async fn client_single_entity_operations_with_etags() {
    let az = Azurite::start();
    let c = client(&az, "ops");
    c.create_table_if_missing().await.unwrap();
    c.create_table_if_missing().await.unwrap();

    let e1 = c
        .insert(&Entity::new("p", "r").with("a", 1).with("s", "x y 'z'"))
        .await
        .unwrap();
    assert!(matches!(
        c.insert(&Entity::new("p", "r")).await,
        Err(TableError::Conflict(_))
    ));
    let got = c.get("p", "r").await.unwrap().unwrap();
    assert_eq!(
        (got.etag.as_deref(), got.str("s"), got.properties.get("a")),
        (Some(e1.as_str()), Some("x y 'z'"), Some(&1.into()))
    );
    assert!(c.get("p", "missing").await.unwrap().is_none());

    let e2 = c
        .replace(
            &Entity::new("p", "r").with("b", 2),
            &IfMatch::ETag(e1.clone()),
        )
        .await
        .unwrap();
    assert_ne!(e1, e2);
    let stale = c
        .replace(
            &Entity::new("p", "r").with("c", 3),
            &IfMatch::ETag(e1.clone()),
        )
        .await;
    assert!(
        matches!(stale, Err(TableError::PreconditionFailed(_))),
        "{stale:?}"
    );
    let got = c.get("p", "r").await.unwrap().unwrap();
    assert!(
        got.properties.get("a").is_none() && got.properties.get("b") == Some(&2.into()),
        "replace drops old properties"
    );

    assert!(matches!(
        c.merge(&Entity::new("p", "r").with("c", 3), &IfMatch::ETag(e1))
            .await,
        Err(TableError::PreconditionFailed(_))
    ));
    let e3 = c
        .merge(
            &Entity::new("p", "r").with("c", 3),
            &IfMatch::ETag(e2.clone()),
        )
        .await
        .unwrap();
    let got = c.get("p", "r").await.unwrap().unwrap();
    assert_eq!(
        (got.properties.get("b"), got.properties.get("c")),
        (Some(&2.into()), Some(&3.into())),
        "merge keeps old properties"
    );
    assert!(matches!(
        c.replace(&Entity::new("p", "nope"), &IfMatch::Any).await,
        Err(TableError::NotFound(_))
    ));

    c.upsert(&Entity::new("p", "u").with("v", true))
        .await
        .unwrap();
    c.upsert(&Entity::new("p", "u").with("v", false))
        .await
        .unwrap();
    assert_eq!(
        c.get("p", "u").await.unwrap().unwrap().properties.get("v"),
        Some(&false.into())
    );

    assert!(matches!(
        c.delete("p", "r", &IfMatch::ETag(e2)).await,
        Err(TableError::PreconditionFailed(_))
    ));
    c.delete("p", "r", &IfMatch::ETag(e3)).await.unwrap();
    assert!(c.get("p", "r").await.unwrap().is_none());

    let q = Query {
        filter: Some("PartitionKey eq 'p' and v eq false".into()),
        ..Query::default()
    };
    let rows = c.query_all(&q).await.unwrap();
    assert_eq!(
        rows.iter().map(|e| e.row_key.as_str()).collect::<Vec<_>>(),
        ["u"]
    );
    assert!(rows[0].etag.is_some(), "query results carry their ETag");

    // A missing table is an error, not a missing entity.
    let res = client(&az, "nosuchtable").get("p", "r").await;
    assert!(
        matches!(&res, Err(TableError::NotFound(m)) if m.contains("TableNotFound")),
        "{res:?}"
    );
}

#[tokio::test]
async fn transactions_are_all_or_nothing() {
    let az = Azurite::start();
    let c = client(&az, "batches");
    c.create_table_if_missing().await.unwrap();
    let etags = c
        .batch(&[
            BatchOp::Insert(Entity::new("b", "1").with("n", 1)),
            BatchOp::Upsert(Entity::new("b", "2").with("n", 2)),
        ])
        .await
        .unwrap();
    assert!(etags.iter().all(Option::is_some));
    let e1 = etags[0].clone().unwrap();

    // One stale ETag fails the whole transaction: the insert of row 3 must not be there.
    let res = c
        .batch(&[
            BatchOp::Insert(Entity::new("b", "3")),
            BatchOp::Replace(
                Entity::new("b", "1").with("n", 10),
                IfMatch::ETag("W/\"datetime'2000-01-01T00%3A00%3A00Z'\"".into()),
            ),
        ])
        .await;
    assert!(
        matches!(res, Err(TableError::PreconditionFailed(_))),
        "{res:?}"
    );
    assert!(c.get("b", "3").await.unwrap().is_none());
    assert_eq!(
        c.get("b", "1").await.unwrap().unwrap().etag,
        Some(e1.clone())
    );

    // Insert of an existing row fails it too.
    assert!(matches!(
        c.batch(&[
            BatchOp::Insert(Entity::new("b", "4")),
            BatchOp::Insert(Entity::new("b", "1"))
        ])
        .await,
        Err(TableError::Conflict(_))
    ));
    assert!(c.get("b", "4").await.unwrap().is_none());

    let res = c
        .batch(&[
            BatchOp::Merge(Entity::new("b", "1").with("m", 1), IfMatch::ETag(e1)),
            BatchOp::Delete {
                partition_key: "b".into(),
                row_key: "2".into(),
                if_match: IfMatch::Any,
            },
        ])
        .await
        .unwrap();
    assert!(res[0].is_some() && res[1].is_none());
    assert_eq!(
        c.get("b", "1").await.unwrap().unwrap().properties.get("m"),
        Some(&1.into())
    );
    assert!(c.get("b", "2").await.unwrap().is_none());
}

#[tokio::test]
async fn queries_page_with_continuation_tokens_over_1050_entities() {
    let az = Azurite::start();
    let c = client(&az, "paging");
    c.create_table_if_missing().await.unwrap();
    let rows: Vec<Entity> = (0..1050)
        .map(|i| Entity::new("page", format!("{i:05}")).with("i", i))
        .collect();
    for chunk in rows.chunks(100) {
        c.batch(
            &chunk
                .iter()
                .cloned()
                .map(BatchOp::Insert)
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    }
    c.insert(&Entity::new("other", "x")).await.unwrap();

    let q = Query {
        filter: Some("PartitionKey eq 'page'".into()),
        ..Query::default()
    };
    let first = c.query(&q, None).await.unwrap();
    assert_eq!(first.entities.len(), 1000, "the service pages at 1,000");
    let cont = first
        .continuation
        .clone()
        .expect("a continuation token after a full page");
    let second = c.query(&q, Some(&cont)).await.unwrap();
    assert_eq!(second.entities.len(), 50);
    assert!(second.continuation.is_none());

    let all = c.query_all(&q).await.unwrap();
    let keys: BTreeSet<_> = all.iter().map(|e| e.row_key.clone()).collect();
    assert_eq!((all.len(), keys.len()), (1050, 1050));

    let small = Query {
        top: Some(400),
        ..q
    };
    let page = c.query(&small, None).await.unwrap();
    assert_eq!(page.entities.len(), 400);
    assert_eq!(c.query_all(&small).await.unwrap().len(), 1050);
}

#[tokio::test]
async fn wrong_account_key_is_an_auth_error_naming_the_role() {
    let az = Azurite::start();
    let cs = az
        .connection_string()
        .replace(support::azurite::KEY, "d3JvbmdrZXl3cm9uZ2tleQ==");
    let cfg = StorageConfig::parse_connection_string(&cs).unwrap();
    let s = TableStateStore::connect(
        &cfg,
        "auth",
        Arc::new(support::NoTokens),
        tenant("t0"),
        TableClientOptions::default(),
    )
    .unwrap();
    match s.ensure_ready().await {
        Err(StateError::Auth(m)) => assert!(m.contains("Storage Table Data Contributor"), "{m}"),
        other => panic!("expected an auth error, got {other:?}"),
    }
}

#[tokio::test]
async fn checkpoints_retries_and_health_round_trip() {
    let az = Azurite::start();
    let s = store(&az, "records").await;
    let t = tenant("contoso.onmicrosoft.com");
    assert!(s.checkpoint(&t).await.unwrap().is_none());
    let cp = Checkpoint {
        watermark: datetime!(2026-11-01 10:00:00 UTC),
        ids_at_watermark: ["1".to_owned(), "2".to_owned()].into(),
    };
    let e1 = s
        .put_checkpoint(&t, &cp, Precondition::Absent)
        .await
        .unwrap();
    assert!(matches!(
        s.put_checkpoint(&t, &cp, Precondition::Absent).await,
        Err(StateError::Conflict)
    ));
    let got = s.checkpoint(&t).await.unwrap().unwrap();
    assert_eq!(
        (got.value.clone(), got.etag.clone()),
        (cp.clone(), e1.clone())
    );
    let cp2 = Checkpoint {
        watermark: datetime!(2026-11-01 11:00:00 UTC),
        ids_at_watermark: BTreeSet::new(),
    };
    let e2 = s
        .put_checkpoint(&t, &cp2, Precondition::Matches(e1.clone()))
        .await
        .unwrap();
    assert!(matches!(
        s.put_checkpoint(&t, &cp, Precondition::Matches(e1)).await,
        Err(StateError::Conflict)
    ));
    s.put_checkpoint(&t, &cp2, Precondition::Any).await.unwrap();
    assert_ne!(s.checkpoint(&t).await.unwrap().unwrap().etag, e2);
    assert!(s.checkpoint(&tenant("other")).await.unwrap().is_none());

    // The state horizon: absent, inserted once, then moved only with its ETag.
    assert!(s.state_horizon(&t).await.unwrap().is_none());
    let h1 = StateHorizon::at(datetime!(2026-11-01 10:00:00 UTC));
    let eh = s
        .put_state_horizon(&t, &h1, Precondition::Absent)
        .await
        .unwrap();
    assert!(matches!(
        s.put_state_horizon(&t, &h1, Precondition::Absent).await,
        Err(StateError::Conflict)
    ));
    let h2 = StateHorizon::at(datetime!(2026-11-01 12:00:00 UTC));
    s.put_state_horizon(&t, &h2, Precondition::Matches(eh.clone()))
        .await
        .unwrap();
    assert!(matches!(
        s.put_state_horizon(&t, &h1, Precondition::Matches(eh))
            .await,
        Err(StateError::Conflict)
    ));
    assert_eq!(s.state_horizon(&t).await.unwrap().unwrap().value, h2);
    assert!(s.state_horizon(&tenant("other")).await.unwrap().is_none());

    let entry = |id: &str, attempts| RetryEntry {
        incident_id: DefenderIncidentId::parse(id).unwrap(),
        last_update: datetime!(2026-11-01 09:00:00 UTC),
        attempts,
        last_error: "400 bad".into(),
        next_attempt: datetime!(2026-11-01 09:05:00 UTC),
        reverse: false,
    };
    s.put_retry(&t, &entry("7", 1)).await.unwrap();
    s.put_retry(&t, &entry("8", 1)).await.unwrap();
    s.put_retry(&t, &entry("7", 2)).await.unwrap();
    s.put_retry(&tenant("other"), &entry("9", 1)).await.unwrap();
    let mut set = s.retry_set(&t).await.unwrap();
    set.sort_by(|a, b| a.incident_id.cmp(&b.incident_id));
    assert_eq!(set, vec![entry("7", 2), entry("8", 1)]);
    s.remove_retry(&t, &DefenderIncidentId::parse("7").unwrap())
        .await
        .unwrap();
    s.remove_retry(&t, &DefenderIncidentId::parse("7").unwrap())
        .await
        .unwrap(); // idempotent
    assert_eq!(s.retry_set(&t).await.unwrap(), vec![entry("8", 1)]);

    assert!(s.sentinel_checkpoint().await.unwrap().is_none());
    let sc = SentinelCheckpoint {
        watermark: datetime!(2026-11-02 00:00:00 UTC),
    };
    let e = s
        .put_sentinel_checkpoint(&sc, Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(
        s.sentinel_checkpoint().await.unwrap().unwrap(),
        Versioned {
            value: sc.clone(),
            etag: e.clone()
        }
    );
    s.put_sentinel_checkpoint(&sc, Precondition::Matches(e.clone()))
        .await
        .unwrap();
    assert!(matches!(
        s.put_sentinel_checkpoint(&sc, Precondition::Matches(e))
            .await,
        Err(StateError::Conflict)
    ));

    assert!(s.tenant_health(&t).await.unwrap().is_none());
    let h = TenantHealth {
        incidents_seen: 5,
        last_errors: vec!["x".into()],
        last_cycle_completed: true,
        ..TenantHealth::default()
    };
    s.put_tenant_health(&t, &h).await.unwrap();
    s.put_tenant_health(&t, &h).await.unwrap();
    assert_eq!(s.tenant_health(&t).await.unwrap(), Some(h));
}

#[tokio::test]
async fn incident_states_single_batched_and_failed_listing() {
    let az = Azurite::start();
    let s = store(&az, "incidents").await;
    let mut a = incident("t1", "1");
    let e = s.put_incident(&a, Precondition::Absent).await.unwrap();
    a.last_outcome = Some(Outcome::Failed);
    a.last_error = Some("boom".into());
    a.updated_at = Some(datetime!(2026-11-01 10:00:00 UTC));
    let e2 = s
        .put_incident(&a, Precondition::Matches(e.clone()))
        .await
        .unwrap();
    assert!(matches!(
        s.put_incident(&a, Precondition::Matches(e)).await,
        Err(StateError::Conflict)
    ));
    assert_eq!(
        s.incident(&a.sentinel_name).await.unwrap().unwrap(),
        Versioned {
            value: a.clone(),
            etag: e2
        }
    );

    // 150 new states of one group (partition): two transactions.
    let group = |i: u32| s.incident_group(&incident("t2", &i.to_string()).sentinel_name);
    let g = group(100);
    let many: Vec<_> = (100..)
        .filter(|&i| group(i) == g)
        .take(150)
        .map(|i| (incident("t2", &i.to_string()), Precondition::Absent))
        .collect();
    let etags = s.put_incidents(&many).await.unwrap();
    // States spread over several groups; one call may not span two of them.
    let other = (100..).find(|&i| group(i) != g).unwrap();
    let other = incident("t2", &other.to_string());
    let res = s
        .put_incidents(&[
            (other.clone(), Precondition::Absent),
            (many[0].0.clone(), Precondition::Any),
        ])
        .await;
    assert!(matches!(res, Err(StateError::Invalid(_))), "{res:?}");
    assert!(
        s.incident(&other.sentinel_name).await.unwrap().is_none(),
        "nothing written"
    );
    s.put_incident(&other, Precondition::Absent).await.unwrap();
    assert_eq!(etags.len(), 150);
    let got = s
        .incident(&many[120].0.sentinel_name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.value, got.etag),
        (many[120].0.clone(), etags[120].clone())
    );

    // A batch with one stale precondition writes nothing.
    let mut changed = many[0].0.clone();
    changed.last_error = Some("changed".into());
    let fresh = (100_000..)
        .map(|i: u32| incident("t2", &i.to_string()))
        .find(|f| s.incident_group(&f.sentinel_name) == g)
        .unwrap();
    let res = s
        .put_incidents(&[
            (fresh.clone(), Precondition::Absent),
            (
                changed.clone(),
                Precondition::Matches(ETag("W/\"datetime'2000-01-01T00%3A00%3A00Z'\"".into())),
            ),
        ])
        .await;
    assert!(matches!(res, Err(StateError::Conflict)), "{res:?}");
    assert!(s.incident(&fresh.sentinel_name).await.unwrap().is_none());
    // The same incident twice in one call is refused (as by the memory store).
    let res = s
        .put_incidents(&[
            (fresh.clone(), Precondition::Any),
            (fresh.clone(), Precondition::Any),
        ])
        .await;
    assert!(matches!(res, Err(StateError::Invalid(_))), "{res:?}");
    // With the right ETag it goes through.
    s.put_incidents(&[
        (fresh.clone(), Precondition::Absent),
        (changed.clone(), Precondition::Matches(etags[0].clone())),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.incident(&changed.sentinel_name)
            .await
            .unwrap()
            .unwrap()
            .value,
        changed
    );

    // Read many at once (several queries of 14 names): each with the ETag a single read gives;
    // names never written are simply absent.
    let mut names: Vec<_> = many[..40].iter().map(|(v, _)| v.sentinel_name).collect();
    names.push(incident("t2", "no-such").sentinel_name);
    names.push(changed.sentinel_name);
    names.push(other.sentinel_name);
    let states = s.incidents(&names).await.unwrap();
    assert_eq!(
        states.len(),
        41,
        "the first 40 (the first of them is `changed`), `other` (another group), not the unknown one"
    );
    assert!(!states.contains_key(&incident("t2", "no-such").sentinel_name));
    for name in &names[1..40] {
        assert_eq!(
            states.get(name),
            s.incident(name).await.unwrap().as_ref(),
            "{name}"
        );
    }
    assert_eq!(states[&changed.sentinel_name].value, changed);
    assert!(s.incidents(&[]).await.unwrap().is_empty());

    let mut parked = incident("t1", "2");
    parked.last_outcome = Some(Outcome::Parked);
    parked.updated_at = Some(datetime!(2026-11-01 12:00:00 UTC));
    s.put_incident(&parked, Precondition::Any).await.unwrap();
    let failed = s.failed_incidents(10).await.unwrap();
    assert_eq!(failed, vec![parked.clone(), a.clone()]);
    assert_eq!(s.failed_incidents(1).await.unwrap(), vec![parked]);
}

#[tokio::test]
async fn large_states_are_split_and_over_one_mib_is_invalid() {
    let az = Azurite::start();
    let s = store(&az, "large").await;
    let mut big = incident("t1", "1");
    // ~500 KB of JSON: many more than one 64 KiB property.
    for i in 0..5000 {
        big.shipped_alerts
            .insert(format!("da{i:08}-alert-id"), format!("{:064x}", i));
    }
    let e = s.put_incident(&big, Precondition::Absent).await.unwrap();
    let got = s.incident(&big.sentinel_name).await.unwrap().unwrap();
    assert_eq!((got.value, got.etag), (big.clone(), e));

    for i in 5000..12000 {
        big.shipped_alerts
            .insert(format!("da{i:08}-alert-id"), format!("{:064x}", i));
    }
    let res = s.put_incident(&big, Precondition::Any).await;
    assert!(
        matches!(&res, Err(StateError::Invalid(m)) if m.contains("1 MiB")),
        "{res:?}"
    );
}

/// Read-modify-write with retry on Conflict from many tasks at once: every update survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_lose_an_update() {
    let az = Azurite::start();
    let s = Arc::new(store(&az, "concurrent").await);
    let base = incident("t1", "42");
    s.put_incident(&base, Precondition::Absent).await.unwrap();
    let (writers, updates) = (6, 8);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let s = s.clone();
        let name = base.sentinel_name;
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for u in 0..updates {
                loop {
                    let cur = s.incident(&name).await.unwrap().unwrap();
                    let mut next = cur.value.clone();
                    next.mirrored_comments.insert(format!("w{w}-u{u}"));
                    tokio::task::yield_now().await;
                    match s.put_incident(&next, Precondition::Matches(cur.etag)).await {
                        Ok(_) => break,
                        Err(StateError::Conflict) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let last = s
        .incident(&base.sentinel_name)
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(
        last.mirrored_comments.len(),
        writers * updates,
        "lost updates ({conflicts} conflicts retried)"
    );
    eprintln!(
        "{} updates from {writers} writers, {conflicts} ETag conflicts retried",
        writers * updates
    );
}

#[tokio::test]
async fn state_survives_an_azurite_restart_on_the_same_location() {
    let dir = tempfile::tempdir().unwrap();
    // The combined bin: it saves its table store on SIGTERM (see `Options::all_services`).
    let opts = support::azurite::Options {
        location: Some(dir.path().to_owned()),
        all_services: true,
        ..Default::default()
    };
    let t = tenant("t1");
    let cp = Checkpoint {
        watermark: datetime!(2026-11-03 08:00:00 UTC),
        ids_at_watermark: ["5".to_owned()].into(),
    };
    let mut inc = incident("t1", "5");
    inc.last_outcome = Some(Outcome::Synced);
    let (cp_etag, inc_etag) = {
        let az = Azurite::start_with(&opts);
        let s = store(&az, "persist").await;
        let cp_etag = s
            .put_checkpoint(&t, &cp, Precondition::Absent)
            .await
            .unwrap();
        let inc_etag = s.put_incident(&inc, Precondition::Absent).await.unwrap();
        az.terminate();
        (cp_etag, inc_etag)
    };
    let az = Azurite::start_with(&opts);
    let s = store(&az, "persist").await;
    assert_eq!(
        s.checkpoint(&t).await.unwrap(),
        Some(Versioned {
            value: cp,
            etag: cp_etag
        })
    );
    assert_eq!(
        s.incident(&inc.sentinel_name).await.unwrap(),
        Some(Versioned {
            value: inc,
            etag: inc_etag
        })
    );
}
