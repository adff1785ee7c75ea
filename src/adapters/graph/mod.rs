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

/// Entry points for the fuzz targets and the corpus replay (`crate::fuzzing`): the parsers of
/// Graph answers exactly as [`GraphClient`] runs them, without exposing the wire types.
pub(crate) mod fuzz {
    use super::{mapping, wire};
    use crate::domain::{Alert, DefenderComment, DefenderIncident, TenantId, UserRef};

    /// A collection page: each item mapped (or its error), with its id hint, and the next link.
    pub(crate) struct Page {
        pub items: Vec<(String, Result<DefenderIncident, String>)>,
        pub next_link: Option<String>,
    }

    pub(crate) fn page(tenant: &TenantId, body: &[u8]) -> Result<Page, String> {
        let page: wire::PageDto = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let items = page
            .value
            .iter()
            .map(|raw| (mapping::id_hint(raw), mapping::incident(tenant, raw)))
            .collect();
        Ok(Page {
            items,
            next_link: page.next_link,
        })
    }

    /// One incident (`GET /incidents/{id}`, the PATCH answer).
    pub(crate) fn incident(tenant: &TenantId, body: &[u8]) -> Result<DefenderIncident, String> {
        let raw: Box<serde_json::value::RawValue> =
            serde_json::from_slice(body).map_err(|e| e.to_string())?;
        mapping::incident(tenant, &raw)
    }

    /// One alert (alerts v2), as `$expand=alerts` delivers it.
    pub(crate) fn alert(body: &[u8]) -> Result<Alert, String> {
        let raw: Box<serde_json::value::RawValue> =
            serde_json::from_slice(body).map_err(|e| e.to_string())?;
        mapping::alert(raw)
    }

    /// The comments list a comment POST answers with.
    pub(crate) fn comments(body: &[u8]) -> Result<Vec<DefenderComment>, String> {
        let dto: wire::CommentsDto = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(dto.value.into_iter().map(mapping::comment).collect())
    }

    /// A `/users/{upn}` answer.
    pub(crate) fn user(body: &[u8], asked: &str) -> Result<Option<UserRef>, String> {
        let dto: wire::UserDto = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(mapping::user(dto, asked))
    }
}
