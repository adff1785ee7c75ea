//! The retry set's owner: incidents that failed for a reason of their own are parked (with
//! backoff) so the watermark can pass them, retried when due, and cleared once they sync.

use super::cycle::{Outcome, TenantCycle, to_time};
use super::horizon::Horizon;
use super::incident::IncidentSync;
use super::report::Tally;
use crate::domain::*;
use crate::ports::*;
use crate::state::*;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;

/// Parked incidents not due (or not cleared) this cycle, each with the `lastUpdateDateTime` it
/// was parked at: a page skips one unless Defender changed it since.
#[derive(Debug, Default)]
pub(super) struct Parked(HashMap<String, OffsetDateTime>);

impl Parked {
    pub fn contains(&self, id: &DefenderIncidentId) -> bool {
        self.0.contains_key(id.as_str())
    }

    /// True when the incident waits for its backoff: parked and not changed in Defender since
    /// (a change may well be the fix, so it is tried at once).
    pub fn waits(&self, d: &DefenderIncident) -> bool {
        self.0
            .get(d.id.as_str())
            .is_some_and(|t| d.last_update <= *t)
    }
}

/// A tenant's retry set during a cycle.
pub(super) struct RetrySet<'a> {
    pub state: &'a dyn StateStore,
    pub cycle: &'a TenantCycle,
    pub horizon: &'a Horizon<'a>,
    /// First delay of the backoff (doubled per attempt), and its cap.
    pub backoff: Duration,
    pub backoff_max: Duration,
}

impl RetrySet<'_> {
    /// Retries the due entries (through `incidents`); returns the incidents still parked.
    pub async fn retry_due(
        &self,
        defender: &dyn DefenderApi,
        incidents: &IncidentSync<'_>,
    ) -> Parked {
        let entries = match self.state.retry_set(&self.cycle.tenant).await {
            Ok(e) => e,
            Err(e) => {
                self.cycle
                    .tally
                    .error(format!("reading the retry set: {e}"));
                return Parked::default();
            }
        };
        let now = OffsetDateTime::now_utc();
        // Reverse sync's entries are the Sentinel poll's to retry; forward sync goes on.
        let (due, later): (Vec<RetryEntry>, Vec<RetryEntry>) = entries
            .into_iter()
            .filter(|e| !e.reverse)
            .partition(|e| e.next_attempt <= now);
        let mut still: HashMap<String, OffsetDateTime> = later
            .iter()
            .map(|e| (e.incident_id.to_string(), e.last_update))
            .collect();
        let results: Vec<(RetryEntry, bool)> = futures::stream::iter(due)
            .map(|e| async move {
                let cleared =
                    !self.cycle.out_of_time() && self.retry_one(defender, incidents, &e).await;
                (e, cleared)
            })
            .buffer_unordered(incidents.concurrency)
            .collect()
            .await;
        still.extend(
            results
                .into_iter()
                .filter(|(_, cleared)| !cleared)
                .map(|(e, _)| (e.incident_id.to_string(), e.last_update)),
        );
        Parked(still)
    }

    /// One retry; true when the incident left the retry set.
    async fn retry_one(
        &self,
        defender: &dyn DefenderApi,
        incidents: &IncidentSync<'_>,
        entry: &RetryEntry,
    ) -> bool {
        let id = &entry.incident_id;
        let incident = match defender.get_incident(&self.cycle.tenant, id).await {
            Ok(Some(i)) => i,
            Ok(None) => return self.unpark(id).await,
            // Still refused (e.g. a payload that cannot be mapped): parked again, with backoff.
            Err(e) if e.class() == ErrorClass::Rejected => {
                self.park(id, entry.last_update, e.to_string(), Some(entry))
                    .await;
                return false;
            }
            Err(e) => {
                self.cycle
                    .tally
                    .error(format!("retrying incident {id}: {e}"));
                return false;
            }
        };
        Tally::add(&self.cycle.tally.seen, 1);
        let t = incident.last_update;
        match incidents.sync_batch(vec![incident], true).await.pop() {
            Some((_, _, Outcome::Written | Outcome::Unchanged)) => {
                Tally::add(&self.cycle.tally.cleared, 1);
                self.unpark(id).await
            }
            Some((_, _, Outcome::Parked(msg))) => {
                self.park(id, t, msg, Some(entry)).await;
                false
            }
            _ => false,
        }
    }

    /// Takes an incident out of the retry set; false when that failed.
    pub async fn unpark(&self, id: &DefenderIncidentId) -> bool {
        match self.state.remove_retry(&self.cycle.tenant, id).await {
            Ok(()) => true,
            Err(e) => {
                self.cycle
                    .tally
                    .error(format!("removing {id} from the retry set: {e}"));
                false
            }
        }
    }

    /// Parks an incident in the retry set (with backoff) and records the failure in its state.
    pub async fn park(
        &self,
        id: &DefenderIncidentId,
        last_update: OffsetDateTime,
        error: String,
        prev: Option<&RetryEntry>,
    ) {
        let attempts = prev.map_or(1, |p| p.attempts.saturating_add(1));
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
        let delay = self.backoff.saturating_mul(factor).min(self.backoff_max);
        let entry = RetryEntry {
            incident_id: id.clone(),
            last_update,
            attempts,
            last_error: error.clone(),
            next_attempt: OffsetDateTime::now_utc() + to_time(delay),
            reverse: false,
        };
        tracing::warn!(incident_id = %id, attempts, error = %error, message = "Incident parked in the retry set.");
        Tally::add(&self.cycle.tally.parked, 1);
        self.cycle.tally.error(format!("incident {id}: {error}"));
        if let Err(e) = self.state.put_retry(&self.cycle.tenant, &entry).await {
            self.cycle.tally.error(format!("parking {id}: {e}"));
        }
        self.record_failure(id, error).await;
    }

    /// Marks the incident's state as parked (for SyncHealth); best effort.
    async fn record_failure(&self, id: &DefenderIncidentId, error: String) {
        let name = SentinelIncidentName::for_defender(&self.cycle.tenant, id);
        let Ok(current) = self.state.incident(&name).await else {
            return;
        };
        let (mut value, pre) = match current {
            Some(v) => (v.value, Precondition::Matches(v.etag)),
            // An insert: the horizon must cover the incident, created before now.
            None => match self.horizon.cover(OffsetDateTime::now_utc()).await {
                Ok(()) => (
                    IncidentState::new(self.cycle.tenant.clone(), id.clone()),
                    Precondition::Absent,
                ),
                Err(_) => return,
            },
        };
        value.last_outcome = Some(crate::state::Outcome::Parked);
        value.last_error = Some(error);
        value.updated_at = Some(OffsetDateTime::now_utc());
        if let Err(e) = self.state.put_incident(&value, pre).await {
            tracing::debug!(error = %e, message = "Parked state not recorded.");
        }
    }
}
