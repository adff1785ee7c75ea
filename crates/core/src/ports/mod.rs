//! What the sync engine needs from each upstream, as traits, with their value types and their
//! error types. The adapters in `adapters/` implement them over HTTP; tests implement them in
//! memory. Everything here speaks the domain model, never a wire format; the adapters depend on
//! this module, never the other way.

use crate::domain::*;
use time::OffsetDateTime;

mod error;

pub use crate::domain::{DefenderPatch, IncidentWindow};
pub use error::{Classify, DefenderError, ErrorClass, LogsError, SentinelError};

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

/// Defender XDR through Microsoft Graph security.
#[async_trait::async_trait]
pub trait DefenderApi: Send + Sync {
    /// How many incidents the window holds (`$count=true`); `None` when Graph answers without
    /// `@odata.count` (the pull then reads smaller windows instead of trusting a count).
    async fn count_incidents(
        &self,
        tenant: &TenantId,
        window: &IncidentWindow,
    ) -> Result<Option<u64>, DefenderError>;
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
    /// How long a write that ended without an answer (cut off by the call timeout, a reset, a
    /// 5xx) may still be applied by the service afterwards: a POST is not taken over, or sent
    /// again, before this has passed since it was claimed. Default: none (a service that
    /// applies nothing after its answer, as the in-memory fakes).
    fn write_settle(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// A page of Sentinel incidents.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelPage {
    pub incidents: Vec<SentinelIncident>,
    pub next_link: Option<String>,
}

/// How the incidents of a Sentinel target come to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioning {
    /// The sync creates each one, with a PUT under a name derived from the Defender incident
    /// (Sentinel through ARM).
    BySync,
    /// The service creates them from the alerts the sync ingests (the unified Defender portal's
    /// correlation engine): the sync ships the alerts, waits for the incident to appear, then
    /// updates it. It never creates one.
    ByService,
}

/// The Sentinel side: where Defender incidents are mirrored (Microsoft Sentinel incidents
/// through ARM today). The engine finds an incident by the Defender incident it mirrors
/// ([`SentinelApi::find_mirror`]) and asks how incidents come to exist
/// ([`SentinelApi::provisioning`]), so a target whose incidents the service creates is one
/// more implementation of this trait.
#[async_trait::async_trait]
pub trait SentinelApi: Send + Sync {
    /// How this target's incidents come to exist (default: the sync creates them).
    fn provisioning(&self) -> Provisioning {
        Provisioning::BySync
    }
    /// The incident mirroring Defender incident `id` of `tenant`, if it exists. The default
    /// reads the name derived from them (ARM); a target whose incidents the service names finds
    /// it another way (e.g. by the alerts it was made from).
    async fn find_mirror(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<Option<SentinelIncident>, SentinelError> {
        self.get_incident(&SentinelIncidentName::for_defender(tenant, id))
            .await
    }
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
