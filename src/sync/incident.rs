//! Incidents, forward, a batch (one page's worth) at a time. The batch's states are read
//! together first (a few queries instead of a read each). Then per incident ([`IncidentSync`]'s
//! prepare): take the Sentinel incident (none if never synced; rebuilt from the state's snapshot
//! when it holds one of the stored etag; else a GET), merge, PUT the whole incident (409 → start
//! over with fresh reads), mirror comments. Then the batch is committed ([`super::commit`]): its
//! new alert rows go to Logs Ingestion in one call, and its states are written in one
//! transaction per store group, each with `If-Match` (one that conflicts starts over). Every step
//! is idempotent, so a crash anywhere in between is finished by the next cycle without
//! duplicates.

use super::comments::CommentMirror;
use super::commit::{AlertShipper, Prepared, StateCommit};
use super::cycle::{Done, Failure, Outcome, Ports, Step, TenantCycle};
use super::fingerprint::alert_fingerprint;
use super::horizon::Horizon;
use super::merge::{MergeBase, MergeInput, MergeOutcome, MergePolicy, merge};
use super::report::Tally;
use super::{plan, snapshot};
use crate::domain::*;
use crate::ports::*;
use crate::state::{IncidentState, IncidentStates, Precondition, Versioned};
use futures::StreamExt;
use futures::future::BoxFuture;
use time::OffsetDateTime;
use tracing::Instrument;

/// Attempts per incident before giving up for this cycle (each 409 or ETag conflict is one).
const MAX_ROUNDS: usize = 4;

/// What is known of an incident's state before an attempt. (Moved, never copied: boxing the
/// state would cost an allocation per incident on the hot path.)
#[allow(clippy::large_enum_variant)]
enum Known {
    /// Not read yet: the attempt reads it.
    Unread,
    /// Read with the batch's (or surely new): there is none.
    Absent,
    Read(Versioned<IncidentState>),
}

impl Known {
    fn from_batch(read: Option<&mut IncidentStates>, name: &SentinelIncidentName) -> Self {
        match read {
            None => Known::Unread,
            Some(m) => m.remove(name).map_or(Known::Absent, Known::Read),
        }
    }
}

/// What one attempt at an incident came to.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    /// Synced upstream; its rows and state are to be written.
    Ready(Prepared),
    /// The state shows it synced at this `lastUpdateDateTime`: nothing to do.
    AlreadySynced,
}

/// Syncs incidents to Sentinel for one tenant's cycle: prepares each (upstream writes), then
/// commits the batch (rows, states).
pub(super) struct IncidentSync<'a> {
    pub ports: &'a Ports,
    pub cycle: &'a TenantCycle,
    pub horizon: &'a Horizon<'a>,
    pub policy: &'a MergePolicy,
    /// Incidents prepared at the same time.
    pub concurrency: usize,
}

impl IncidentSync<'_> {
    /// Syncs a batch of incidents (one page's worth, or one retry): their Sentinel incidents
    /// and comments a few at a time, then all their new alert rows in one Logs Ingestion call,
    /// then their states. `force` ignores "already synced at this lastUpdateDateTime" (retries).
    pub async fn sync_batch(&self, batch: Vec<DefenderIncident>, force: bool) -> Vec<Done> {
        let done = self.batch_at(batch, force, 0).await;
        // A restarted incident came back through this batch: it is counted here only.
        for (_, _, o) in &done {
            match o {
                Outcome::Written => Tally::add(&self.cycle.tally.written, 1),
                Outcome::Unchanged => Tally::add(&self.cycle.tally.unchanged, 1),
                _ => {}
            }
        }
        done
    }

    fn batch_at<'s>(
        &'s self,
        batch: Vec<DefenderIncident>,
        force: bool,
        depth: usize,
    ) -> BoxFuture<'s, Vec<Done>> {
        Box::pin(async move {
            let (ready, mut done) = self.prepare_all(batch, force, depth).await;
            let ready = self.shipper().ship(ready, &mut done).await;
            let committed = self
                .committer()
                .commit_all(ready, depth + 1 < MAX_ROUNDS)
                .await;
            done.extend(committed.done);
            let restarted: Vec<Vec<Done>> = futures::stream::iter(committed.restart)
                .map(|d| self.batch_at(vec![d], force, depth + 1))
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            done.extend(restarted.into_iter().flatten());
            done
        })
    }

    /// Prepares a batch's incidents a few at a time: those ready to commit, and those done.
    async fn prepare_all(
        &self,
        batch: Vec<DefenderIncident>,
        force: bool,
        depth: usize,
    ) -> (Vec<Prepared>, Vec<Done>) {
        // A restarted incident met a state: it is read again, never taken for new.
        let new = |d: &DefenderIncident| depth == 0 && self.horizon.surely_new(d);
        let mut read = self.read_states(&batch, new).await;
        let prepared: Vec<Result<Prepared, Done>> = futures::stream::iter(batch)
            .map(|d| {
                let name = SentinelIncidentName::for_defender(&d.tenant, &d.id);
                let known = if new(&d) {
                    Known::Absent
                } else {
                    Known::from_batch(read.as_mut(), &name)
                };
                self.prepare(d, force, known)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut done = Vec::new();
        let ready = prepared
            .into_iter()
            .filter_map(|r| r.map_err(|d| done.push(d)).ok())
            .collect();
        (ready, done)
    }

    fn shipper(&self) -> AlertShipper<'_> {
        AlertShipper {
            logs: self.ports.logs.as_deref(),
            cycle: self.cycle,
        }
    }

    fn committer(&self) -> StateCommit<'_> {
        StateCommit {
            state: &*self.ports.state,
            cycle: self.cycle,
            concurrency: self.concurrency,
        }
    }

    fn comments(&self) -> CommentMirror<'_> {
        CommentMirror {
            sentinel: &*self.ports.sentinel,
            cycle: self.cycle,
            policy: &self.policy.conflict,
        }
    }

    /// The states of a batch in one read, except those of `new` incidents (which have none);
    /// `None` when a single incident is left, or when the read failed (each incident then
    /// reads its own and meets the failure itself).
    async fn read_states(
        &self,
        batch: &[DefenderIncident],
        new: impl Fn(&DefenderIncident) -> bool,
    ) -> Option<IncidentStates> {
        let names: Vec<SentinelIncidentName> = batch
            .iter()
            .filter(|d| !new(d))
            .map(|d| SentinelIncidentName::for_defender(&d.tenant, &d.id))
            .collect();
        if names.len() < 2 {
            return None;
        }
        match self.ports.state.incidents(&names).await {
            Ok(states) => Some(states),
            Err(e) => {
                tracing::debug!(error = %e, message = "Reading a page's states at once failed; reading them one by one.");
                None
            }
        }
    }

    /// Syncs one incident's Sentinel side (bounded rounds on 409 and state conflicts).
    async fn prepare(
        &self,
        d: DefenderIncident,
        force: bool,
        known: Known,
    ) -> Result<Prepared, Done> {
        let span =
            tracing::info_span!("incident", incident_id = %d.id, tenant = %self.cycle.tenant);
        self.prepare_rounds(d, force, known).instrument(span).await
    }

    async fn prepare_rounds(
        &self,
        mut d: DefenderIncident,
        force: bool,
        mut known: Known,
    ) -> Result<Prepared, Done> {
        let (id, t) = (d.id.clone(), d.last_update);
        // Not started before the deadline: not a failure, the next cycle takes it.
        if self.cycle.out_of_time() {
            let msg = "the cycle's deadline came first".to_owned();
            return Err((id, t, Outcome::Held(msg)));
        }
        for round in 0..MAX_ROUNDS {
            if round > 0 && self.cycle.out_of_time() {
                let msg = format!("incident {id}: the cycle's deadline came first");
                return Err((id, t, self.cycle.held(msg)));
            }
            // After a conflict, read Sentinel for real (the stored etag may be the stale one),
            // and the state again.
            let known = std::mem::replace(&mut known, Known::Unread);
            let outcome = match self.attempt(&mut d, force, round == 0, known).await {
                Ok(Attempt::Ready(p)) => return Ok(p),
                Ok(Attempt::AlreadySynced) => Outcome::Unchanged,
                Err(Step::Restart) => {
                    tracing::debug!(message = "Concurrent write; starting the incident over.");
                    continue;
                }
                Err(Step::Fail(f)) => self.failed(&id, f),
            };
            return Err((id, t, outcome));
        }
        let msg = format!("incident {id}: still conflicting after {MAX_ROUNDS} attempts");
        Err((id, t, self.cycle.held(msg)))
    }

    /// What a failed attempt means for the incident.
    fn failed(&self, id: &DefenderIncidentId, f: Failure) -> Outcome {
        let msg = f.to_string();
        match f.class {
            ErrorClass::Rejected | ErrorClass::NotFound => Outcome::Parked(msg),
            ErrorClass::Auth => self.cycle.fatal(format!("incident {id}: {msg}")),
            _ => self.cycle.held(format!("incident {id}: {msg}")),
        }
    }

    /// One attempt. `optimistic`: rebuild the Sentinel incident from the state's snapshot
    /// instead of a GET.
    async fn attempt(
        &self,
        d: &mut DefenderIncident,
        force: bool,
        optimistic: bool,
        known: Known,
    ) -> Result<Attempt, Step> {
        let name = SentinelIncidentName::for_defender(&d.tenant, &d.id);
        let stored = self.load_state(&name, d, known).await?;
        if !force
            && stored
                .as_ref()
                .is_some_and(|v| synced_at(&v.value, d.last_update))
        {
            return Ok(Attempt::AlreadySynced);
        }
        if d.alerts.is_none() {
            let alerts = self
                .ports
                .defender
                .alerts_for_incident(&self.cycle.tenant, &d.id);
            d.alerts = Some(alerts.await.map_err(Step::from)?);
        }
        let pre = stored.as_ref().map_or(Precondition::Absent, |v| {
            Precondition::Matches(v.etag.clone())
        });
        let st = stored.map(|v| v.value);
        let (current, rebuilt) = self.current_sentinel(st.as_ref(), d, optimistic).await?;
        let st = st.unwrap_or_else(|| IncidentState::new(d.tenant.clone(), d.id.clone()));
        if current.is_none() && self.ports.sentinel.provisioning() == Provisioning::ByService {
            return Ok(Attempt::Ready(self.awaiting_creation(d, st, pre)));
        }
        let p = self.write_sentinel(d, st, pre, current, rebuilt).await?;
        Ok(Attempt::Ready(p))
    }

    /// Merges, writes the Sentinel incident when it differs, and mirrors the comments.
    async fn write_sentinel(
        &self,
        d: &mut DefenderIncident,
        mut st: IncidentState,
        pre: Precondition,
        current: Option<SentinelIncident>,
        rebuilt: bool,
    ) -> Result<Prepared, Step> {
        let (planned, outcome) = self.plan(d, &mut st, current.as_ref()).await?;
        let (written, wrote) = match current {
            Some(c) if plan::same_writable(&planned, &c) => (c, false),
            _ => (self.put(&planned, rebuilt).await?, true),
        };
        let comments = self.comments();
        let extras = comments.after_put(d, &written, &outcome, &mut st).await?;
        let wrote = wrote || extras.wrote;
        st.sentinel_comments = extras.comments;
        Ok(self.finish(d, st, pre, outcome, &written, wrote, extras.parked))
    }

    /// The incident's state: as read with the batch, or read now. One about to be inserted
    /// is covered by the horizon first.
    async fn load_state(
        &self,
        name: &SentinelIncidentName,
        d: &DefenderIncident,
        known: Known,
    ) -> Result<Option<Versioned<IncidentState>>, Step> {
        let stored = match known {
            Known::Read(v) => Some(v),
            Known::Absent => None,
            Known::Unread => self.ports.state.incident(name).await.map_err(Step::state)?,
        };
        if stored.is_none() {
            self.horizon.cover(d.created).await.map_err(Step::state)?;
        }
        Ok(stored)
    }

    /// The merge, and the whole Sentinel incident to PUT. Sentinel refuses an owner its
    /// directory does not know (an MSSP's customer users): it is left unassigned, the Defender
    /// owner is named in the description (on later updates too), and the Sentinel side is
    /// recorded as written (unassigned) so the next cycle sees no analyst change.
    async fn plan(
        &self,
        d: &DefenderIncident,
        st: &mut IncidentState,
        current: Option<&SentinelIncident>,
    ) -> Result<(SentinelIncident, MergeOutcome), Step> {
        let mut outcome = self.merge_one(d, st, current)?;
        let lookup = self.resolve_owner(&outcome.sentinel_target, current).await;
        let mut planned =
            plan::sentinel_incident(d, current, &outcome.sentinel_target, lookup.user());
        let unknown_owner = match &lookup {
            OwnerLookup::NotInDirectory(upn) => Some(upn.clone()),
            OwnerLookup::Found(_) => None,
            OwnerLookup::Skipped => st.unknown_owner.clone().filter(|upn| {
                outcome.sentinel_target.owner_upn.is_none()
                    && d.assigned_to
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(upn))
            }),
        };
        if let Some(upn) = &unknown_owner {
            plan::unassign_unknown_owner(&mut planned, d, upn);
            outcome.base.sentinel.owner_upn = None;
        }
        st.unknown_owner = unknown_owner;
        Ok((planned, outcome))
    }

    async fn put(
        &self,
        planned: &SentinelIncident,
        rebuilt: bool,
    ) -> Result<SentinelIncident, Step> {
        self.ports
            .sentinel
            .put_incident(planned)
            .await
            .map_err(|e| put_failed(e, rebuilt))
    }

    /// An incident the target has not created yet, where the service creates incidents: its
    /// alerts are shipped (the service makes the incident from them) and it is parked until
    /// the incident appears. Nothing of the Sentinel side is recorded.
    fn awaiting_creation(
        &self,
        d: &mut DefenderIncident,
        mut st: IncidentState,
        pre: Precondition,
    ) -> Prepared {
        let (rows, fingerprints) = self.take_changed_alerts(d, &st);
        let reason = "waiting for Sentinel to create the incident from its alerts".to_owned();
        st.last_outcome = Some(StateOutcome::Parked);
        st.last_error = Some(reason.clone());
        st.updated_at = Some(OffsetDateTime::now_utc());
        Prepared {
            d: d.clone(),
            st,
            pre,
            wrote: !rows.is_empty(),
            rows,
            fingerprints,
            parked: Some(reason),
        }
    }

    /// The incident's new state, with its alert rows (moved out of `d`: no copy of their JSON).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        d: &mut DefenderIncident,
        mut st: IncidentState,
        pre: Precondition,
        outcome: MergeOutcome,
        written: &SentinelIncident,
        wrote: bool,
        parked: Option<String>,
    ) -> Prepared {
        let (rows, fingerprints) = self.take_changed_alerts(d, &st);
        let wrote = wrote || !rows.is_empty();
        st.defender_last_update = Some(d.last_update);
        st.defender_base = Some(outcome.base.defender);
        st.sentinel_base = Some(outcome.base.sentinel);
        st.record_sentinel(written.etag.clone(), snapshot::take(written));
        st.record_platform(written.platform_id.as_ref());
        // An incident reverse sync parked stays parked (with its reason) until reverse sync
        // clears it: SyncHealth lists it while its retry entry remains.
        let reverse_park = parked.is_none() && super::reverse::parked_by_reverse(&st);
        st.last_outcome = Some(match (&parked, wrote) {
            _ if reverse_park => StateOutcome::Parked,
            (Some(_), _) => StateOutcome::Parked,
            (None, true) => StateOutcome::Synced,
            (None, false) => StateOutcome::Unchanged,
        });
        if !reverse_park {
            st.last_error = parked.clone();
        }
        st.updated_at = Some(OffsetDateTime::now_utc());
        Prepared {
            d: d.clone(),
            st,
            pre,
            wrote,
            rows,
            fingerprints,
            parked,
        }
    }

    /// The Sentinel incident to merge with and PUT over. Never synced: the name is ours alone,
    /// so no read; a PUT without etag creates it (or, if the state was lost, updates it from
    /// Defender, which a first sync does anyway). That is, where the sync creates incidents:
    /// where the service does, the incident is looked for. Synced, with a snapshot of the
    /// stored etag: rebuilt from it without a read; the PUT with that etag proves it
    /// (`snapshot` module), a 409 starts over with a read. Otherwise: read. The flag says
    /// "rebuilt".
    async fn current_sentinel(
        &self,
        stored: Option<&IncidentState>,
        d: &DefenderIncident,
        optimistic: bool,
    ) -> Result<(Option<SentinelIncident>, bool), Step> {
        let sentinel = &self.ports.sentinel;
        match stored {
            None if sentinel.provisioning() == Provisioning::BySync => return Ok((None, false)),
            Some(st) if optimistic => {
                if let Some(rebuilt) = snapshot::rebuild(st, d) {
                    return Ok((Some(rebuilt), true));
                }
            }
            _ => {}
        }
        let current = sentinel.find_mirror(&d.tenant, &d.id).await;
        Ok((current.map_err(Step::from)?, false))
    }

    fn merge_one(
        &self,
        d: &DefenderIncident,
        st: &IncidentState,
        current: Option<&SentinelIncident>,
    ) -> Result<MergeOutcome, Step> {
        let base = match (&st.defender_base, &st.sentinel_base) {
            (Some(defender), Some(sentinel)) => Some(MergeBase {
                defender: defender.clone(),
                sentinel: sentinel.clone(),
            }),
            _ => None,
        };
        let (fields, sfields) = (d.fields(), current.map(SentinelIncident::fields));
        let input = MergeInput {
            base: base.as_ref(),
            defender: &fields,
            sentinel: sfields.as_ref(),
            defender_modified: d.last_update,
            sentinel_modified: current.and_then(|c| c.last_modified),
        };
        let outcome = merge(input, self.policy)
            .map_err(|e| Step::Fail(Failure::new(ErrorClass::Rejected, e)))?;
        if !outcome.defender_writes.is_empty() {
            // Reverse sync executes these later; until then the Sentinel base is not advanced.
            tracing::debug!(writes = ?outcome.defender_writes, message = "Defender writes pending (not executed by forward sync).");
        }
        Ok(outcome)
    }

    /// The directory user of a new owner (for the object id Sentinel needs).
    async fn resolve_owner(
        &self,
        target: &SentinelFields,
        current: Option<&SentinelIncident>,
    ) -> OwnerLookup {
        let Some(upn) = target.owner_upn.as_deref() else {
            return OwnerLookup::Skipped;
        };
        let unchanged =
            current.is_some_and(|c| super::mapping::owner_same(c.owner.upn_or_email(), Some(upn)));
        if unchanged {
            return OwnerLookup::Skipped;
        }
        match self.ports.defender.resolve_user(upn).await {
            Ok(Some(u)) => OwnerLookup::Found(u),
            Ok(None) => {
                tracing::info!(
                    owner = upn,
                    message =
                        "Owner is not in the Sentinel directory; the incident stays unassigned."
                );
                OwnerLookup::NotInDirectory(upn.to_owned())
            }
            Err(e) => {
                tracing::info!(error = %e, message = "Owner not resolved; assigning by UPN only.");
                OwnerLookup::Skipped
            }
        }
    }

    /// New or changed alerts (with their evidence), moved out of `d` (its `alerts` become
    /// `None`: a restarted attempt reads them again), and the fingerprint of each by alert id,
    /// when Logs Ingestion is configured; shipped per batch, fingerprints stored once shipped.
    fn take_changed_alerts(
        &self,
        d: &mut DefenderIncident,
        st: &IncidentState,
    ) -> (Vec<AlertRecord>, Vec<(String, String)>) {
        if self.ports.logs.is_none() {
            return (Vec::new(), Vec::new());
        }
        let sentinel_name = SentinelIncidentName::for_defender(&d.tenant, &d.id);
        let mut records = Vec::new();
        let mut fingerprints = Vec::new();
        for alert in d.alerts.take().into_iter().flatten() {
            let fp = alert_fingerprint(&alert);
            if st.shipped_alerts.get(&alert.id) == Some(&fp) {
                continue;
            }
            fingerprints.push((alert.id.clone(), fp));
            records.push(AlertRecord {
                tenant: d.tenant.clone(),
                incident_id: d.id.clone(),
                sentinel_name,
                alert,
            });
        }
        (records, fingerprints)
    }
}

use crate::state::Outcome as StateOutcome;

/// What the directory said of a new owner.
enum OwnerLookup {
    /// No new owner, or the look-up failed: the owner is written by UPN (or kept).
    Skipped,
    Found(UserRef),
    /// The Sentinel tenant has no such user.
    NotInDirectory(String),
}

impl OwnerLookup {
    fn user(&self) -> Option<&UserRef> {
        match self {
            Self::Found(u) => Some(u),
            _ => None,
        }
    }
}

/// What a failed incident PUT means. A refused PUT built on a rebuilt incident (stale etag: 409;
/// incident deleted meanwhile; any 400) starts over with a real GET: only a refusal of a PUT
/// built from a fresh read parks the incident, so the shortcut can never park one by itself.
fn put_failed(e: SentinelError, rebuilt: bool) -> Step {
    match e.class() {
        ErrorClass::Conflict | ErrorClass::NotFound | ErrorClass::Rejected if rebuilt => {
            Step::Restart
        }
        _ => Step::from(e),
    }
}

/// True when the state shows this incident synced at exactly this `lastUpdateDateTime` (a park
/// by reverse sync is reverse sync's to retry, not forward sync's).
fn synced_at(st: &IncidentState, last_update: OffsetDateTime) -> bool {
    st.defender_last_update == Some(last_update)
        && (matches!(
            st.last_outcome,
            Some(StateOutcome::Synced | StateOutcome::Unchanged)
        ) || super::reverse::parked_by_reverse(st))
}
