//! SyncHealth after cycles: per-tenant figures, and separate checkpoints per Defender tenant.

use crate::support::world::{World, WorldOptions};
use dss_simulators::wellknown;
use serde_json::Value;

/// A tenant the app is not consented in: its tokens are refused, so its cycle cannot complete.
pub const UNCONSENTED: &str = "cccccccc-1111-4222-8333-444444444444";

#[tokio::test]
async fn sync_health_reports_each_tenant_and_tenants_keep_separate_checkpoints() {
    let tenants = format!(
        "{},{},{UNCONSENTED}",
        wellknown::TENANT_ID,
        wellknown::TENANT_ID_2
    );
    let world = World::start_with(WorldOptions {
        env: vec![("DEFENDER_TENANT_IDS".into(), tenants)],
        ..Default::default()
    })
    .await;
    world.sims.seed_capped(wellknown::TENANT_ID, 5, 61, 2);
    world.sims.seed_capped(wellknown::TENANT_ID_2, 3, 62, 2);
    let reply = world.sync().await;
    assert_eq!(
        reply.return_value["completed"], false,
        "one tenant cannot complete"
    );

    let health = world.health().await;
    let per = &health["perTenant"];
    let check = |tenant: &str, seen: u64| {
        let h: &Value = &per[tenant];
        assert_eq!(h["incidents_seen"], seen, "{tenant}: {h}");
        assert_eq!(h["incidents_written"], seen, "{tenant}: {h}");
        assert_eq!(h["incidents_failed"], 0, "{tenant}: {h}");
        assert_eq!(h["throttled_calls"], 0, "{tenant}: {h}");
        assert_eq!(h["last_cycle_completed"], true, "{tenant}: {h}");
        assert_eq!(
            h["last_errors"].as_array().map(Vec::len),
            Some(0),
            "{tenant}: {h}"
        );
        assert!(
            h["last_cycle_start"].as_str().unwrap() <= h["last_cycle_end"].as_str().unwrap(),
            "{h}"
        );
        let lag = h["lag_seconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{tenant} has a lag: {h}"));
        assert!(lag < 60, "{tenant}: lag {lag}s after a completed cycle");
    };
    check(wellknown::TENANT_ID, 5);
    check(wellknown::TENANT_ID_2, 3);
    let bad = &per[UNCONSENTED];
    assert_eq!(bad["last_cycle_completed"], false, "{bad}");
    assert!(!bad["last_errors"].as_array().unwrap().is_empty(), "{bad}");
    // Its watermark stays at the look-back start (24 h by default): the lag shows it.
    let lag = bad["lag_seconds"]
        .as_u64()
        .unwrap_or_else(|| panic!("{bad}"));
    assert!((24 * 3600 - 60..24 * 3600 + 60).contains(&lag), "{bad}");

    // The next cycle: the completed tenants continue from their own checkpoints.
    // (Generated incidents carry past update times: make the new one updated now.)
    let new = world.sims.seed_capped(wellknown::TENANT_ID_2, 1, 63, 2);
    super::common::touch(&world, wellknown::TENANT_ID_2, &new[0]);
    let reply = world.sync().await;
    let tenants = reply.return_value["figures"]["tenants"]
        .as_array()
        .unwrap()
        .clone();
    let written = |t: &str| {
        tenants.iter().find(|x| x["tenant"] == t).unwrap()["written"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        (
            written(wellknown::TENANT_ID),
            written(wellknown::TENANT_ID_2)
        ),
        (0, 1),
        "{tenants:?}"
    );
    let per = world.health().await["perTenant"].clone();
    assert_eq!(per[wellknown::TENANT_ID_2]["incidents_written"], 1);
    assert_eq!(per[wellknown::TENANT_ID]["incidents_written"], 0);
}
