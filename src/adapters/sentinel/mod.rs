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

/// Entry points for the fuzz targets and the corpus replay (`crate::fuzzing`): the parsers of
/// ARM answers exactly as [`SentinelClient`] runs them, without exposing the wire types.
pub(crate) mod fuzz {
    use super::wire;
    use crate::domain::{SentinelComment, SentinelIncident};

    /// Each item of a list page, mapped (or its error).
    pub(crate) type Items = Vec<Result<SentinelIncident, String>>;

    /// A list page: each item mapped (or its error) and the next link.
    pub(crate) fn incident_page(body: &[u8]) -> Result<(Items, Option<String>), String> {
        let page: wire::ListDto<Box<serde_json::value::RawValue>> =
            serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let items = page
            .value
            .iter()
            .map(|raw| {
                serde_json::from_str::<wire::IncidentDto>(raw.get())
                    .map_err(|e| e.to_string())
                    .and_then(SentinelIncident::try_from)
            })
            .collect();
        Ok((items, page.next_link))
    }

    /// One incident resource (GET, the PUT answer).
    pub(crate) fn incident(body: &[u8]) -> Result<SentinelIncident, String> {
        let dto: wire::IncidentDto = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        SentinelIncident::try_from(dto)
    }

    /// A comments page.
    pub(crate) fn comment_page(
        body: &[u8],
    ) -> Result<(Vec<SentinelComment>, Option<String>), String> {
        let page: wire::ListDto<wire::CommentDto> =
            serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok((
            page.value.into_iter().map(SentinelComment::from).collect(),
            page.next_link,
        ))
    }

    /// The PUT body the client would send for `incident`, as JSON.
    pub(crate) fn put_body(incident: &SentinelIncident) -> Result<serde_json::Value, String> {
        let dto = wire::PutDto::try_from(incident)?;
        serde_json::to_value(&dto).map_err(|e| e.to_string())
    }
}
