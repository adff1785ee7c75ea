//! The durable sync state, behind [`StateStore`]: checkpoints, retry sets and, per incident,
//! the three-way merge base (`docs/sync-model.md`). Implementations: Azure Table Storage (the
//! root crate's `state::table`, production and Azurite; layout in `docs/table-layout.md`) and
//! memory (`memory`, unit tests and the demo).
//!
//! Every record is read with an ETag and written with `If-Match`, so two writers (the timer on
//! one instance, the webhook on another) never silently overwrite each other: a
//! [`StateError::Conflict`] means "re-read and start over".

use crate::domain::{DefenderIncidentId, SentinelIncidentName, TenantId};

pub use crate::domain::records::{
    Checkpoint, IncidentState, Outcome, RetryEntry, SentinelCheckpoint, SentinelSnapshot,
    SnapshotLabel, StateHorizon, TenantHealth,
};

pub mod memory;

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

/// The rule of [`StateStore::put_incidents`] every store checks, as a Table transaction does:
/// each incident at most once per call.
pub fn distinct_incidents(items: &[(IncidentState, Precondition)]) -> Result<(), StateError> {
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
