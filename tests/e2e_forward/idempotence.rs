//! Idempotence: unchanged cycles write nothing; a lost state makes a re-create an update.

use super::common::*;
use crate::support::world::World;
use dss_fake_host::TimerCall;
use dss_simulators::wellknown;
use serde_json::Value;
use std::collections::BTreeMap;

/// Every Sentinel incident's name with its comment count.
fn comment_counts(world: &World) -> BTreeMap<String, usize> {
    world
        .sims
        .sentinel_incidents()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .map(|n| (n.clone(), comments(world, &n).len()))
        .collect()
}

fn row_ids(world: &World) -> Vec<String> {
    let mut ids: Vec<String> = world
        .sims
        .ingested_rows(wellknown::STREAM_NAME)
        .iter()
        .map(|r| r["RowId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn written(reply: &Value) -> u64 {
    reply["figures"]["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["written"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn unchanged_cycles_write_nothing_and_a_lost_state_never_duplicates() {
    let world = World::start().await;
    let ids = world.sims.seed_capped(wellknown::TENANT_ID, 10, 21, 3);
    world.sims.seed_capped(wellknown::TENANT_ID_2, 3, 22, 3);
    for id in ids.iter().take(3) {
        act(
            &world,
            wellknown::TENANT_ID,
            id,
            dss_simulators::DefenderAction::Comment {
                comment: format!("note on {id}"),
            },
        );
    }
    let first = world.sync_ok().await;
    assert_eq!(written(&first.return_value), 13, "{:?}", first.return_value);
    let names: Vec<String> = comment_counts(&world).into_keys().collect();
    let counts = comment_counts(&world);
    let rows = row_ids(&world);
    assert!(
        counts.values().sum::<usize>() >= 3,
        "the Defender comments were mirrored: {counts:?}"
    );

    for cycle in 2..=3 {
        world.sims.reset_counters();
        let reply = world.sync_ok().await;
        assert_eq!(
            world.arm_writes(),
            0,
            "cycle {cycle} wrote to ARM: {:?}",
            world.sims.counters().by_api.get("arm")
        );
        assert_eq!(
            written(&reply.return_value),
            0,
            "cycle {cycle}: {:?}",
            reply.return_value
        );
        assert_eq!(
            row_ids(&world),
            rows,
            "cycle {cycle} shipped alert rows again"
        );
    }

    // The state is lost (a handler on an empty table): everything is synced again, as updates
    // of the same UUIDv5-named incidents, with the same comment ids and row ids.
    let fresh = world
        .another_handler(&[("SYNC_STATE_TABLE", "WipedState")])
        .await;
    let reply = fresh
        .invoke_timer("DefenderSync", &TimerCall::default())
        .await
        .expect("a valid reply");
    assert_eq!(reply.return_value["completed"], true, "{:?}", reply.logs);
    assert_eq!(
        comment_counts(&world),
        counts,
        "no incident and no comment was duplicated"
    );
    let again: Vec<String> = comment_counts(&world).into_keys().collect();
    assert_eq!(again, names);
    let mut after = row_ids(&world);
    after.dedup();
    assert_eq!(
        after, rows,
        "re-shipped rows carry the same row ids (de-duplicated downstream)"
    );
}
