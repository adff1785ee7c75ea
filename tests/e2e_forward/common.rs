//! Helpers shared by the forward-sync end-to-end tests: fixtures, Sentinel names, reading the
//! simulators' state in the shapes the assertions need.

use defender_sentinel_sync::domain::{DefenderIncidentId, SentinelIncidentName, TenantId};
use dss_simulators::DefenderAction;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::world::World;

pub use dss_test_support::fixture;

/// The Sentinel incident name of a Defender incident (the stable UUIDv5).
pub fn name_of(tenant: &str, id: &str) -> String {
    SentinelIncidentName::for_defender(
        &TenantId::parse(tenant).unwrap(),
        &DefenderIncidentId::parse(id).unwrap(),
    )
    .to_string()
}

/// The Sentinel incident (ARM resource) of a Defender incident; panics when absent.
pub fn sentinel_of(world: &World, tenant: &str, id: &str) -> Value {
    let name = name_of(tenant, id);
    world
        .sims
        .sentinel_incident(&name)
        .unwrap_or_else(|| panic!("no Sentinel incident {name} for Defender {tenant}/{id}"))
}

/// The Defender incident (Graph JSON with alerts).
pub fn defender_of(world: &World, tenant: &str, id: &str) -> Value {
    world
        .sims
        .defender_incident(tenant, id)
        .unwrap_or_else(|| panic!("no Defender incident {tenant}/{id}"))
}

/// Label names of a Sentinel incident, sorted.
pub fn labels(inc: &Value) -> Vec<String> {
    let mut v: Vec<String> = inc["properties"]["labels"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["labelName"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Messages of a Sentinel incident's comments.
pub fn comments(world: &World, name: &str) -> Vec<String> {
    world
        .sims
        .sentinel_comments(name)
        .iter()
        .filter_map(|c| c["properties"]["message"].as_str().map(str::to_owned))
        .collect()
}

pub fn ts(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(
        v.as_str().unwrap_or_else(|| panic!("not a time: {v}")),
        &Rfc3339,
    )
    .unwrap()
}

/// Makes a Defender incident look updated now (the fixture's 2021 timestamps are older than any
/// allowed look-back).
pub fn touch(world: &World, tenant: &str, id: &str) {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    world
        .sims
        .defender_action(
            tenant,
            id,
            DefenderAction::SetLastUpdate {
                last_update_date_time: now,
            },
        )
        .unwrap();
}

pub fn act(world: &World, tenant: &str, id: &str, action: DefenderAction) {
    world
        .sims
        .defender_action(tenant, id, action)
        .unwrap_or_else(|e| panic!("Defender action on {id}: {e}"));
}

/// Sentinel status of a Defender status (contract: active → New, inProgress/awaitingAction →
/// Active, resolved/redirected → Closed).
pub fn expected_status(defender: &str) -> &'static str {
    match defender {
        "active" => "New",
        "inProgress" | "awaitingAction" => "Active",
        "resolved" | "redirected" => "Closed",
        other => panic!("unexpected Defender status {other}"),
    }
}

pub fn expected_severity(defender: &str) -> &'static str {
    match defender {
        "high" => "High",
        "medium" => "Medium",
        "low" => "Low",
        _ => "Informational",
    }
}

/// First and last activity over a Defender incident's alerts.
pub fn activity(d: &Value) -> (OffsetDateTime, OffsetDateTime) {
    let alerts = d["alerts"].as_array().expect("alerts expanded");
    let first = alerts
        .iter()
        .map(|a| {
            if a["firstActivityDateTime"].is_string() {
                ts(&a["firstActivityDateTime"])
            } else {
                ts(&a["createdDateTime"])
            }
        })
        .min();
    let last = alerts
        .iter()
        .map(|a| {
            if a["lastActivityDateTime"].is_string() {
                ts(&a["lastActivityDateTime"])
            } else {
                ts(&a["lastUpdateDateTime"])
            }
        })
        .max();
    (first.expect("an alert"), last.expect("an alert"))
}
