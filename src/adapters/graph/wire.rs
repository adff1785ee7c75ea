//! Graph wire shapes (private). Everything optional: Graph omits, nulls and adds fields over
//! time, and enum members arrive as plain strings (parsed with a passthrough in the mapping).
//! Page items, alerts and evidence stay raw JSON text until mapped, so their raw JSON is kept
//! whole (and one bad item cannot fail the page).

use serde::Deserialize;
use serde_json::value::RawValue;

/// A collection page (`value`, `@odata.nextLink`, `@odata.count`); items are mapped one by one
/// so one bad item cannot fail the page.
#[derive(Debug, Deserialize)]
pub(super) struct PageDto {
    #[serde(default)]
    pub value: Vec<Box<RawValue>>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.count")]
    pub count: Option<u64>,
}

/// `#microsoft.graph.security.incident`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IncidentDto {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub summary: Option<String>,
    pub status: Option<String>,
    pub severity: Option<String>,
    pub classification: Option<String>,
    pub determination: Option<String>,
    pub resolving_comment: Option<String>,
    pub assigned_to: Option<String>,
    pub custom_tags: Option<Vec<String>>,
    /// Older samples (and a doc example) print `tags` for `customTags`.
    pub tags: Option<Vec<String>>,
    pub system_tags: Option<Vec<String>>,
    pub comments: Option<Vec<CommentDto>>,
    pub redirect_incident_id: Option<String>,
    pub incident_web_url: Option<String>,
    pub created_date_time: Option<String>,
    pub last_update_date_time: Option<String>,
    pub last_modified_by: Option<String>,
    /// Present only with `$expand=alerts`.
    pub alerts: Option<Vec<Box<RawValue>>>,
}

/// `alertComment`; older samples use `createdBy`/`createdTime`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CommentDto {
    pub comment: Option<String>,
    pub created_by_display_name: Option<String>,
    pub created_by: Option<String>,
    pub created_date_time: Option<String>,
    pub created_time: Option<String>,
}

/// The comments list a comment POST answers with.
#[derive(Debug, Deserialize)]
pub(super) struct CommentsDto {
    #[serde(default)]
    pub value: Vec<CommentDto>,
}

/// `#microsoft.graph.security.alert` (alerts v2), read from the kept raw JSON text.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AlertDto {
    pub id: Option<String>,
    pub title: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub service_source: Option<String>,
    pub detection_source: Option<String>,
    pub category: Option<String>,
    pub created_date_time: Option<String>,
    pub last_update_date_time: Option<String>,
    pub first_activity_date_time: Option<String>,
    pub last_activity_date_time: Option<String>,
    pub mitre_techniques: Option<Vec<String>>,
    pub evidence: Option<Vec<Box<RawValue>>>,
}

/// Just the id of an item (for naming one that does not map).
#[derive(Debug, Deserialize)]
pub(super) struct IdDto {
    pub id: Option<serde_json::Value>,
}

/// `#microsoft.graph.user` (the `$select`ed part).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserDto {
    pub id: Option<String>,
    pub user_principal_name: Option<String>,
    pub mail: Option<String>,
    pub display_name: Option<String>,
}
