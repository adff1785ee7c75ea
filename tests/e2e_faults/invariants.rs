//! The invariants of `docs/sync-model.md`, checked on the simulators' state after a run: one Sentinel
//! incident per Defender incident, every forward field converged, every Defender comment
//! mirrored exactly once, every alert and evidence row shipped (under one stable row id), the
//! checkpoint past every incident, and idle cycles that write nothing.

use super::support::world::World;
use defender_sentinel_sync::domain::{DefenderIncidentId, SentinelIncidentName, TenantId};
use defender_sentinel_sync::state::StateStore;
use dss_simulators::wellknown;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The Sentinel incident name of a Defender incident.
pub fn sentinel_name(tenant: &str, id: &str) -> String {
    SentinelIncidentName::for_defender(
        &TenantId::parse(tenant).unwrap(),
        &DefenderIncidentId::parse(id).unwrap(),
    )
    .to_string()
}

/// An RFC 3339 time with Graph's 7-digit fractions.
pub fn graph_time(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(t.nanosecond() / 100 * 100).unwrap();
    t.format(&Rfc3339).unwrap()
}

/// Moves an incident's lastUpdateDateTime to now (what a change in Defender does); seeded
/// incidents carry past times, which a running watermark has already passed.
pub fn touch(sims: &dss_simulators::Simulators, tenant: &str, id: &str) {
    let now = graph_time(OffsetDateTime::now_utc());
    sims.defender_action(
        tenant,
        id,
        dss_simulators::DefenderAction::SetLastUpdate {
            last_update_date_time: now,
        },
    )
    .unwrap();
}

fn parse(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("a time"), &Rfc3339).expect("RFC 3339")
}

/// Exactly one Sentinel incident per Defender incident of `tenants` (and no other), with the
/// Defender-owned fields converged, and every Defender comment mirrored exactly once.
pub fn assert_converged(w: &World, tenants: &[&str]) {
    let sentinel = w.sims.sentinel_incidents();
    let mut by_name: HashMap<String, &Value> = HashMap::new();
    for s in &sentinel {
        let name = s["name"].as_str().unwrap().to_owned();
        assert!(
            by_name.insert(name.clone(), s).is_none(),
            "Sentinel incident {name} listed twice"
        );
    }
    let mut expected = 0;
    for t in tenants {
        for d in w.sims.defender_incidents(t) {
            expected += 1;
            let id = d["id"].as_str().unwrap();
            let name = sentinel_name(t, id);
            let s = by_name
                .get(&name)
                .unwrap_or_else(|| panic!("Defender incident {t}/{id} has no Sentinel incident"));
            assert_fields(t, &d, &s["properties"]);
            assert_comments(w, &d, &name);
        }
    }
    assert_eq!(
        sentinel.len(),
        expected,
        "exactly one Sentinel incident per Defender incident, no extras"
    );
}

fn assert_fields(tenant: &str, d: &Value, p: &Value) {
    let id = d["id"].as_str().unwrap();
    let title = format!(
        "[Defender #{id}] {}",
        d["displayName"].as_str().unwrap_or("")
    );
    assert_eq!(p["title"].as_str(), Some(title.as_str()), "title of {id}");
    let link = format!("https://security.microsoft.com/incidents/{id}?tid={tenant}");
    assert!(
        p["description"].as_str().unwrap_or("").starts_with(&link),
        "description of {id} starts with the portal link"
    );
    let severity = d["severity"].as_str().unwrap();
    assert!(
        p["severity"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(severity),
        "severity of {id}: {} vs {severity}",
        p["severity"]
    );
    let status = match d["status"].as_str().unwrap() {
        "active" => "New",
        "inProgress" | "awaitingAction" => "Active",
        _ => "Closed",
    };
    assert_eq!(p["status"].as_str(), Some(status), "status of {id}");
    let labels: BTreeSet<&str> = p["labels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["labelName"].as_str())
        .collect();
    assert!(labels.contains("Defender"), "label Defender on {id}");
    for tag in d["customTags"].as_array().into_iter().flatten() {
        assert!(labels.contains(tag.as_str().unwrap()), "tag {tag} on {id}");
    }
}

/// Every Defender comment is in exactly one Sentinel comment, and there are no others.
fn assert_comments(w: &World, d: &Value, name: &str) {
    let comments = w.sims.sentinel_comments(name);
    let messages: Vec<&str> = comments
        .iter()
        .map(|c| c["properties"]["message"].as_str().unwrap())
        .collect();
    let defender: Vec<&str> = d["comments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["comment"].as_str().unwrap())
        .collect();
    for text in &defender {
        let n = messages.iter().filter(|m| m.ends_with(text)).count();
        assert_eq!(
            n, 1,
            "Defender comment {text:?} of {} mirrored {n} times: {messages:?}",
            d["id"]
        );
    }
    assert_eq!(
        messages.len(),
        defender.len(),
        "comments of {name}: {messages:?}"
    );
}

/// Every alert and evidence item of `tenants` shipped, each under one stable row id. With
/// `redelivery` a row may arrive more than once (at-least-once after a fault), always with the
/// same row id; without, exactly once.
pub fn assert_rows(w: &World, tenants: &[&str], redelivery: bool) {
    let rows = w.sims.ingested_rows(wellknown::STREAM_NAME);
    let mut expected = BTreeSet::new();
    for t in tenants {
        for d in w.sims.defender_incidents(t) {
            for a in d["alerts"].as_array().into_iter().flatten() {
                let aid = a["id"].as_str().unwrap().to_owned();
                expected.insert((t.to_string(), aid.clone(), None));
                for (i, _) in a["evidence"].as_array().into_iter().flatten().enumerate() {
                    expected.insert((t.to_string(), aid.clone(), Some(i as u64)));
                }
            }
        }
    }
    let mut ids_by_key: HashMap<(String, String, Option<u64>), BTreeSet<String>> = HashMap::new();
    for r in &rows {
        let key = (
            r["SourceTenantId"].as_str().unwrap().to_owned(),
            r["AlertId"].as_str().unwrap().to_owned(),
            r["EvidenceIndex"].as_u64(),
        );
        ids_by_key
            .entry(key)
            .or_default()
            .insert(r["RowId"].as_str().unwrap().to_owned());
    }
    let shipped: BTreeSet<_> = ids_by_key.keys().cloned().collect();
    assert_eq!(
        shipped.len(),
        expected.len(),
        "rows shipped for every alert and evidence item"
    );
    assert!(
        shipped == expected,
        "shipped rows are the alerts and evidence items"
    );
    for (key, ids) in &ids_by_key {
        assert_eq!(ids.len(), 1, "one stable row id for {key:?}: {ids:?}");
    }
    if !redelivery {
        assert_eq!(rows.len(), expected.len(), "no row shipped twice");
    }
}

/// The checkpoint of `tenant` is past every incident's lastUpdateDateTime (and not in the
/// future), and its retry set is empty.
pub async fn assert_checkpoint(w: &World, tenant: &str) -> OffsetDateTime {
    let store = w.state().await;
    let t = TenantId::parse(tenant).unwrap();
    let cp = store
        .checkpoint(&t)
        .await
        .unwrap()
        .expect("a checkpoint")
        .value;
    let newest = w
        .sims
        .defender_incidents(tenant)
        .iter()
        .map(|d| parse(&d["lastUpdateDateTime"]))
        .max();
    if let Some(newest) = newest {
        assert!(
            cp.watermark > newest,
            "watermark {} past the newest incident {newest}",
            cp.watermark
        );
    }
    assert!(
        cp.watermark <= OffsetDateTime::now_utc(),
        "watermark not in the future"
    );
    let parked = store.retry_set(&t).await.unwrap();
    assert!(parked.is_empty(), "retry set empty: {parked:?}");
    cp.watermark
}

/// One more cycle that completes and writes nothing anywhere.
pub async fn assert_idle(w: &World) {
    w.sims.reset_counters();
    let reply = w.sync_ok().await;
    for t in reply.return_value["figures"]["tenants"].as_array().unwrap() {
        assert_eq!(t["written"], 0, "idle cycle wrote: {t}");
        assert_eq!(t["parked"], 0, "idle cycle parked: {t}");
        assert_eq!(t["failed"], 0, "idle cycle failed: {t}");
    }
    let poll = &reply.return_value["figures"]["reverse"];
    assert_eq!(
        poll["completed"], true,
        "the Sentinel poll ran and completed: {poll}"
    );
    assert_eq!(poll["defenderWrites"], 0, "idle poll wrote: {poll}");
    assert_eq!(poll["comments"], 0, "idle poll commented: {poll}");
    let c = w.sims.counters();
    let graph_writes: u64 = c
        .by_api
        .get("graph")
        .into_iter()
        .flatten()
        .filter(|(op, _)| !op.starts_with("GET"))
        .map(|(_, n)| n.calls)
        .sum();
    assert_eq!(
        graph_writes,
        0,
        "no Defender writes when idle: {:?}",
        c.by_api.get("graph")
    );
    let arm_writes: u64 = c
        .by_api
        .get("arm")
        .into_iter()
        .flatten()
        .filter(|(op, _)| !op.starts_with("GET"))
        .map(|(_, n)| n.calls)
        .sum();
    assert_eq!(
        arm_writes,
        0,
        "no Sentinel writes when idle: {:?}",
        c.by_api.get("arm")
    );
    assert_eq!(c.total("logs"), 0, "no rows when idle");
}

/// Runs cycles until one completes (at most `max`); returns the replies.
pub async fn sync_until_complete(w: &World, max: usize) -> Vec<Value> {
    let mut replies = Vec::new();
    for _ in 0..max {
        let r = w.sync().await;
        let done = r.return_value["completed"] == Value::Bool(true);
        replies.push(r.return_value);
        if done {
            return replies;
        }
    }
    panic!("no cycle completed in {max}: {replies:#?}");
}

/// Figure `key` of the reply's first tenant.
pub fn figure(reply: &Value, key: &str) -> u64 {
    reply["figures"]["tenants"][0][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no figure {key} in {reply}"))
}
