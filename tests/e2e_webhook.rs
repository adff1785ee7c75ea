//! SentinelWebhook end to end: the built handler under the fake Functions host, against the
//! simulators, with its state in Azurite. The playbook's call is the trigger body the
//! Sentinel simulator renders for an analyst's change.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

#[path = "e2e_webhook/apply.rs"]
mod apply;
#[path = "e2e_webhook/auth.rs"]
mod auth;
#[path = "e2e_webhook/input.rs"]
mod input;

use defender_sentinel_sync::domain::{DefenderIncidentId, SentinelIncidentName, TenantId};
use dss_fake_host::{HttpCall, HttpResponse};
use dss_simulators::{SentinelAction, wellknown};
use serde_json::Value;
use support::world::{World, WorldOptions};

pub const SECRET: &str = "e2e-webhook-secret-0123456789";
pub const AUDIENCE: &str = "api://defender-sentinel-sync-webhook";

/// A world whose webhook takes the secret or a bearer token for [`AUDIENCE`].
pub async fn secured_world() -> World {
    World::start_with(WorldOptions {
        unset: vec!["WEBHOOK_AUTH".into()],
        env: vec![
            ("WEBHOOK_SECRET".into(), SECRET.into()),
            ("WEBHOOK_AUDIENCE".into(), AUDIENCE.into()),
        ],
        ..Default::default()
    })
    .await
}

/// The Sentinel incident name of a Defender incident.
pub fn name_of(tenant: &str, id: &str) -> String {
    SentinelIncidentName::for_defender(
        &TenantId::parse(tenant).unwrap(),
        &DefenderIncidentId::parse(id).unwrap(),
    )
    .to_string()
}

/// One Defender incident, synced to Sentinel; returns (Defender id, Sentinel name).
pub async fn one_synced(world: &World, seed: u64) -> (String, String) {
    let t = wellknown::TENANT_ID;
    let ids = world.sims.seed_capped(t, 1, seed, 1);
    world.sync_ok().await;
    let name = name_of(t, &ids[0]);
    assert!(world.sims.sentinel_incident(&name).is_some());
    (ids[0].clone(), name)
}

/// An analyst closes the Sentinel incident as a true positive; returns the playbook body.
pub fn analyst_closes(world: &World, name: &str) -> Value {
    world
        .sims
        .sentinel_action(
            name,
            SentinelAction::SetStatus {
                status: "Closed".into(),
                classification: Some("TruePositive".into()),
                classification_reason: Some("SuspiciousActivity".into()),
                classification_comment: Some("contained".into()),
            },
        )
        .unwrap()
}

/// POSTs `body` to SentinelWebhook as the host does, with these caller headers.
pub async fn post(world: &World, body: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut call = HttpCall::new("POST")
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        call = call.header(k, v);
    }
    world
        .host
        .invoke_http("SentinelWebhook", &call)
        .await
        .expect("a valid reply")
}

/// The reply's JSON body.
pub fn json(res: &HttpResponse) -> Value {
    serde_json::from_str(&res.body).unwrap_or(Value::Null)
}

/// Writes to Graph (PATCH, POST) counted by the simulator since its last counter reset.
pub fn defender_writes(world: &World) -> u64 {
    writes(world, "graph")
}

/// Writes to ARM since the last counter reset.
pub fn sentinel_writes(world: &World) -> u64 {
    writes(world, "arm")
}

fn writes(world: &World, api: &str) -> u64 {
    world
        .sims
        .counters()
        .by_api
        .get(api)
        .map(|ops| {
            ops.iter()
                .filter(|(op, _)| !op.starts_with("GET "))
                .map(|(_, n)| n.calls)
                .sum()
        })
        .unwrap_or(0)
}

/// The Defender incident's status.
pub fn defender_status(world: &World, id: &str) -> String {
    world
        .sims
        .defender_incident(wellknown::TENANT_ID, id)
        .unwrap()["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
