//! The state horizon: states of incidents created after it are inserted without a read, and
//! every insert is covered by it first.

use super::*;
use crate::state::IncidentState;
use std::sync::atomic::Ordering;

async fn horizon(h: &Harness) -> Option<OffsetDateTime> {
    h.store
        .state_horizon(&tenant())
        .await
        .unwrap()
        .map(|v| v.value.created())
}

#[tokio::test]
async fn new_incidents_are_inserted_without_a_state_read_and_read_once_they_are_known() {
    let h = harness();
    h.add(1..=120, ago(30));
    assert_eq!(horizon(&h).await, None, "no record: no state exists");
    let before = OffsetDateTime::now_utc();
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!(r.written, 120);
    assert_eq!(h.store.states_read.load(Ordering::SeqCst), 0);
    let raised = horizon(&h).await.expect("raised by the cycle");
    assert!(
        raised >= before,
        "raised to the window end, {raised} < {before}"
    );

    // The same incidents changed: they were created before the horizon, so their states
    // (the merge bases) are read, and the analyst's Sentinel change survives.
    h.s.analyst_edit(&name(7), |i| {
        i.owner = Owner {
            user_principal_name: Some("analyst@contoso.com".into()),
            ..Owner::default()
        };
    });
    for id in 1..=120 {
        h.d.edit(&tenant(), &id.to_string(), |i| {
            i.custom_tags = vec!["touched".into()];
            i.last_update = ago(1);
        });
    }
    let r = h.cycle().await;
    assert_eq!(r.written, 120, "{r:?}");
    // Each once, and incident 7 once more: Sentinel refused the first PUT (the analyst's edit
    // moved its etag), so it started over.
    assert_eq!(h.store.states_read.load(Ordering::SeqCst), 121);
    let kept = h.s.incident(&name(7)).unwrap();
    assert_eq!(
        kept.owner.user_principal_name.as_deref(),
        Some("analyst@contoso.com")
    );
    assert!(
        kept.labels.iter().any(|l| l.name == "touched"),
        "{:?}",
        kept.labels
    );
    assert!(horizon(&h).await.unwrap() > raised);
}

#[tokio::test]
async fn a_state_another_writer_inserted_after_the_horizon_rose_is_read_and_kept() {
    let h = harness();
    h.add([5], ago(10));
    // Between the engine's raise and its insert, another writer inserts incident 5's state
    // (with a comment it already mirrored).
    let mut racer = IncidentState::new(tenant(), DefenderIncidentId::parse("5").unwrap());
    racer
        .mirrored_comments
        .insert("mirrored-by-the-racer".into());
    *h.store.insert_before_next_write.lock().unwrap() = Some(racer);
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!((r.written, r.failed), (1, 0), "{r:?}");
    let st = h.store.incident(&name(5)).await.unwrap().unwrap().value;
    assert!(
        st.mirrored_comments.contains("mirrored-by-the-racer"),
        "the racer's state was merged, not overwritten"
    );
    assert!(st.defender_base.is_some(), "and our sync is recorded in it");
    // The lost insert made the engine start the incident over from the racer's state.
    assert!(h.store.states_read.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn an_incident_created_after_the_window_end_raises_the_horizon_before_its_state() {
    let h = harness();
    h.add([9], ago(10));
    // Odd data: created after its last update, after the cycle's window end.
    let future = OffsetDateTime::now_utc() + time::Duration::hours(2);
    h.d.edit(&tenant(), "9", |i| i.created = future);
    let r = h.cycle().await;
    assert_eq!(r.written, 1, "{r:?}");
    assert!(h.store.incident(&name(9)).await.unwrap().is_some());
    assert!(
        horizon(&h).await.is_some_and(|t| t >= future),
        "the horizon covers every incident that has a state"
    );
}
