//! Microsoft Graph security (Defender XDR incidents, alerts, comments; users).
//! Wire types are private ([`wire`]); they map to the domain in one place ([`mapping`]).

mod client;
mod error;
mod mapping;
mod request;
mod users;
mod wire;

pub use client::GraphClient;
pub use error::DefenderError;

/// Maps one Graph incident (JSON as `/security/incidents` returns it, alerts optional) of
/// `tenant` to the domain, exactly as [`GraphClient`] does. For tools that hold raw payloads
/// (the demo reads the simulators' state with it).
pub fn incident_from_json(
    tenant: &crate::domain::TenantId,
    raw: serde_json::Value,
) -> Result<crate::domain::DefenderIncident, String> {
    let raw = serde_json::value::to_raw_value(&raw)
        .map_err(|e| format!("incident does not serialize: {e}"))?;
    mapping::incident(tenant, &raw)
}
