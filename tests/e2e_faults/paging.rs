//! Pulling: the `$expand=alerts` 500 fallback (each incident read with its alerts), and windows past Graph's `$skip` 500 cap (a
//! 1,200-incident backfill; 600 incidents sharing one lastUpdateDateTime instant).

use super::invariants::*;
use super::one_tenant;
use super::support::world::{World, WorldOptions};
use dss_simulators::{DefenderAction, GraphConfig, ThrottleConfig, wellknown};

#[tokio::test]
async fn expand_alerts_500_falls_back_to_each_incident_and_ships_every_row() {
    let w = one_tenant(&[]).await;
    w.sims.set_graph_config(GraphConfig {
        expand_alerts_fail_above: Some(20),
        ..GraphConfig::default()
    });
    w.sims.seed(wellknown::TENANT_ID, 12, 11);
    let big = w
        .sims
        .defender_incidents(wellknown::TENANT_ID)
        .iter()
        .filter(|d| d["alerts"].as_array().unwrap().len() > 20)
        .count();
    assert!(
        big > 0,
        "the data holds incidents big enough to break $expand"
    );

    let reply = w.sync_ok().await.return_value;
    assert_eq!(figure(&reply, "written"), 12, "{reply}");
    let c = w.sims.counters();
    assert!(
        c.op("graph", "GET incidents").server_errors >= 1,
        "$expand=alerts failed: {:?}",
        c.by_api["graph"]
    );
    assert!(
        c.op("graph", "GET incidents/{id}").ok >= 12,
        "alerts came from each incident read on its own: {:?}",
        c.by_api["graph"]
    );
    assert_eq!(
        c.op("graph", "GET alerts_v2").client_errors,
        0,
        "no undocumented alerts_v2 filter: {:?}",
        c.by_api["graph"]
    );

    assert_converged(&w, &[wellknown::TENANT_ID]);
    assert_rows(&w, &[wellknown::TENANT_ID], false);
    assert_checkpoint(&w, wellknown::TENANT_ID).await;
    assert_idle(&w).await;
}

/// Tenant 1: a 1,200-incident backfill within the lookback. Tenant 2: 600 incidents sharing
/// one lastUpdateDateTime instant (only `createdDateTime` can split that window). One query
/// reaches at most 550 incidents, so both need windows split below Graph's `$skip` cap.
/// Throttling and client limits are off: pacing is not the point here (other tests cover it).
#[tokio::test]
async fn backfill_of_1200_and_600_on_one_instant_lose_nothing_past_the_skip_cap() {
    let env = vec![("SYNC_BENCH_UNLIMITED".to_owned(), "true".to_owned())];
    let w = World::start_with(WorldOptions {
        env,
        ..WorldOptions::default()
    })
    .await;
    w.sims.set_throttle(ThrottleConfig::off());
    w.sims.seed_capped(wellknown::TENANT_ID, 1200, 21, 1);
    let shared = w.sims.seed_capped(wellknown::TENANT_ID_2, 600, 22, 1);
    let instant = graph_time(time::OffsetDateTime::now_utc() - time::Duration::minutes(30));
    for id in &shared {
        let action = DefenderAction::SetLastUpdate {
            last_update_date_time: instant.clone(),
        };
        w.sims
            .defender_action(wellknown::TENANT_ID_2, id, action)
            .unwrap();
    }

    let started = std::time::Instant::now();
    let reply = w.sync_ok().await.return_value;
    println!("backfill cycle: {:?}", started.elapsed());
    let tenants = reply["figures"]["tenants"].as_array().unwrap();
    assert_eq!(tenants[0]["written"], 1200, "{reply}");
    assert_eq!(tenants[1]["written"], 600, "{reply}");
    let c = w.sims.counters();
    assert_eq!(
        c.op("graph", "GET incidents").client_errors,
        0,
        "never past $skip 500: {:?}",
        c.by_api["graph"]
    );

    let all = [wellknown::TENANT_ID, wellknown::TENANT_ID_2];
    assert_converged(&w, &all);
    assert_rows(&w, &all, false);
    assert_checkpoint(&w, wellknown::TENANT_ID).await;
    assert_checkpoint(&w, wellknown::TENANT_ID_2).await;
    assert_idle(&w).await;
}

/// Invariant 2: a change that becomes visible with a lastUpdateDateTime older than the
/// watermark (but inside the overlap) is still delivered, once.
#[tokio::test]
async fn a_write_visible_late_inside_the_overlap_is_delivered() {
    let w = one_tenant(&[]).await;
    let ids = w.sims.seed_capped(wellknown::TENANT_ID, 5, 25, 2);
    w.sync_ok().await;
    let watermark = assert_checkpoint(&w, wellknown::TENANT_ID).await;
    let tags = DefenderAction::Tag {
        custom_tags: vec!["LateWrite".into()],
    };
    w.sims
        .defender_action(wellknown::TENANT_ID, &ids[2], tags)
        .unwrap();
    let late = DefenderAction::SetLastUpdate {
        last_update_date_time: graph_time(watermark - time::Duration::minutes(2)),
    };
    w.sims
        .defender_action(wellknown::TENANT_ID, &ids[2], late)
        .unwrap();

    let reply = w.sync_ok().await.return_value;
    assert_eq!(figure(&reply, "written"), 1, "{reply}");
    assert_converged(&w, &[wellknown::TENANT_ID]);
    assert_rows(&w, &[wellknown::TENANT_ID], false);
    assert_idle(&w).await;
}

/// Graph has been seen to stop paging silently past some offset: a 200 without
/// `@odata.nextLink` while `@odata.count` still counts every incident. A window that delivered
/// fewer than its count is read again in smaller windows, and the checkpoint never passes an
/// incident that was not delivered.
#[tokio::test]
async fn a_window_graph_stops_paging_silently_is_read_again_in_smaller_windows() {
    let w = unlimited_world().await;
    w.sims.set_graph_config(GraphConfig {
        silent_page_end_after: Some(120),
        ..GraphConfig::default()
    });
    w.sims.seed_capped(wellknown::TENANT_ID, 300, 31, 1);

    let reply = w.sync_ok().await.return_value;
    assert_eq!(figure(&reply, "written"), 300, "{reply}");
    let c = w.sims.counters();
    assert!(
        c.op("graph", "GET incidents").ok > 7,
        "the short window was read again in smaller ones: {:?}",
        c.by_api["graph"]
    );

    assert_converged(&w, &[wellknown::TENANT_ID]);
    assert_rows(&w, &[wellknown::TENANT_ID], false);
    assert_checkpoint(&w, wellknown::TENANT_ID).await;
    assert_idle(&w).await;
}

/// Without `@odata.count` the pull still works: a window is paged up to what a window may
/// hold (never past Graph's `$skip` cap), and one that reaches it is read again in halves.
#[tokio::test]
async fn without_odata_count_the_pull_reads_smaller_windows_and_delivers_everything() {
    let w = unlimited_world().await;
    w.sims.set_graph_config(GraphConfig {
        omit_count: true,
        ..GraphConfig::default()
    });
    w.sims.seed_capped(wellknown::TENANT_ID, 700, 32, 1);

    let reply = w.sync_ok().await.return_value;
    assert_eq!(figure(&reply, "failed"), 0, "{reply}");
    let c = w.sims.counters();
    assert_eq!(
        c.op("graph", "GET incidents").client_errors,
        0,
        "never past $skip 500: {:?}",
        c.by_api["graph"]
    );

    assert_converged(&w, &[wellknown::TENANT_ID]);
    assert_rows(&w, &[wellknown::TENANT_ID], false);
    assert_checkpoint(&w, wellknown::TENANT_ID).await;
    assert_idle(&w).await;
}

/// One tenant, throttling and client limits off (pacing is not the point here).
async fn unlimited_world() -> World {
    let env = vec![("SYNC_BENCH_UNLIMITED".to_owned(), "true".to_owned())];
    let w = World::start_with(WorldOptions {
        env,
        ..WorldOptions::default()
    })
    .await;
    w.sims.set_throttle(ThrottleConfig::off());
    w
}
