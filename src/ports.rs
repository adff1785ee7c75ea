//! What the sync engine needs from each upstream, as traits. The adapters in `adapters/`
//! implement them over HTTP; tests may implement them in memory. Everything here speaks the
//! domain model, never a wire format.

use crate::domain::*;
use time::OffsetDateTime;

pub use crate::adapters::graph::DefenderError;
pub use crate::adapters::logs::LogsError;
pub use crate::adapters::sentinel::SentinelError;

/// A slice of Defender incidents by `lastUpdateDateTime` (`ge from` and `lt to`), optionally
/// narrowed by `createdDateTime` (to split one instant shared by more than 500 incidents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentWindow {
    pub updated_from: OffsetDateTime,
    pub updated_to: Option<OffsetDateTime>,
    pub created_from: Option<OffsetDateTime>,
    pub created_to: Option<OffsetDateTime>,
}

/// One page of incidents.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentPage {
    pub incidents: Vec<DefenderIncident>,
    /// Absolute next link (only ever on the configured Graph host).
    pub next_link: Option<String>,
    /// Items of this page that could not be mapped (bad id, missing timestamp, …), as
    /// `(incident id or "?", error)`: the engine parks them in the retry set; the rest of the
    /// page is delivered normally.
    pub unmappable: Vec<(String, String)>,
}

/// Changes to push to a Defender incident (Graph PATCH): `None` = leave as is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DefenderPatch {
    pub status: Option<DefenderStatus>,
    pub severity: Option<DefenderSeverity>,
    pub classification: Option<DefenderClassification>,
    pub determination: Option<Determination>,
    pub resolving_comment: Option<String>,
    /// `Some(None)` unassigns.
    pub assigned_to: Option<Option<String>>,
    pub custom_tags: Option<Vec<String>>,
}

impl DefenderPatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Defender XDR through Microsoft Graph security.
#[async_trait::async_trait]
pub trait DefenderApi: Send + Sync {
    /// How many incidents the window holds (`$count=true`).
    async fn count_incidents(
        &self,
        tenant: &TenantId,
        window: &IncidentWindow,
    ) -> Result<u64, DefenderError>;
    /// First page of a window, with `$expand=alerts` when `expand_alerts`.
    async fn list_incidents(
        &self,
        tenant: &TenantId,
        window: &IncidentWindow,
        expand_alerts: bool,
    ) -> Result<IncidentPage, DefenderError>;
    /// A following page.
    async fn next_page(
        &self,
        tenant: &TenantId,
        next_link: &str,
    ) -> Result<IncidentPage, DefenderError>;
    /// One incident with its alerts; `None` when it does not exist.
    async fn get_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<Option<DefenderIncident>, DefenderError>;
    /// Alerts of one incident, read on their own (the fallback when a page with `$expand=alerts` fails).
    async fn alerts_for_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<Vec<Alert>, DefenderError>;
    /// PATCH; returns the incident as Graph answers it.
    async fn update_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        patch: &DefenderPatch,
    ) -> Result<DefenderIncident, DefenderError>;
    /// POST a comment; returns all comments of the incident.
    async fn add_comment(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        text: &str,
    ) -> Result<Vec<DefenderComment>, DefenderError>;
    /// Resolves a UPN in the Sentinel tenant (cached); `None` when no such user.
    async fn resolve_user(&self, upn: &str) -> Result<Option<UserRef>, DefenderError>;
}

/// A page of Sentinel incidents.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelPage {
    pub incidents: Vec<SentinelIncident>,
    pub next_link: Option<String>,
}

/// Microsoft Sentinel incidents through ARM.
#[async_trait::async_trait]
pub trait SentinelApi: Send + Sync {
    async fn get_incident(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Option<SentinelIncident>, SentinelError>;
    /// PUT the whole incident, with its etag in the body when it has one (409 on a stale etag).
    async fn put_incident(
        &self,
        incident: &SentinelIncident,
    ) -> Result<SentinelIncident, SentinelError>;
    /// Incidents with `lastModifiedTimeUtc ge since` (first page when `next_link` is `None`).
    async fn list_modified_since(
        &self,
        since: OffsetDateTime,
        next_link: Option<&str>,
    ) -> Result<SentinelPage, SentinelError>;
    async fn list_comments(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Vec<SentinelComment>, SentinelError>;
    /// PUT a comment with a client-chosen (deterministic) id: a retry updates, never duplicates.
    async fn put_comment(
        &self,
        name: &SentinelIncidentName,
        comment_id: uuid::Uuid,
        message: &str,
    ) -> Result<SentinelComment, SentinelError>;
}

/// One alert to ship, with the incident it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub tenant: TenantId,
    pub incident_id: DefenderIncidentId,
    pub sentinel_name: SentinelIncidentName,
    pub alert: Alert,
}

/// Azure Monitor Logs Ingestion: one row per alert and one per evidence item, in the DCR
/// stream's columns (the adapter owns the row format).
#[async_trait::async_trait]
pub trait LogsIngest: Send + Sync {
    /// Ships the alerts (and their evidence) in calls of at most 1,000,000 bytes. All or error.
    async fn ship_alerts(&self, alerts: &[AlertRecord]) -> Result<(), LogsError>;
}

/// What a caller does next with an upstream error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 429, 5xx, dropped connection, deadline: retry later; holds a checkpoint.
    Transient,
    /// The request itself was refused (400, mapping failure): park this item, move on.
    Rejected,
    /// Credentials or permissions: an operator must act; stop the cycle.
    Auth,
    /// The object does not exist.
    NotFound,
    /// Optimistic concurrency lost: re-read and merge again.
    Conflict,
}

/// Implemented by every adapter error.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}
