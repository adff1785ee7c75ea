//! The durable sync state, behind [`StateStore`]: checkpoints, retry sets and, per incident,
//! the three-way merge base (`docs/sync-model.md`; layout in `docs/table-layout.md`). Implementations: Azure Table
//! Storage (`table`, production and Azurite) and memory (`memory`, unit tests and the demo).
//!
//! Every record is read with an ETag and written with `If-Match`, so two writers (the timer on
//! one instance, the webhook on another) never silently overwrite each other: a
//! [`StateError::Conflict`] means "re-read and start over".

use crate::domain::{
    DefenderFields, DefenderIncidentId, OwnerType, SentinelFields, SentinelIncidentName, TenantId,
};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

pub mod memory;
pub mod table;

/// An opaque concurrency token of a stored record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

/// A record with the ETag it was read with.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub etag: ETag,
}

/// Where a write expects the record to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// The record must not exist yet (insert).
    Absent,
    /// The record must still carry this ETag (replace with `If-Match`).
    Matches(ETag),
    /// Write whatever is there (only for records with a single writer, such as health figures).
    Any,
}

/// Forward-sync checkpoint of one Defender tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Every incident with `lastUpdateDateTime` < watermark has been delivered or parked.
    #[serde(with = "time::serde::rfc3339")]
    pub watermark: OffsetDateTime,
    /// Incidents already delivered whose `lastUpdateDateTime` equals the watermark instant, so
    /// the overlapping query neither skips nor repeats them.
    pub ids_at_watermark: BTreeSet<String>,
}

/// A tenant's state horizon: no incident created after `created` has a state. The forward
/// sync raises it at the start of each cycle to the cycle's window end, and then takes an
/// incident created after the value it replaced for new without reading its state (the
/// insert's `Absent` precondition still catches a writer that raced it). So that this holds,
/// every writer that inserts an incident state first raises the horizon (compare-and-swap) to
/// at least that incident's `createdDateTime`; writers that only update existing states need
/// not. No record means no state of the tenant exists yet. Deleting the record while states
/// remain breaks that: the next cycle would rewrite those incidents' Sentinel side without
/// reading their merge base.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateHorizon {
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

/// An incident parked after failing for a reason of its own; the watermark passes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetryEntry {
    pub incident_id: DefenderIncidentId,
    #[serde(with = "time::serde::rfc3339")]
    pub last_update: OffsetDateTime,
    pub attempts: u32,
    pub last_error: String,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt: OffsetDateTime,
}

/// Checkpoint of the Sentinel polling path (changes no webhook delivered).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SentinelCheckpoint {
    #[serde(with = "time::serde::rfc3339")]
    pub watermark: OffsetDateTime,
}

/// The last outcome of syncing one incident.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    Synced,
    Unchanged,
    Parked,
    Failed,
}

/// Per-incident state: the id map, the merge base, and what was already mirrored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IncidentState {
    pub tenant: TenantId,
    pub defender_id: DefenderIncidentId,
    pub sentinel_name: SentinelIncidentName,
    /// `lastUpdateDateTime` of the Defender incident last synced.
    #[serde(with = "time::serde::rfc3339::option")]
    pub defender_last_update: Option<OffsetDateTime>,
    /// Last value seen or written on the Defender side, in Defender's vocabulary.
    pub defender_base: Option<DefenderFields>,
    /// Last value seen or written on the Sentinel side, in Sentinel's vocabulary.
    pub sentinel_base: Option<SentinelFields>,
    /// The Sentinel incident's etag after our last write or read.
    pub sentinel_etag: Option<String>,
    /// Fingerprints of comments already mirrored (either direction).
    pub mirrored_comments: BTreeSet<String>,
    /// Alert id → fingerprint of the alert (with its evidence) last shipped to Logs Ingestion.
    pub shipped_alerts: BTreeMap<String, String>,
    pub last_outcome: Option<Outcome>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// The whole Sentinel incident at `sentinel_etag` (our last write or read), so an update
    /// can skip the GET: see [`SentinelSnapshot`]. Absent in states written before it existed.
    #[serde(default)]
    pub sentinel_snapshot: Option<SentinelSnapshot>,
    /// The Defender owner the Sentinel directory does not know: the Sentinel incident is left
    /// unassigned and its description names this owner, on every later update too.
    #[serde(default)]
    pub unknown_owner: Option<String>,
}

/// The Sentinel incident as Sentinel held it right after our last write (the PUT's answer) or
/// read: everything the full-replace PUT and the merge need that [`SentinelFields`] lacks.
/// Unlike `sentinel_base` (which lags behind a pending Defender write), these are Sentinel's
/// actual values at `etag`. Only valid while `etag` equals the state's `sentinel_etag`; a
/// writer that updates `sentinel_etag` without it must clear it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SentinelSnapshot {
    /// The etag these values belong to.
    pub etag: String,
    pub fields: SentinelFields,
    #[serde(default)]
    pub owner_object_id: Option<uuid::Uuid>,
    #[serde(default)]
    pub owner_upn: Option<String>,
    #[serde(default)]
    pub owner_email: Option<String>,
    /// The owner's display name (`assignedTo`).
    #[serde(default)]
    pub owner_assigned_to: Option<String>,
    /// The owner's `ownerType` (`User`, `Group`, `Unknown`).
    #[serde(default)]
    pub owner_type: Option<OwnerType>,
    /// Every label as Sentinel holds it (reserved and AutoAssigned ones included).
    #[serde(default)]
    pub labels: Vec<SnapshotLabel>,
    /// Digest of title and description (the texts themselves are Defender's and can be long).
    #[serde(default)]
    pub text_digest: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub first_activity: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_activity: Option<OffsetDateTime>,
    #[serde(default)]
    pub incident_number: Option<i64>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_modified: Option<OffsetDateTime>,
}

/// One Sentinel label in a [`SentinelSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotLabel {
    pub name: String,
    /// Set by the service (`AutoAssigned`) rather than by a user.
    #[serde(default)]
    pub auto_assigned: bool,
}

impl IncidentState {
    /// A fresh state for an incident never synced before.
    pub fn new(tenant: TenantId, defender_id: DefenderIncidentId) -> Self {
        let sentinel_name = SentinelIncidentName::for_defender(&tenant, &defender_id);
        Self {
            tenant,
            defender_id,
            sentinel_name,
            defender_last_update: None,
            defender_base: None,
            sentinel_base: None,
            sentinel_etag: None,
            mirrored_comments: BTreeSet::new(),
            shipped_alerts: BTreeMap::new(),
            last_outcome: None,
            last_error: None,
            updated_at: None,
            sentinel_snapshot: None,
            unknown_owner: None,
        }
    }
}

/// Sync figures of one tenant's last cycle (shown by SyncHealth).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct TenantHealth {
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_cycle_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_cycle_end: Option<OffsetDateTime>,
    pub last_cycle_completed: bool,
    pub incidents_seen: u64,
    pub incidents_written: u64,
    pub incidents_failed: u64,
    pub throttled_calls: u64,
    pub comment_cap_reached: Vec<String>,
    pub last_errors: Vec<String>,
}

/// The rule of [`StateStore::put_incidents`] every store checks, as a Table transaction does:
/// each incident at most once per call.
pub(crate) fn distinct_incidents(
    items: &[(IncidentState, Precondition)],
) -> Result<(), StateError> {
    let names: std::collections::HashSet<_> = items.iter().map(|(v, _)| v.sentinel_name).collect();
    if names.len() != items.len() {
        return Err(StateError::Invalid(
            "an incident appears twice in one put_incidents call".into(),
        ));
    }
    Ok(())
}

/// States one [`StateStore::put_incidents`] writes all or nothing (Table Storage's limit of
/// operations per entity-group transaction).
pub const MAX_STATES_PER_PUT: usize = 100;

/// Incident states by Sentinel name (see [`StateStore::incidents`]).
pub type IncidentStates = std::collections::HashMap<SentinelIncidentName, Versioned<IncidentState>>;

/// What went wrong in the store, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The precondition failed: someone else wrote first (or the record exists/does not).
    /// Re-read and start over.
    #[error("the state record changed under us (ETag mismatch or already exists)")]
    Conflict,
    /// Throttled by storage; retry later.
    #[error("storage throttled the request; retry after {retry_after:?}")]
    Throttled {
        retry_after: Option<std::time::Duration>,
    },
    /// Credentials or role missing; an operator must act.
    #[error("storage refused our credentials: {0}")]
    Auth(String),
    /// Network or 5xx; the operation may be retried.
    #[error("storage unavailable: {0}")]
    Transient(String),
    /// A record would exceed Table Storage limits even after splitting, or could not be decoded.
    #[error("invalid state record: {0}")]
    Invalid(String),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The durable sync state. Implementations must be safe to share between concurrent invocations
/// and between instances (the Table implementation is; the memory one within a process).
#[async_trait::async_trait]
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// Creates the backing table when missing; idempotent. Called once at startup.
    async fn ensure_ready(&self) -> Result<(), StateError>;

    async fn checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<Versioned<Checkpoint>>, StateError>;
    async fn put_checkpoint(
        &self,
        tenant: &TenantId,
        value: &Checkpoint,
        pre: Precondition,
    ) -> Result<ETag, StateError>;

    /// The tenant's [`StateHorizon`]; `None`: no incident state of the tenant exists.
    async fn state_horizon(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<Versioned<StateHorizon>>, StateError>;
    async fn put_state_horizon(
        &self,
        tenant: &TenantId,
        value: &StateHorizon,
        pre: Precondition,
    ) -> Result<ETag, StateError>;

    async fn retry_set(&self, tenant: &TenantId) -> Result<Vec<RetryEntry>, StateError>;
    async fn put_retry(&self, tenant: &TenantId, entry: &RetryEntry) -> Result<(), StateError>;
    async fn remove_retry(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<(), StateError>;

    async fn sentinel_checkpoint(
        &self,
    ) -> Result<Option<Versioned<SentinelCheckpoint>>, StateError>;
    async fn put_sentinel_checkpoint(
        &self,
        value: &SentinelCheckpoint,
        pre: Precondition,
    ) -> Result<ETag, StateError>;

    /// Per-incident state, looked up by Sentinel name (derived from tenant + id, so this serves
    /// both the forward path and the webhook, which only knows the Sentinel incident).
    async fn incident(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Option<Versioned<IncidentState>>, StateError>;
    async fn put_incident(
        &self,
        value: &IncidentState,
        pre: Precondition,
    ) -> Result<ETag, StateError>;
    /// The states of several incidents in one read (a page's worth); incidents without a state
    /// are absent from the map. Each state comes with its ETag, as from [`StateStore::incident`].
    async fn incidents(&self, names: &[SentinelIncidentName])
    -> Result<IncidentStates, StateError>;
    /// Incidents whose states one [`StateStore::put_incidents`] call can write together share a
    /// group (for Table Storage, a partition). Callers write a set of states one call per group.
    fn incident_group(&self, _name: &SentinelIncidentName) -> String {
        String::new()
    }
    /// Several incidents' states at once, all of one [`StateStore::incident_group`] (an
    /// entity-group transaction where the backend has them). Each item carries its own
    /// precondition; on any conflict nothing of that batch is written. A call of more than
    /// [`MAX_STATES_PER_PUT`] states is written in transactions of that many, each all or
    /// nothing on its own: callers that need one outcome per call stay within it.
    async fn put_incidents(
        &self,
        items: &[(IncidentState, Precondition)],
    ) -> Result<Vec<ETag>, StateError>;

    async fn tenant_health(&self, tenant: &TenantId) -> Result<Option<TenantHealth>, StateError>;
    async fn put_tenant_health(
        &self,
        tenant: &TenantId,
        value: &TenantHealth,
    ) -> Result<(), StateError>;
    /// Incidents whose last outcome was a failure or parking (for SyncHealth), at most `limit`.
    async fn failed_incidents(&self, limit: usize) -> Result<Vec<IncidentState>, StateError>;
}
