//! The owner of a tenant's [`StateHorizon`] during a cycle: it raises the horizon before any
//! incident state is inserted, and says which incidents are surely new (no state to read).

use crate::domain::*;
use crate::state::*;
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// Attempts to raise the state horizon when other writers keep moving it.
const HORIZON_ATTEMPTS: usize = 5;

/// A tenant's state horizon as this cycle last read or wrote it. Every insert of an incident
/// state goes through [`Horizon::cover`] first: that is how the rule of [`StateHorizon`] holds.
pub(super) struct Horizon<'a> {
    state: &'a dyn StateStore,
    tenant: &'a TenantId,
    held: Mutex<Option<Versioned<StateHorizon>>>,
    /// Incidents created after this instant have no state yet: the horizon the cycle's
    /// opening raise replaced (the earliest instant when there was none). Unset (that raise
    /// failed, or was not made yet): every state is read.
    new_after: std::sync::OnceLock<OffsetDateTime>,
}

impl<'a> Horizon<'a> {
    pub fn new(state: &'a dyn StateStore, tenant: &'a TenantId) -> Self {
        Self {
            state,
            tenant,
            held: Mutex::new(None),
            new_after: std::sync::OnceLock::new(),
        }
    }

    /// Raises the horizon to the cycle's window end, and from then on takes an incident
    /// created after the value it replaced for new.
    pub async fn open(&self, window_end: OffsetDateTime) {
        // Every incident of the window was created before its end (creation ≤ last update).
        match self.raise(window_end).await {
            Ok(before) => {
                let _ = self
                    .new_after
                    .set(before.unwrap_or(OffsetDateTime::UNIX_EPOCH));
            }
            Err(e) => {
                tracing::warn!(error = %e, message = "The state horizon could not be raised; every incident's state is read.");
            }
        }
    }

    /// True when the incident cannot have a state yet (its state is inserted without a read;
    /// the insert's `Absent` precondition still catches a writer that raced it).
    pub fn surely_new(&self, d: &DefenderIncident) -> bool {
        self.new_after.get().is_some_and(|t| d.created > *t)
    }

    /// Makes sure the horizon covers an incident whose state is about to be inserted (only an
    /// incident created after the cycle's window end, which Graph should never list, needs a
    /// raise).
    pub async fn cover(&self, created: OffsetDateTime) -> Result<(), StateError> {
        let covered = self
            .held
            .lock()
            .await
            .as_ref()
            .is_some_and(|v| v.value.covers(created));
        if !covered {
            self.raise(created).await?;
        }
        Ok(())
    }

    /// Raises the horizon to at least `to` (compare-and-swap, re-reading after a lost race).
    /// Returns the value the write replaced (`None`: there was no record), or the current
    /// value when it already covered `to`.
    async fn raise(&self, to: OffsetDateTime) -> Result<Option<OffsetDateTime>, StateError> {
        let mut held = self.held.lock().await;
        for _ in 0..HORIZON_ATTEMPTS {
            let current = match held.take() {
                Some(v) => Some(v),
                None => self.state.state_horizon(self.tenant).await?,
            };
            let before = current.as_ref().map(|v| v.value.created());
            let Some(value) = StateHorizon::raised(current.as_ref().map(|v| &v.value), to) else {
                *held = current;
                return Ok(before);
            };
            let pre = current.as_ref().map_or(Precondition::Absent, |v| {
                Precondition::Matches(v.etag.clone())
            });
            match self.state.put_state_horizon(self.tenant, &value, pre).await {
                Ok(etag) => {
                    *held = Some(Versioned { value, etag });
                    return Ok(before);
                }
                // Someone else moved it: read it again.
                Err(StateError::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        Err(StateError::Conflict)
    }
}
