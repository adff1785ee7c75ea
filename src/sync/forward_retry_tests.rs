//! Items of a page that cannot be mapped (`IncidentPage::unmappable`): parked when they carry
//! an id, reported when they do not; neither holds the watermark.

use super::*;

#[tokio::test]
async fn unmappable_items_are_parked_retried_until_fixed_and_never_hold_the_watermark() {
    let h = harness();
    h.add([140, 141], ago(30));
    // Inside the overlap: the next cycle lists them again.
    h.d.add_unmappable(&tenant(), "142", "missing lastUpdateDateTime", ago(2));
    h.d.add_unmappable(&tenant(), "?", "item without an id", ago(2));
    let r = h.cycle().await;
    assert!(r.completed, "{r:?}");
    assert_eq!(
        (r.seen, r.written, r.parked, r.failed),
        (4, 2, 1, 1),
        "{r:?}"
    );
    assert!(
        h.watermark().await.unwrap() > ago(1),
        "neither item holds the watermark"
    );
    let set = h.store.retry_set(&tenant()).await.unwrap();
    assert_eq!(
        set.iter()
            .map(|e| (e.incident_id.as_str(), e.attempts))
            .collect::<Vec<_>>(),
        [("142", 1)]
    );
    assert!(set[0].last_error.contains("missing lastUpdateDateTime"));
    let health = h.store.tenant_health(&tenant()).await.unwrap().unwrap();
    assert_eq!(health.incidents_failed, 2);
    assert!(
        health
            .last_errors
            .iter()
            .any(|e| e.contains("142") && e.contains("missing lastUpdateDateTime")),
        "{:?}",
        health.last_errors
    );
    assert!(
        health
            .last_errors
            .iter()
            .any(|e| e.contains("no usable id") && e.contains("item without an id")),
        "{:?}",
        health.last_errors
    );
    let failed = h.store.failed_incidents(10).await.unwrap();
    assert_eq!(
        failed
            .iter()
            .map(|s| s.defender_id.as_str())
            .collect::<Vec<_>>(),
        ["142"],
        "SyncHealth lists it"
    );

    // Retried first (and refused the same way): parked again with one more attempt, not
    // parked a second time when the window lists it again.
    let r = h.cycle().await;
    assert_eq!(h.d.probe.calls("get_incident"), 1);
    assert_eq!((r.parked, r.failed, r.cleared), (1, 1, 0), "{r:?}");
    assert_eq!(h.store.retry_set(&tenant()).await.unwrap()[0].attempts, 2);

    // Fixed upstream: the retry syncs it and it leaves the set.
    h.d.fix_unmappable(incident(&tenant(), 142, ago(40)));
    let r = h.cycle().await;
    assert_eq!(r.cleared, 1, "{r:?}");
    assert!(h.store.retry_set(&tenant()).await.unwrap().is_empty());
    assert_eq!(h.s.puts(&name(142)), 1);
    assert!(h.store.failed_incidents(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_retry_backs_off() {
    let h = harness();
    let mut opts = options();
    opts.park_backoff = Duration::from_secs(3600);
    opts.park_backoff_max = Duration::from_secs(3600);
    let h = Harness {
        sync: h.sync.with_options(opts),
        ..h
    };
    h.d.add_unmappable(&tenant(), "150", "bad severity", ago(30));
    h.cycle().await;
    assert_eq!(h.store.retry_set(&tenant()).await.unwrap().len(), 1);
    let r = h.cycle().await;
    assert_eq!(h.d.probe.calls("get_incident"), 0, "not due yet");
    assert!(r.completed && r.parked == 0, "{r:?}");
}

#[tokio::test]
async fn a_parked_incident_changed_in_defender_is_tried_at_once_not_after_its_backoff() {
    let h = harness();
    let mut opts = options();
    opts.park_backoff = Duration::from_secs(3600);
    opts.park_backoff_max = Duration::from_secs(3600);
    let h = Harness {
        sync: h.sync.with_options(opts),
        ..h
    };
    h.add([160], ago(30));
    h.s.reject(name(160), true);
    let r = h.cycle().await;
    assert_eq!(r.parked, 1, "{r:?}");

    // Unchanged in Defender and not due: left alone.
    h.s.reject(name(160), false);
    let r = h.cycle().await;
    assert_eq!((r.cleared, h.s.puts(&name(160))), (0, 0), "{r:?}");

    // Changed in Defender (inside the overlap): tried now, synced, and out of the retry set.
    h.add([160], ago(1));
    let r = h.cycle().await;
    assert_eq!(r.cleared, 1, "{r:?}");
    assert_eq!(h.s.puts(&name(160)), 1);
    assert!(h.store.retry_set(&tenant()).await.unwrap().is_empty());
    assert!(h.store.failed_incidents(10).await.unwrap().is_empty());
}
