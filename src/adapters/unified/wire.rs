//! Graph `alerts_v2` as the unified target reads it: only what finds an incident (private).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One page of `/security/alerts_v2`.
#[derive(Debug, Deserialize)]
pub(super) struct AlertPageDto {
    #[serde(default)]
    pub value: Vec<AlertDto>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

/// A platform alert: its incident and the analytics rule's custom details.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AlertDto {
    #[serde(default)]
    pub incident_id: Option<String>,
    #[serde(default)]
    pub created_date_time: Option<String>,
    #[serde(default)]
    pub additional_data: Option<Map<String, Value>>,
}

/// One page of `/security/incidents` (items mapped by the Graph adapter's own mapping).
#[derive(Debug, Deserialize)]
pub(super) struct IncidentPageDto {
    #[serde(default)]
    pub value: Vec<Box<RawValue>>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}
