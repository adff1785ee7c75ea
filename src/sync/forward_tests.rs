//! Forward cycles against the in-memory fakes of the three ports.

use super::*;
use crate::config::ClientLimits;
use crate::domain::*;
use crate::state::StateStore;
use dss_test_support::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use time::OffsetDateTime;

struct Harness {
    d: Arc<FakeDefender>,
    s: Arc<FakeSentinel>,
    logs: Arc<FakeLogs>,
    store: Arc<FlakyStore>,
    sync: ForwardSync,
}

fn options() -> ForwardOptions {
    ForwardOptions {
        lookback: Duration::from_secs(7 * 24 * 3600),
        overlap: Duration::from_secs(5 * 60),
        park_backoff: Duration::ZERO,
        park_backoff_max: Duration::ZERO,
        deadline_margin: Duration::ZERO,
    }
}

fn harness_with(conflict: ConflictPolicyName, concurrency: usize) -> Harness {
    let (d, s, logs, store) = (
        Arc::new(FakeDefender::default()),
        Arc::new(FakeSentinel::default()),
        Arc::new(FakeLogs::default()),
        Arc::new(FlakyStore::default()),
    );
    let limits = ClientLimits {
        sentinel_concurrency: concurrency,
        ..ClientLimits::default()
    };
    let policy = MergePolicy {
        conflict,
        severity_to_defender: false,
    };
    let sync = ForwardSync::new(
        d.clone(),
        s.clone(),
        Some(logs.clone()),
        store.clone(),
        vec![tenant()],
        policy,
        options(),
        limits,
    )
    .with_throttle_probe(throttle_probe(&d, &s, &logs));
    Harness {
        d,
        s,
        logs,
        store,
        sync,
    }
}

/// The fakes' 429 counters, read as the production probe reads the clients'.
fn throttle_probe(
    d: &Arc<FakeDefender>,
    s: &Arc<FakeSentinel>,
    logs: &Arc<FakeLogs>,
) -> ThrottleProbe {
    let (d, s, logs) = (d.clone(), s.clone(), logs.clone());
    Arc::new(move || d.probe.throttled() + s.probe.throttled() + logs.probe.throttled())
}

fn harness() -> Harness {
    harness_with(ConflictPolicyName::LatestWins, 8)
}

impl Harness {
    async fn cycle(&self) -> TenantReport {
        let r = self
            .sync
            .run_cycle(tokio::time::Instant::now() + Duration::from_secs(60))
            .await;
        r.tenants.into_iter().next().unwrap()
    }

    fn add(&self, ids: impl IntoIterator<Item = u32>, at: OffsetDateTime) {
        for id in ids {
            self.d.upsert(incident(&tenant(), id, at));
        }
    }

    async fn watermark(&self) -> Option<OffsetDateTime> {
        self.store
            .checkpoint(&tenant())
            .await
            .unwrap()
            .map(|c| c.value.watermark)
    }

    fn total_puts(&self) -> u64 {
        self.s.probe.calls("put_incident")
    }
}

fn name(id: u32) -> SentinelIncidentName {
    SentinelIncidentName::for_defender(
        &tenant(),
        &DefenderIncidentId::parse(&id.to_string()).unwrap(),
    )
}

fn ago(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::minutes(minutes)
}

#[tokio::test]
async fn first_sync_creates_exactly_one_sentinel_incident_per_defender_incident() {
    let h = harness();
    h.add(1..=3, ago(60));
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!((r.seen, r.written, r.failed, r.parked), (3, 3, 0, 0));
    assert_eq!(h.s.len(), 3);
    for id in 1..=3 {
        assert_eq!(h.s.puts(&name(id)), 1);
        let i = h.s.incident(&name(id)).unwrap();
        assert_eq!(
            i.title,
            format!("[Defender #{id}] Multi-stage incident {id}")
        );
        assert_eq!(i.status, SentinelStatus::New);
    }
    assert_eq!(h.logs.shipped().len(), 6);
    let wm = h.watermark().await.unwrap();
    assert!(wm > ago(1), "the watermark reaches the window end");
    let health = h.store.tenant_health(&tenant()).await.unwrap().unwrap();
    assert!(health.last_cycle_completed && health.incidents_written == 3);
}

#[tokio::test]
async fn a_rerun_with_no_change_writes_nothing() {
    let h = harness();
    // Inside the overlap, so the second cycle lists them again and must drop them.
    h.add(1..=3, ago(2));
    h.cycle().await;
    h.s.probe.reset_calls();
    let r = h.cycle().await;
    assert!(r.completed);
    assert_eq!((r.seen, r.unchanged, r.written), (3, 3, 0));
    assert_eq!(h.total_puts(), 0);
    assert_eq!(h.s.probe.calls("put_comment"), 0);
    assert_eq!(
        h.s.probe.calls("get_incident"),
        0,
        "dropped by the state before reading Sentinel"
    );
    assert_eq!(h.logs.shipped().len(), 6, "alerts are not shipped twice");
}

#[tokio::test]
async fn a_defender_change_propagates() {
    let h = harness();
    h.add([7], ago(30));
    h.cycle().await;
    h.d.edit(&tenant(), "7", |i| {
        i.status = DefenderStatus::Resolved;
        i.classification = Some(DefenderClassification::FalsePositive);
        i.determination = Some(Determination::parse_alias("clean"));
        i.resolving_comment = Some("benign admin script".into());
        i.custom_tags = vec!["reviewed".into()];
        i.last_update = ago(1);
    });
    let r = h.cycle().await;
    assert_eq!(r.written, 1);
    let i = h.s.incident(&name(7)).unwrap();
    assert_eq!(i.status, SentinelStatus::Closed);
    assert_eq!(
        i.classification,
        Some(SentinelClassification::FalsePositive)
    );
    assert_eq!(
        i.classification_reason,
        Some(ClassificationReason::IncorrectAlertLogic)
    );
    assert_eq!(
        i.classification_comment.as_deref(),
        Some("Defender determination: notMalicious. benign admin script")
    );
    assert!(
        i.labels.iter().any(|l| l.name == "reviewed")
            && i.labels.iter().any(|l| l.name == "Defender")
    );
    assert_eq!(h.s.puts(&name(7)), 2);
}

#[tokio::test]
async fn an_analysts_change_survives_a_defender_change_of_another_field() {
    let h = harness();
    h.add([8], ago(30));
    h.cycle().await;
    h.s.analyst_edit(&name(8), |i| {
        i.owner = Owner {
            user_principal_name: Some("analyst@contoso.com".into()),
            ..Owner::default()
        };
        i.status = SentinelStatus::Active;
    });
    h.d.edit(&tenant(), "8", |i| {
        i.severity = DefenderSeverity::Low;
        i.last_update = ago(1);
    });
    h.cycle().await;
    let i = h.s.incident(&name(8)).unwrap();
    assert_eq!(i.severity, SentinelSeverity::Low);
    assert_eq!(
        i.owner.user_principal_name.as_deref(),
        Some("analyst@contoso.com")
    );
    assert_eq!(
        i.status,
        SentinelStatus::Active,
        "an analyst's Active is kept while Defender says active"
    );
    assert!(h.s.comments(&name(8)).is_empty(), "no conflict");
}

async fn conflicting_owner(policy: ConflictPolicyName) -> (SentinelIncident, Vec<SentinelComment>) {
    let h = harness_with(policy, 8);
    h.add([9], ago(30));
    h.cycle().await;
    h.s.analyst_edit(&name(9), |i| {
        i.owner = Owner {
            user_principal_name: Some("analyst@contoso.com".into()),
            ..Owner::default()
        }
    });
    h.d.add_user(UserRef {
        object_id: uuid::Uuid::from_u128(5),
        user_principal_name: "soc@contoso.com".into(),
        mail: None,
        display_name: None,
    });
    h.d.edit(&tenant(), "9", |i| {
        i.assigned_to = Some("soc@contoso.com".into());
        i.last_update = OffsetDateTime::now_utc();
    });
    h.cycle().await;
    (h.s.incident(&name(9)).unwrap(), h.s.comments(&name(9)))
}

#[tokio::test]
async fn conflicts_are_decided_by_the_policy_and_every_overridden_analyst_change_gets_a_comment() {
    let (i, comments) = conflicting_owner(ConflictPolicyName::DefenderWins).await;
    assert_eq!(
        i.owner.user_principal_name.as_deref(),
        Some("soc@contoso.com")
    );
    assert_eq!(
        i.owner.object_id,
        Some(uuid::Uuid::from_u128(5)),
        "object id from the user look-up"
    );
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].message.starts_with(DEFENDER_MARKER)
            && comments[0].message.contains("Sync conflict on Owner")
    );
    assert!(
        comments[0]
            .message
            .contains("changed here to analyst@contoso.com and in Defender to soc@contoso.com"),
        "{}",
        comments[0].message
    );

    let (i, comments) = conflicting_owner(ConflictPolicyName::SentinelWins).await;
    assert_eq!(
        i.owner.user_principal_name.as_deref(),
        Some("analyst@contoso.com")
    );
    // The Defender analyst's change is the one overridden now: recorded in Sentinel too.
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].message.contains(
            "(sentinel-wins) kept Sentinel's value and overrode the Defender analyst's change"
        ),
        "{}",
        comments[0].message
    );

    // Latest wins: Defender's change is the later one here.
    let (i, _) = conflicting_owner(ConflictPolicyName::LatestWins).await;
    assert_eq!(
        i.owner.user_principal_name.as_deref(),
        Some("soc@contoso.com")
    );
}

#[tokio::test]
async fn comments_are_mirrored_once_even_across_a_crash() {
    let h = harness();
    let mut i = incident(&tenant(), 20, ago(30));
    let c = |t: &str| DefenderComment {
        text: t.into(),
        author: Some("alice".into()),
        created: Some(ago(40)),
    };
    i.comments = vec![
        c("first"),
        c("second"),
        c("[Sentinel] bob: from Sentinel, never mirrored back"),
    ];
    h.d.upsert(i);
    // The process dies after the comment PUTs, before the state write.
    h.store.fail_incident_puts.store(1, Ordering::SeqCst);
    let r1 = h.cycle().await;
    assert!(!r1.completed, "the failed incident holds the watermark");
    assert_eq!(h.s.comments(&name(20)).len(), 2);
    let r2 = h.cycle().await;
    assert!(r2.completed);
    let comments = h.s.comments(&name(20));
    assert_eq!(comments.len(), 2, "no duplicate after the crash");
    assert!(
        comments
            .iter()
            .all(|c| c.message.starts_with(DEFENDER_MARKER))
    );
    assert!(comments[0].message.ends_with("first") && comments[1].message.ends_with("second"));
    assert_eq!(
        h.s.probe.calls("put_comment"),
        2,
        "the rerun found the ids and posted nothing"
    );
}

#[tokio::test]
async fn a_page_is_committed_in_one_batch_and_a_lost_race_restarts_only_its_incident() {
    let h = harness();
    h.add(30..=34, ago(60));
    let r = h.cycle().await;
    assert_eq!((r.written, r.failed), (5, 0), "{r:?}");
    assert_eq!(
        h.store.batch_writes.load(Ordering::SeqCst),
        1,
        "one transaction for the page"
    );
    let puts_before = h.total_puts();

    // Every incident changes in Defender; another writer touches #32's state meanwhile.
    for id in 30..=34 {
        let mut i = incident(&tenant(), id, ago(1));
        i.custom_tags = vec!["changed".into()];
        h.d.upsert(i);
    }
    *h.store.race_next_batch_on.lock().unwrap() = Some(name(32));
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!((r.written, r.failed), (5, 0), "{r:?}");
    // The refused transaction wrote nothing; each state was then written alone and only #32
    // started over: its rebuilt incident carried the etag before this cycle's PUT, so one more
    // PUT was refused (409), and the fresh read then showed nothing left to write.
    assert_eq!(h.total_puts() - puts_before, 5 + 1);
    assert_eq!(h.store.batch_writes.load(Ordering::SeqCst), 2);
    for id in 30..=34 {
        assert_eq!(
            h.s.puts(&name(id)),
            2,
            "incident {id}: created, then updated once"
        );
    }
    for id in 30..=34 {
        let st = h.store.incident(&name(id)).await.unwrap().unwrap().value;
        assert_eq!(
            st.defender_base.unwrap().custom_tags,
            ["changed"],
            "incident {id}"
        );
    }
}

#[tokio::test]
async fn the_comment_cap_is_recorded_not_retried() {
    let h = harness();
    let mut i = incident(&tenant(), 21, ago(30));
    i.comments = (0..105)
        .map(|n| DefenderComment {
            text: format!("c{n}"),
            author: None,
            created: Some(ago(40)),
        })
        .collect();
    h.d.upsert(i);
    let r = h.cycle().await;
    assert!(r.completed && r.parked == 0 && r.failed == 0, "{r:?}");
    assert_eq!(h.s.comments(&name(21)).len(), COMMENT_CAP);
    assert_eq!(r.comment_cap_reached, vec![name(21).to_string()]);
    let health = h.store.tenant_health(&tenant()).await.unwrap().unwrap();
    assert_eq!(health.comment_cap_reached, vec![name(21).to_string()]);
    h.s.probe.reset_calls();
    h.cycle().await;
    assert_eq!(h.s.probe.calls("put_comment"), 0, "no failure loop");
}

#[tokio::test]
async fn a_1200_incident_backfill_is_delivered_once_with_a_correct_checkpoint() {
    let h = harness();
    for n in 0..1200u32 {
        h.d.upsert(incident(
            &tenant(),
            1000 + n,
            ago(600) + time::Duration::seconds(i64::from(n) * 20),
        ));
    }
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!((r.seen, r.written), (1200, 1200));
    assert_eq!(h.s.len(), 1200);
    assert_eq!(h.total_puts(), 1200, "each incident written exactly once");
    assert!(h.d.probe.calls("count") > 3, "the window was split");
    assert!(h.watermark().await.unwrap() > ago(1));
}

#[tokio::test]
async fn six_hundred_incidents_sharing_one_instant_are_all_delivered_once() {
    let h = harness();
    let instant = ago(2);
    for n in 0..600u32 {
        let mut i = incident(&tenant(), 5000 + n, instant);
        i.created = instant - time::Duration::seconds(i64::from(n) + 1);
        h.d.upsert(i);
    }
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!(h.s.len(), 600);
    assert_eq!(h.total_puts(), 600);
    assert!(h.watermark().await.unwrap() > instant);
    // The instant lies inside the overlap: listed again, dropped, nothing written.
    let r2 = h.cycle().await;
    assert_eq!((r2.seen, r2.unchanged), (600, 600));
    assert_eq!(h.total_puts(), 600);
}

#[tokio::test]
async fn a_rejected_incident_is_parked_passed_retried_and_cleared() {
    let h = harness();
    h.add([30, 31, 32], ago(30));
    h.s.reject(name(31), true);
    let r = h.cycle().await;
    assert!(r.completed && r.parked == 1 && r.written == 2, "{r:?}");
    assert!(
        h.watermark().await.unwrap() > ago(1),
        "the watermark passes the parked incident"
    );
    let set = h.store.retry_set(&tenant()).await.unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].incident_id.as_str(), "31");
    let failed = h.store.failed_incidents(10).await.unwrap();
    assert_eq!(failed.len(), 1);

    let r = h.cycle().await;
    assert_eq!(r.parked, 1);
    assert_eq!(h.store.retry_set(&tenant()).await.unwrap()[0].attempts, 2);

    h.s.reject(name(31), false);
    let r = h.cycle().await;
    assert_eq!(r.cleared, 1);
    assert!(h.store.retry_set(&tenant()).await.unwrap().is_empty());
    assert!(h.s.incident(&name(31)).is_some());
    assert_eq!([30, 31, 32].map(|n| h.s.puts(&name(n))), [1, 1, 1]);
}

#[tokio::test]
async fn an_unmappable_incident_is_parked() {
    let h = harness();
    h.add([40, 41], ago(30));
    h.d.edit(&tenant(), "41", |i| {
        i.status = DefenderStatus::parse("somethingNew")
    });
    let r = h.cycle().await;
    assert!(r.completed && r.parked == 1 && r.written == 1);
    assert!(r.errors.iter().any(|e| e.contains("somethingNew")));
}

#[tokio::test]
async fn expand_failures_fall_back_to_alerts_per_incident() {
    let h = harness();
    h.add(50..55, ago(30));
    h.d.expand_fails.store(true, Ordering::SeqCst);
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!(h.s.len(), 5);
    assert_eq!(h.d.probe.calls("alerts"), 5);
    assert_eq!(h.logs.shipped().len(), 10);
    let i = h.s.incident(&name(50)).unwrap();
    assert!(i.first_activity.is_some() && i.last_activity.is_some());
}

#[tokio::test]
async fn a_transient_page_failure_holds_the_watermark() {
    let h = harness();
    h.add([60], ago(30));
    h.cycle().await;
    let wm = h.watermark().await.unwrap();
    h.add([61], ago(1));
    // 5xx with $expand (3 attempts, in the client), then without it (3 more): the page fails.
    h.d.probe.fail("list", Fault::Transient, 6);
    let r = h.cycle().await;
    assert!(!r.completed);
    assert_eq!(h.watermark().await.unwrap(), wm);
    assert!(h.s.incident(&name(61)).is_none());
    let r = h.cycle().await;
    assert!(r.completed);
    assert!(h.s.incident(&name(61)).is_some());
    assert!(h.watermark().await.unwrap() > wm);
}

#[tokio::test]
async fn a_redirected_incident_is_closed_labelled_and_both_sides_get_a_comment() {
    let h = harness();
    h.add([70, 71], ago(30));
    h.cycle().await;
    h.d.edit(&tenant(), "71", |i| {
        i.status = DefenderStatus::Redirected;
        i.redirect_incident_id = Some(DefenderIncidentId::parse("70").unwrap());
        i.last_update = ago(1);
    });
    h.cycle().await;
    let i = h.s.incident(&name(71)).unwrap();
    assert_eq!(i.status, SentinelStatus::Closed);
    assert_eq!(i.classification, Some(SentinelClassification::Undetermined));
    assert!(i.labels.iter().any(|l| l.name == "Redirected"));
    let here = h.s.comments(&name(71));
    assert!(here.len() == 1 && here[0].message.contains("#70"));
    let there = h.s.comments(&name(70));
    assert!(there.len() == 1 && there[0].message.contains("#71"));
    h.cycle().await;
    assert_eq!(h.s.comments(&name(70)).len(), 1, "not repeated");
}

#[tokio::test]
async fn a_redirect_to_an_incident_not_yet_in_sentinel_is_retried() {
    let h = harness();
    let mut i = incident(&tenant(), 81, ago(30));
    i.status = DefenderStatus::Redirected;
    i.redirect_incident_id = Some(DefenderIncidentId::parse("80").unwrap());
    h.d.upsert(i);
    let r = h.cycle().await;
    assert_eq!(r.parked, 1);
    h.add([80], ago(1));
    h.cycle().await;
    h.cycle().await;
    assert!(h.store.retry_set(&tenant()).await.unwrap().is_empty());
    assert_eq!(h.s.comments(&name(80)).len(), 1);
}

#[tokio::test]
async fn the_next_window_is_read_while_the_last_pages_of_the_previous_one_are_delivered() {
    // 800 incidents: more than one window holds, so the cycle's window is split in two halves
    // (the lookback is 7 days): 500 incidents 5 days ago, 300 one day ago. The first window's
    // last 100 incidents wait to fill a batch with the second window's first pages, so they
    // are written only after the second window is read.
    let h = harness_with(ConflictPolicyName::LatestWins, 4);
    *h.s.put_delay.lock().unwrap() = Some(Duration::from_millis(5));
    h.add(1..=500, ago(5 * 24 * 60));
    let recent = ago(24 * 60);
    h.add(501..=800, recent);
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!(r.written, 800);
    let lists = h.d.probe.tickets("list");
    assert_eq!(lists.len(), 2, "one first page per window");
    // A PUT's ticket is taken when it is answered. Before the second window's first page, only
    // the first window's incidents can have been written; had the pull waited for the first
    // window's delivery to end, all 500 of them would have been.
    let puts_before =
        h.s.probe
            .tickets("put_incident")
            .iter()
            .filter(|t| **t < lists[1])
            .count();
    assert!(
        puts_before < 500,
        "the first window's delivery had ended ({puts_before} PUTs) before the next window was read"
    );
    assert!(h.watermark().await.is_some_and(|w| w >= recent));
}

#[tokio::test]
async fn a_windows_last_pages_fill_a_batch_with_the_next_windows_first_ones() {
    assert_eq!(
        super::pull::DELIVERY_BATCH,
        200,
        "the batch count below assumes batches of 200"
    );
    // Two windows of 260 incidents (pages of 50: five full ones and one of 10 each).
    let h = harness();
    h.add(1..=260, ago(5 * 24 * 60));
    h.add(261..=520, ago(24 * 60));
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!(r.written, 520);
    // Batches: 200 of the first window; its last 60 with the second window's first 150; the
    // second window's last 110. Cut at each window's end, there would be 4.
    assert_eq!(h.logs.probe.calls("ship"), 3, "one Logs call per batch");
    assert_eq!(
        h.logs.shipped().len(),
        520 * 2,
        "every alert (two per incident)"
    );
}

#[tokio::test]
async fn the_deadline_stops_cleanly_and_the_next_cycle_continues() {
    let h = harness_with(ConflictPolicyName::LatestWins, 2);
    *h.s.put_delay.lock().unwrap() = Some(Duration::from_millis(5));
    for n in 0..100u32 {
        h.d.upsert(incident(
            &tenant(),
            900 + n,
            ago(100) + time::Duration::seconds(i64::from(n)),
        ));
    }
    let r = h
        .sync
        .run_cycle(tokio::time::Instant::now() + Duration::from_millis(60))
        .await;
    let r = &r.tenants[0];
    assert!(!r.completed);
    assert!(r.written > 0 && r.written < 100, "{r:?}");
    assert_eq!(r.failed, 0, "stopping at the deadline is not a failure");
    let wm = h.watermark().await;
    assert!(
        wm.is_none_or(|w| w <= ago(100) + time::Duration::seconds(100)),
        "the watermark did not pass undelivered incidents"
    );
    let r = h.cycle().await;
    assert!(r.completed);
    assert_eq!(h.s.len(), 100);
    for n in 0..100 {
        assert_eq!(h.s.puts(&name(900 + n)), 1, "incident {n} written once");
    }
}

#[tokio::test]
async fn a_409_rereads_and_merges_again() {
    let h = harness();
    h.add([90], ago(30));
    h.cycle().await;
    h.d.edit(&tenant(), "90", |i| {
        i.status = DefenderStatus::InProgress;
        i.last_update = ago(1);
    });
    h.s.race_next_put(name(90));
    h.s.probe.fail("put_incident", Fault::Throttled, 1);
    let r = h.cycle().await;
    assert!(r.completed && r.written == 1 && r.throttled >= 1, "{r:?}");
    assert_eq!(
        h.s.incident(&name(90)).unwrap().status,
        SentinelStatus::Active
    );
}

#[tokio::test]
async fn only_new_or_changed_alerts_are_shipped() {
    let h = harness();
    h.add([95], ago(30));
    h.cycle().await;
    h.d.edit(&tenant(), "95", |i| {
        let alerts = i.alerts.as_mut().unwrap();
        alerts[1].raw =
            RawJson::from_value(&serde_json::json!({"id": "da95-2", "status": "resolved"}));
        alerts.push(alert("da95-3", ago(1)));
        i.last_update = ago(1);
    });
    h.cycle().await;
    let shipped: Vec<String> = h.logs.shipped().into_iter().map(|(_, a)| a).collect();
    assert_eq!(shipped, ["da95-1", "da95-2", "da95-2", "da95-3"]);
}

#[tokio::test]
async fn refused_credentials_stop_the_tenant_and_hold_the_watermark() {
    let h = harness();
    h.add([100, 101], ago(30));
    h.s.probe.fail("put_incident", Fault::Auth, 1);
    let r = h.cycle().await;
    assert!(!r.completed && r.failed >= 1 && r.parked == 0, "{r:?}");
    assert!(
        h.store.retry_set(&tenant()).await.unwrap().is_empty(),
        "not parked: an operator must act"
    );
    let r = h.cycle().await;
    assert!(r.completed);
    assert_eq!(h.s.len(), 2);
}

#[tokio::test]
async fn rows_refused_by_logs_ingestion_park_the_incident_and_a_retry_ships_them() {
    let h = harness();
    h.add([110], ago(30));
    h.logs.probe.fail("ship", Fault::Rejected, 1);
    let r = h.cycle().await;
    assert!(r.completed && r.parked == 1, "{r:?}");
    assert!(h.logs.shipped().is_empty());
    let r = h.cycle().await;
    assert_eq!(r.cleared, 1);
    assert_eq!(h.logs.shipped().len(), 2);
    assert_eq!(
        h.s.puts(&name(110)),
        1,
        "the retry did not rewrite an unchanged incident"
    );
}

#[tokio::test]
async fn a_new_incident_costs_about_one_upstream_call() {
    let h = harness();
    for n in 0..100u32 {
        h.d.upsert(incident(
            &tenant(),
            2000 + n,
            ago(50) + time::Duration::seconds(i64::from(n)),
        ));
    }
    let r = h.cycle().await;
    assert_eq!(r.written, 100);
    let graph = ["count", "list", "next_page", "alerts", "get_incident"]
        .map(|op| h.d.probe.calls(op))
        .iter()
        .sum::<u64>();
    let arm = [
        "get_incident",
        "put_incident",
        "list_comments",
        "put_comment",
    ]
    .map(|op| h.s.probe.calls(op))
    .iter()
    .sum::<u64>();
    let logs = h.logs.probe.calls("ship");
    assert_eq!(
        h.s.probe.calls("get_incident"),
        0,
        "a never-synced incident is not read first"
    );
    assert_eq!(
        logs, 1,
        "one Logs Ingestion call for the two pages, delivered together"
    );
    let per_incident = (graph + arm + logs) as f64 / 100.0;
    assert!(
        per_incident <= 1.1,
        "{per_incident} calls per incident (graph {graph}, arm {arm}, logs {logs})"
    );
}

#[tokio::test]
async fn refused_rows_of_a_page_are_retried_per_incident() {
    let h = harness();
    h.add(120..123, ago(30));
    h.logs.probe.fail("ship", Fault::Rejected, 1);
    let r = h.cycle().await;
    assert!(r.completed && r.parked == 0 && r.written == 3, "{r:?}");
    assert_eq!(h.logs.shipped().len(), 6);
    assert_eq!(h.logs.probe.calls("ship"), 4);
}

#[tokio::test]
async fn a_comment_over_30000_characters_is_split() {
    let h = harness();
    let mut i = incident(&tenant(), 130, ago(30));
    i.comments = vec![DefenderComment {
        text: "y".repeat(65_000),
        author: Some("alice".into()),
        created: Some(ago(31)),
    }];
    h.d.upsert(i);
    let r = h.cycle().await;
    assert!(r.completed && r.parked == 0, "{r:?}");
    let comments = h.s.comments(&name(130));
    assert_eq!(comments.len(), 3);
    assert_eq!(
        comments
            .iter()
            .map(|c| c.message.matches('y').count())
            .sum::<usize>(),
        65_000
    );
}

#[tokio::test]
async fn every_tenant_has_its_own_checkpoint_and_incidents() {
    let (d, s) = (
        Arc::new(FakeDefender::default()),
        Arc::new(FakeSentinel::default()),
    );
    let store = Arc::new(FlakyStore::default());
    let other = TenantId::parse("contoso.onmicrosoft.com").unwrap();
    let policy = MergePolicy {
        conflict: ConflictPolicyName::LatestWins,
        severity_to_defender: false,
    };
    let sync = ForwardSync::new(
        d.clone(),
        s.clone(),
        None,
        store.clone(),
        vec![tenant(), other.clone()],
        policy,
        options(),
        ClientLimits::default(),
    );
    d.upsert(incident(&tenant(), 1, ago(30)));
    d.upsert(incident(&other, 1, ago(30)));
    let r = sync
        .run_cycle(tokio::time::Instant::now() + Duration::from_secs(60))
        .await;
    assert!(r.completed() && r.tenants.len() == 2 && r.total(|t| t.written) == 2);
    assert_eq!(
        s.len(),
        2,
        "same Defender id in two tenants: two Sentinel incidents"
    );
    assert!(
        store.checkpoint(&tenant()).await.unwrap().is_some()
            && store.checkpoint(&other).await.unwrap().is_some()
    );
}

#[path = "forward_horizon_tests.rs"]
mod horizon;

#[path = "forward_retry_tests.rs"]
mod retry;

#[path = "forward_update_tests.rs"]
mod update;

#[tokio::test]
async fn throttled_calls_the_clients_absorbed_are_counted_through_the_probe() {
    let mut h = harness();
    // The clients met 7 429s during the cycle and retried them all: the engine saw none.
    let reads = Arc::new(std::sync::atomic::AtomicU64::new(10));
    let probe_reads = reads.clone();
    h.sync = h.sync.with_throttle_probe(Arc::new(move || {
        probe_reads.fetch_add(7, Ordering::Relaxed)
    }));
    h.add(1..=2, ago(60));
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!(r.throttled, 7);
    let health = h.store.tenant_health(&tenant()).await.unwrap().unwrap();
    assert_eq!(health.throttled_calls, 7, "SyncHealth shows them too");
    assert_eq!(
        reads.load(Ordering::Relaxed),
        24,
        "read once at the start and once at the end"
    );
}

#[tokio::test]
async fn a_budget_shorter_than_the_margin_still_does_work() {
    let mut h = harness();
    // Production margin (5 s) with a 3 s budget: before, the cycle was out of time at once.
    h.sync = h.sync.with_options(ForwardOptions {
        deadline_margin: Duration::from_secs(5),
        ..options()
    });
    h.add(1..=3, ago(60));
    let r = h
        .sync
        .run_cycle(tokio::time::Instant::now() + Duration::from_secs(3))
        .await;
    let r = r.tenants.into_iter().next().unwrap();
    assert!(r.completed, "{r:?}");
    assert_eq!(r.written, 3);
}

#[tokio::test]
async fn an_owner_unknown_to_the_sentinel_directory_stays_unassigned_and_named_on_every_update() {
    let h = harness();
    h.d.upsert({
        let mut i = incident(&tenant(), 30, ago(30));
        i.assigned_to = Some("customer.user@fabrikam.com".into());
        i
    });
    let r = h.cycle().await;
    assert_eq!((r.written, r.parked), (1, 0), "{r:?}");
    let s = h.s.incident(&name(30)).unwrap();
    assert!(s.owner.is_unassigned(), "{:?}", s.owner);
    assert!(
        s.description
            .as_deref()
            .unwrap()
            .contains("Defender owner: customer.user@fabrikam.com")
    );

    // A later Defender change of another field keeps the note, and no analyst change is seen.
    h.d.edit(&tenant(), "30", |i| {
        i.severity = DefenderSeverity::High;
        i.last_update = OffsetDateTime::now_utc();
    });
    h.cycle().await;
    let s = h.s.incident(&name(30)).unwrap();
    assert_eq!(s.severity, SentinelSeverity::High);
    assert!(s.owner.is_unassigned());
    assert!(
        s.description
            .as_deref()
            .unwrap()
            .contains("Defender owner: customer.user@fabrikam.com"),
        "{:?}",
        s.description
    );
    let r = h.cycle().await;
    assert_eq!(r.written, 0, "idle afterwards: {r:?}");
}

#[tokio::test]
async fn each_429_is_counted_once_and_the_engine_never_retries_a_call() {
    let h = harness();
    h.add([95], ago(30));
    // Every attempt of the client throttled: it hands the 429 back, the engine holds the incident.
    h.s.probe
        .fail("put_incident", Fault::Throttled, ATTEMPTS as usize);
    let r = h.cycle().await;
    assert!(!r.completed && r.failed == 1 && r.written == 0, "{r:?}");
    assert_eq!(r.throttled, u64::from(ATTEMPTS), "each 429 once: {r:?}");
    assert_eq!(
        h.s.probe.calls("put_incident"),
        u64::from(ATTEMPTS),
        "one call by the engine: only the client's attempts"
    );
    let r = h.cycle().await;
    assert!(r.completed && r.written == 1 && r.throttled == 0, "{r:?}");
}

#[tokio::test]
async fn where_the_service_creates_incidents_the_sync_ships_the_alerts_waits_and_then_updates() {
    let h = harness();
    h.s.set_service_created(true);
    h.add([97], ago(30));
    let r = h.cycle().await;
    assert!(r.completed && r.parked == 1 && r.written == 0, "{r:?}");
    assert!(
        h.s.incident(&name(97)).is_none(),
        "the sync never creates one"
    );
    assert_eq!(h.s.probe.calls("put_incident"), 0);
    assert!(
        h.logs.shipped().iter().any(|(id, _)| id == "97"),
        "its alerts went out, for the service to make the incident from"
    );
    let set = h.store.retry_set(&tenant()).await.unwrap();
    assert_eq!(set.len(), 1, "parked until the incident appears");

    // The service creates it from the alerts (with its own title and no owner yet).
    h.s.create_by_service(SentinelIncident {
        name: name(97),
        etag: None,
        title: "Correlated: 3 alerts".into(),
        description: None,
        severity: SentinelSeverity::Medium,
        status: SentinelStatus::New,
        classification: None,
        classification_reason: None,
        classification_comment: None,
        owner: Owner::default(),
        labels: Vec::new(),
        first_activity: None,
        last_activity: None,
        incident_number: None,
        created: None,
        last_modified: None,
        comments_count: None,
        platform_id: None,
    });
    let shipped = h.logs.shipped().len();
    let r = h.cycle().await;
    assert!(r.completed && r.cleared == 1, "{r:?}");
    assert!(h.store.retry_set(&tenant()).await.unwrap().is_empty());
    assert_eq!(h.s.probe.calls("put_incident"), 1, "updated once it exists");
    let i = h.s.incident(&name(97)).unwrap();
    assert!(i.labels.iter().any(|l| l.name == "Defender"), "{i:?}");
    assert_eq!(h.logs.shipped().len(), shipped, "no alert shipped twice");
}
