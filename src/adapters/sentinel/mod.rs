//! Microsoft Sentinel incidents and comments through Azure Resource Manager.
//! Wire types are private ([`wire`]) and map to the domain in one place.

mod client;
mod error;
mod wire;

pub use client::SentinelClient;
pub use error::SentinelError;

/// Maps one ARM incident resource (JSON as the API returns it) to the domain, exactly as
/// [`SentinelClient`] does. For tools that hold raw payloads (the demo).
pub fn incident_from_json(
    raw: serde_json::Value,
) -> Result<crate::domain::SentinelIncident, String> {
    let dto: wire::IncidentDto =
        serde_json::from_value(raw).map_err(|e| format!("incident does not parse: {e}"))?;
    crate::domain::SentinelIncident::try_from(dto)
}
