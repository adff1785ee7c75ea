//! Reverse sync end to end (issue 12): the built handler under the fake Functions host, against
//! the simulators, with its state in Azurite. Sentinel analysts act through the simulator's
//! control API; every `DefenderSync` cycle runs the Sentinel poll after the tenants, so a
//! change reaches Defender within one cycle, and the cycle after it writes nothing anywhere.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

#[path = "e2e_reverse/analyst.rs"]
mod analyst;
#[path = "e2e_forward/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "e2e_reverse/conflicts.rs"]
mod conflicts;
#[path = "e2e_reverse/echo.rs"]
mod echo;
#[path = "e2e_reverse/faults.rs"]
mod faults;

use common::*;
use dss_simulators::{DefenderAction, SentinelAction, wellknown};
use serde_json::Value;
use support::world::{World, WorldOptions};

const T: &str = wellknown::TENANT_ID;

/// A world of `n` incidents of tenant `T` (few alerts), made active with low severity and
/// synced once; `env`: extra settings.
async fn synced(n: usize, seed: u64, env: &[(&str, &str)]) -> (World, Vec<String>) {
    let world = World::start_with(WorldOptions {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..WorldOptions::default()
    })
    .await;
    let ids = world.sims.seed_capped(T, n, seed, 2);
    for id in &ids {
        act(
            &world,
            T,
            id,
            DefenderAction::SetStatus {
                status: "active".into(),
            },
        );
        act(&world, T, id, DefenderAction::Assign { assigned_to: None });
        act(
            &world,
            T,
            id,
            DefenderAction::SetSeverity {
                severity: "low".into(),
            },
        );
    }
    world.sync_ok().await;
    (world, ids)
}

/// A Sentinel analyst action on the mirror of Defender incident `id` of `tenant`.
fn sentinel_act(world: &World, tenant: &str, id: &str, action: SentinelAction) {
    world
        .sims
        .sentinel_action(&name_of(tenant, id), action)
        .unwrap_or_else(|e| panic!("Sentinel action on {id}: {e}"));
}

/// The reply's figures of the Sentinel poll.
fn poll(reply: &Value) -> &Value {
    let p = &reply["figures"]["reverse"];
    assert!(p.is_object(), "the poll ran: {reply}");
    p
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no figure {key} in {v}"))
}

/// Calls of an API other than reads, since the last counter reset.
fn writes(world: &World, api: &str) -> u64 {
    world
        .sims
        .counters()
        .by_api
        .get(api)
        .into_iter()
        .flatten()
        .filter(|(op, _)| !op.starts_with("GET"))
        .map(|(_, c)| c.calls)
        .sum()
}

/// One more cycle that completes and writes nothing on either side (counted by the simulators).
async fn assert_idle(world: &World) -> Value {
    world.sims.reset_counters();
    let reply = world.sync_ok().await.return_value;
    assert_eq!(writes(world, "graph"), 0, "no Defender write: {reply}");
    assert_eq!(writes(world, "arm"), 0, "no Sentinel write: {reply}");
    let p = poll(&reply);
    assert_eq!(
        (n(p, "defenderWrites"), n(p, "comments"), n(p, "failed")),
        (0, 0, 0),
        "{p}"
    );
    // Incidents listed again (the overlap) are decided from the state: unchanged or not ours.
    assert_eq!(n(p, "seen"), n(p, "unchanged") + n(p, "unmanaged"), "{p}");
    reply
}

/// Comments of a Defender incident (Graph JSON), texts only.
fn defender_comments(world: &World, tenant: &str, id: &str) -> Vec<String> {
    defender_of(world, tenant, id)["comments"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["comment"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
