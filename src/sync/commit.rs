//! How a prepared incident's sync ends: its new alert rows shipped to Logs Ingestion (one call
//! per batch), then its state written (one transaction per store group). Both work on a whole
//! batch of [`Prepared`] incidents.

use super::cycle::{Done, Outcome, TenantCycle};
use crate::domain::*;
use crate::ports::*;
use crate::state::*;
use futures::StreamExt;
use std::collections::BTreeMap;

/// An incident synced upstream (Sentinel incident, comments) whose alert rows and state are
/// still to be written.
pub(super) struct Prepared {
    pub d: DefenderIncident,
    pub st: IncidentState,
    pub pre: Precondition,
    pub wrote: bool,
    /// New or changed alerts, with their fingerprints (stored once shipped).
    pub rows: Vec<AlertRecord>,
    /// Alert id → fingerprint of each row's alert (stored in the state once shipped).
    pub fingerprints: Vec<(String, String)>,
    /// Set when the incident must be retried later although its writes went through.
    pub parked: Option<String>,
}

impl Prepared {
    /// The outcome once its state is written.
    fn outcome(self) -> Done {
        let outcome = match self.parked {
            Some(reason) => Outcome::Parked(reason),
            None if self.wrote => Outcome::Written,
            None => Outcome::Unchanged,
        };
        (self.d.id, self.d.last_update, outcome)
    }
}

/// Ships a batch's alert rows.
pub(super) struct AlertShipper<'a> {
    pub logs: Option<&'a dyn LogsIngest>,
    pub cycle: &'a TenantCycle,
}

impl AlertShipper<'_> {
    /// Ships the batch's alert rows in one call (the adapter splits by size); returns the
    /// incidents whose rows went out. When Logs Ingestion refuses the rows, each incident's
    /// rows are tried alone so one bad incident is parked and the others go through.
    pub async fn ship(&self, mut ready: Vec<Prepared>, done: &mut Vec<Done>) -> Vec<Prepared> {
        let Some(logs) = self.logs else { return ready };
        // The rows move into one list (and back, if each incident must be tried alone).
        let counts: Vec<usize> = ready.iter().map(|p| p.rows.len()).collect();
        let rows: Vec<AlertRecord> = ready
            .iter_mut()
            .flat_map(|p| std::mem::take(&mut p.rows))
            .collect();
        if rows.is_empty() {
            return ready;
        }
        let err = match logs.ship_alerts(&rows).await {
            Ok(()) => return ready,
            Err(e) => e,
        };
        if err.class() != ErrorClass::Rejected || ready.len() == 1 {
            done.extend(ready.into_iter().map(|p| self.not_shipped(p, &err)));
            return Vec::new();
        }
        let mut rows = rows.into_iter();
        for (p, n) in ready.iter_mut().zip(counts) {
            p.rows = rows.by_ref().take(n).collect();
        }
        let mut ok = Vec::new();
        for p in ready {
            match logs.ship_alerts(&p.rows).await {
                Ok(()) => ok.push(p),
                Err(e) => done.push(self.not_shipped(p, &e)),
            }
        }
        ok
    }

    fn not_shipped(&self, p: Prepared, e: &LogsError) -> Done {
        let msg = format!("incident {}: shipping alerts: {e}", p.d.id);
        let outcome = match e.class() {
            ErrorClass::Rejected => Outcome::Parked(msg),
            ErrorClass::Auth => self.cycle.fatal(msg),
            _ => self.cycle.held(msg),
        };
        (p.d.id, p.d.last_update, outcome)
    }
}

/// What writing a batch's states ended in: final outcomes, and the incidents whose state
/// changed under us (each starts over).
#[derive(Default)]
pub(super) struct Committed {
    pub done: Vec<Done>,
    pub restart: Vec<DefenderIncident>,
}

/// Writes prepared incidents' states.
pub(super) struct StateCommit<'a> {
    pub state: &'a dyn StateStore,
    pub cycle: &'a TenantCycle,
    pub concurrency: usize,
}

impl StateCommit<'_> {
    /// Writes the prepared incidents' states, one transaction per group of the store (a Table
    /// partition) and per [`MAX_STATES_PER_PUT`] states, all at once, each state with its own
    /// `If-Match`. When a transaction loses a race or is refused (too big), nothing of it was
    /// written: each of its states is then written alone, so only the incidents that really
    /// conflict start over (when `may_restart`; else they hold). Any other failure (storage
    /// down, the process dying) holds that group's incidents, exactly as a failed single write
    /// would.
    pub async fn commit_all(&self, mut ready: Vec<Prepared>, may_restart: bool) -> Committed {
        for p in &mut ready {
            for (id, fp) in p.fingerprints.drain(..) {
                p.st.shipped_alerts.insert(id, fp);
            }
        }
        let mut groups: BTreeMap<String, Vec<Vec<Prepared>>> = BTreeMap::new();
        for p in ready {
            let chunks = groups
                .entry(self.state.incident_group(&p.st.sentinel_name))
                .or_default();
            match chunks.last_mut() {
                Some(last) if last.len() < MAX_STATES_PER_PUT => last.push(p),
                _ => chunks.push(vec![p]),
            }
        }
        let all = futures::future::join_all(
            groups
                .into_values()
                .flatten()
                .map(|g| self.commit_group(g, may_restart)),
        )
        .await;
        let mut out = Committed::default();
        for c in all {
            out.done.extend(c.done);
            out.restart.extend(c.restart);
        }
        out
    }

    /// Writes the states of one group in one transaction; see [`StateCommit::commit_all`].
    async fn commit_group(&self, mut ready: Vec<Prepared>, may_restart: bool) -> Committed {
        if ready.len() < 2 {
            return self.commit_each(ready, may_restart).await;
        }
        let mut items = Vec::with_capacity(ready.len());
        for p in &mut ready {
            let fresh = IncidentState::new(p.d.tenant.clone(), p.d.id.clone());
            items.push((std::mem::replace(&mut p.st, fresh), p.pre.clone()));
        }
        let result = self.state.put_incidents(&items).await;
        for (p, (st, _)) in ready.iter_mut().zip(items) {
            p.st = st;
        }
        let done = match result {
            Ok(_) => ready.into_iter().map(Prepared::outcome).collect(),
            Err(StateError::Conflict | StateError::Invalid(_)) => {
                tracing::debug!(
                    incidents = ready.len(),
                    message = "A batch state write was refused; writing the states one by one."
                );
                return self.commit_each(ready, may_restart).await;
            }
            Err(e) => ready
                .into_iter()
                .map(|p| self.state_failed(p, &e))
                .collect(),
        };
        Committed {
            done,
            restart: Vec::new(),
        }
    }

    /// Writes each state alone (`If-Match`); a conflict starts the incident over.
    async fn commit_each(&self, ready: Vec<Prepared>, may_restart: bool) -> Committed {
        let results: Vec<Result<Done, Prepared>> = futures::stream::iter(ready)
            .map(|p| async move {
                match self.state.put_incident(&p.st, p.pre.clone()).await {
                    Ok(_) => Ok(p.outcome()),
                    Err(StateError::Conflict) if may_restart => Err(p),
                    Err(e) => Ok(self.state_failed(p, &e)),
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut out = Committed::default();
        for r in results {
            match r {
                Ok(done) => out.done.push(done),
                Err(p) => {
                    tracing::debug!(incident_id = %p.d.id, message = "State changed under us; starting the incident over.");
                    out.restart.push(p.d);
                }
            }
        }
        out
    }

    fn state_failed(&self, p: Prepared, e: &StateError) -> Done {
        let msg = format!("incident {}: state store: {e}", p.d.id);
        (p.d.id, p.d.last_update, self.cycle.held(msg))
    }
}
