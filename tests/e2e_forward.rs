//! Forward sync end to end: the built handler under the fake Functions host, against the
//! simulators, with its state in Azurite.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

#[path = "e2e_forward/analyst.rs"]
mod analyst;
#[path = "e2e_forward/cli_sync.rs"]
mod cli_sync;
#[path = "e2e_forward/common.rs"]
mod common;
#[path = "e2e_forward/content.rs"]
mod content;
#[path = "e2e_forward/health.rs"]
mod health;
#[path = "e2e_forward/idempotence.rs"]
mod idempotence;
#[path = "e2e_forward/logs.rs"]
mod logs;
#[path = "e2e_forward/merge.rs"]
mod merge;
#[path = "e2e_forward/webhook.rs"]
mod webhook;

use dss_simulators::wellknown;
use support::world::World;

#[tokio::test]
async fn first_cycle_creates_one_sentinel_incident_per_defender_incident() {
    let world = World::start().await;
    world.sims.seed(wellknown::TENANT_ID, 12, 7);
    world.sims.seed(wellknown::TENANT_ID_2, 5, 8);
    let reply = world.sync_ok().await;
    assert!(
        reply.logs.iter().all(|l| !l.starts_with("error:")),
        "{:?}",
        reply.logs
    );
    let incidents = world.sims.sentinel_incidents();
    assert_eq!(incidents.len(), 17);
    let unknown_owner = incidents
        .iter()
        .filter(|i| {
            i["properties"]["description"]
                .as_str()
                .unwrap_or("")
                .contains("Defender owner:")
        })
        .count();
    assert!(
        unknown_owner > 0,
        "the generated data assigns users the Sentinel directory does not know"
    );
}

/// In Azure Government and Azure China every upstream takes only its own cloud's token
/// audience: the handler asks for `{GRAPH_ENDPOINT}/.default` and `{ARM_ENDPOINT}/.default`, and
/// for `LOGS_INGESTION_AUDIENCE` (the simulators' handler settings name their cloud's), so a
/// cycle completes and ships its rows.
#[tokio::test]
async fn a_cycle_completes_in_each_sovereign_cloud() {
    for cloud in [
        dss_simulators::Cloud::UsGovernment,
        dss_simulators::Cloud::China,
    ] {
        let world = World::start_with(support::world::WorldOptions {
            cloud: Some(cloud),
            ..Default::default()
        })
        .await;
        world.sims.seed(wellknown::TENANT_ID, 3, 4);
        let reply = world.sync_ok().await;
        assert!(
            reply.logs.iter().all(|l| !l.starts_with("error:")),
            "{cloud:?}: {:?}",
            reply.logs
        );
        assert_eq!(world.sims.sentinel_incidents().len(), 3, "{cloud:?}");
        assert!(
            !world.sims.ingested_rows(wellknown::STREAM_NAME).is_empty(),
            "{cloud:?}: alerts shipped"
        );
    }
}
