//! What an update of an already-synced incident costs: optimistic PUTs with the stored etag
//! (no GET), the 409 → GET → merge path when someone else wrote, and no call at all when
//! nothing Sentinel shows changed.

use super::*;

const SENTINEL_OPS: [&str; 5] = [
    "get_incident",
    "put_incident",
    "list_comments",
    "put_comment",
    "list_modified",
];

impl Harness {
    fn sentinel_calls(&self) -> u64 {
        SENTINEL_OPS.map(|op| self.s.probe.calls(op)).iter().sum()
    }

    async fn state(&self, id: u32) -> crate::state::IncidentState {
        self.store.incident(&name(id)).await.unwrap().unwrap().value
    }

    fn reset(&self) {
        self.s.probe.reset_calls();
        self.d.probe.reset_calls();
        self.logs.probe.reset_calls();
    }
}

#[tokio::test]
async fn an_update_costs_one_put_and_the_state_carries_the_new_etag() {
    let h = harness();
    h.add([200], ago(30));
    h.cycle().await;
    let before = h.s.incident(&name(200)).unwrap().etag;
    assert_eq!(h.state(200).await.sentinel_etag(), before.as_deref());
    h.reset();
    h.d.edit(&tenant(), "200", |i| {
        i.status = DefenderStatus::InProgress;
        i.severity = DefenderSeverity::Low;
        i.last_update = ago(1);
    });
    let r = h.cycle().await;
    assert_eq!(r.written, 1, "{r:?}");
    assert_eq!(
        (
            h.s.probe.calls("get_incident"),
            h.s.probe.calls("put_incident")
        ),
        (0, 1)
    );
    assert_eq!(h.sentinel_calls(), 1, "exactly one Sentinel call: the PUT");
    let now = h.s.incident(&name(200)).unwrap();
    assert_eq!(
        (now.status, now.severity),
        (SentinelStatus::Active, SentinelSeverity::Low)
    );
    assert_ne!(now.etag, before);
    let st = h.state(200).await;
    assert_eq!(
        st.sentinel_etag(),
        now.etag.as_deref(),
        "the state carries the etag of our PUT"
    );
    assert_eq!(
        st.snapshot().map(|s| Some(s.etag.clone())),
        Some(now.etag.clone())
    );
    assert_eq!(st.snapshot().unwrap().incident_number, now.incident_number);

    // A second update rides on the etag the first one stored.
    h.d.edit(&tenant(), "200", |i| {
        i.custom_tags = vec!["phishing".into()];
        i.last_update = ago(0);
    });
    h.cycle().await;
    assert_eq!(
        (
            h.s.probe.calls("get_incident"),
            h.s.probe.calls("put_incident")
        ),
        (0, 2)
    );
    assert!(
        h.s.incident(&name(200))
            .unwrap()
            .labels
            .iter()
            .any(|l| l.name == "phishing")
    );
}

#[tokio::test]
async fn an_analysts_change_between_cycles_costs_a_409_and_a_get_and_survives() {
    let h = harness();
    h.add([201], ago(30));
    h.cycle().await;
    h.s.analyst_edit(&name(201), |i| {
        i.owner = Owner {
            user_principal_name: Some("analyst@contoso.com".into()),
            ..Owner::default()
        };
        i.labels.push(Label {
            name: "triaged".into(),
            kind: LabelKind::User,
        });
        i.labels.push(Label {
            name: "ml-suggested".into(),
            kind: LabelKind::AutoAssigned,
        });
    });
    h.reset();
    h.d.edit(&tenant(), "201", |i| {
        i.severity = DefenderSeverity::Low;
        i.last_update = ago(1);
    });
    let r = h.cycle().await;
    assert!(r.completed && r.written == 1 && r.failed == 0, "{r:?}");
    assert_eq!(
        h.s.probe.calls("put_incident"),
        2,
        "the optimistic PUT (409), then the merged one"
    );
    assert_eq!(
        h.s.probe.calls("get_incident"),
        1,
        "one re-read after the 409"
    );
    assert_eq!(h.s.puts(&name(201)), 2, "creation and one accepted update");
    let i = h.s.incident(&name(201)).unwrap();
    assert_eq!(
        i.severity,
        SentinelSeverity::Low,
        "Defender's change went through"
    );
    assert_eq!(
        i.owner.user_principal_name.as_deref(),
        Some("analyst@contoso.com"),
        "the analyst's owner survived"
    );
    assert!(
        i.labels
            .iter()
            .any(|l| l.name == "triaged" && l.kind == LabelKind::User)
    );
    assert!(
        i.labels
            .iter()
            .any(|l| l.name == "ml-suggested" && l.kind == LabelKind::AutoAssigned)
    );
    let st = h.state(201).await;
    assert_eq!(st.sentinel_etag(), i.etag.as_deref());
    let snap = st.snapshot().cloned().unwrap();
    assert_eq!(
        snap.fields.owner_upn.as_deref(),
        Some("analyst@contoso.com"),
        "the snapshot holds Sentinel's actual values"
    );

    // Next update: optimistic again, from the snapshot of the merged write.
    h.reset();
    h.d.edit(&tenant(), "201", |i| {
        i.status = DefenderStatus::InProgress;
        i.last_update = ago(0);
    });
    h.cycle().await;
    assert_eq!(h.sentinel_calls(), 1);
    let i = h.s.incident(&name(201)).unwrap();
    assert_eq!(
        i.owner.user_principal_name.as_deref(),
        Some("analyst@contoso.com")
    );
    assert!(
        i.labels.iter().any(|l| l.name == "ml-suggested"),
        "AutoAssigned labels kept from the snapshot"
    );
}

#[tokio::test]
async fn an_unchanged_incident_costs_no_sentinel_call() {
    let h = harness();
    h.add([202, 203], ago(2));
    h.cycle().await;
    h.reset();
    // Listed again in the overlap, same lastUpdateDateTime: dropped by the state.
    // Touched in Defender without a change Sentinel shows: rebuilt, compared, not written.
    h.d.edit(&tenant(), "203", |i| {
        i.system_tags = vec!["auto".into()];
        i.last_update = ago(1);
    });
    let r = h.cycle().await;
    assert!(r.completed && r.written == 0 && r.unchanged == 2, "{r:?}");
    assert_eq!(h.sentinel_calls(), 0, "no Sentinel call, read or write");
    assert_eq!(h.logs.probe.calls("ship"), 0);
}

#[tokio::test]
async fn a_crash_after_the_put_is_finished_by_a_409_and_a_get_without_a_second_write() {
    let h = harness();
    h.add([204], ago(30));
    h.cycle().await;
    h.d.edit(&tenant(), "204", |i| {
        i.status = DefenderStatus::InProgress;
        i.last_update = ago(1);
    });
    // The PUT went through; the process died before the state write (the stored etag is stale).
    h.store.fail_incident_puts.store(1, Ordering::SeqCst);
    let r = h.cycle().await;
    assert!(!r.completed);
    assert_eq!(h.s.puts(&name(204)), 2);
    h.reset();
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!(
        h.s.puts(&name(204)),
        2,
        "Sentinel already holds it: no second accepted write"
    );
    assert_eq!(h.s.probe.calls("get_incident"), 1);
    assert_eq!(
        h.state(204).await.sentinel_etag().map(str::to_owned),
        h.s.incident(&name(204)).unwrap().etag
    );
}

#[tokio::test]
async fn a_changed_incident_costs_about_one_upstream_call() {
    let h = harness();
    for n in 0..100u32 {
        h.d.upsert(incident(
            &tenant(),
            3000 + n,
            ago(50) + time::Duration::seconds(i64::from(n)),
        ));
    }
    h.cycle().await;
    h.reset();
    for n in 0..100u32 {
        h.d.edit(&tenant(), &(3000 + n).to_string(), |i| {
            i.status = DefenderStatus::InProgress;
            i.last_update = ago(3) + time::Duration::milliseconds(i64::from(n));
        });
    }
    let r = h.cycle().await;
    assert_eq!(r.written, 100, "{r:?}");
    let graph: u64 = ["count", "list", "next_page", "alerts", "get_incident"]
        .map(|op| h.d.probe.calls(op))
        .iter()
        .sum();
    let arm = h.sentinel_calls();
    let logs = h.logs.probe.calls("ship");
    assert_eq!(
        (
            h.s.probe.calls("get_incident"),
            h.s.probe.calls("put_incident")
        ),
        (0, 100)
    );
    let per_incident = (graph + arm + logs) as f64 / 100.0;
    assert!(
        per_incident <= 1.1,
        "{per_incident} calls per changed incident (graph {graph}, arm {arm}, logs {logs})"
    );
}

#[tokio::test]
async fn an_incident_deleted_in_sentinel_is_recreated_not_parked() {
    let h = harness();
    h.add([205], ago(30));
    h.cycle().await;
    h.s.delete(&name(205));
    h.d.edit(&tenant(), "205", |i| {
        i.severity = DefenderSeverity::Low;
        i.last_update = ago(1);
    });
    h.reset();
    let r = h.cycle().await;
    assert!(r.completed && r.written == 1 && r.parked == 0, "{r:?}");
    assert_eq!(
        h.s.probe.calls("get_incident"),
        1,
        "the refused optimistic PUT started over with a read"
    );
    let i = h.s.incident(&name(205)).unwrap();
    assert_eq!(i.severity, SentinelSeverity::Low);
    assert_eq!(h.state(205).await.sentinel_etag(), i.etag.as_deref());
}

#[tokio::test]
async fn a_rejected_update_is_still_parked_after_a_fresh_read() {
    let h = harness();
    h.add([206], ago(30));
    h.cycle().await;
    h.s.reject(name(206), true);
    h.d.edit(&tenant(), "206", |i| {
        i.status = DefenderStatus::InProgress;
        i.last_update = ago(1);
    });
    h.reset();
    let r = h.cycle().await;
    assert!(r.completed && r.parked == 1, "{r:?}");
    assert_eq!(
        (
            h.s.probe.calls("put_incident"),
            h.s.probe.calls("get_incident")
        ),
        (2, 1)
    );
    assert_eq!(h.store.retry_set(&tenant()).await.unwrap().len(), 1);
}
