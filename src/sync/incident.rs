//! Incidents, forward, a batch (one page) at a time. The batch's states are read together
//! first (a few queries instead of a read each). Then per incident: take the Sentinel incident
//! (none if never synced; rebuilt from the state's snapshot when it holds one of the stored etag;
//! else a GET), merge, PUT the whole incident (409 → start over with fresh reads), mirror
//! comments. The batch's new alert rows go to Logs Ingestion in one call, and its states are
//! written in one transaction per store group (partition), each with `If-Match` (a refused
//! transaction → each of its states written alone; one that conflicts starts over). Every step is idempotent, so a crash anywhere in between is
//! finished by the next cycle without duplicates.

use super::forward::{ForwardSync, TenantCtx};
use super::merge::{MergeBase, MergeInput, MergeOutcome, merge};
use super::plan;
use super::report::Tally;
use crate::domain::*;
use crate::ports::*;
use crate::state::*;
use futures::StreamExt;
use time::OffsetDateTime;
use tracing::Instrument;

/// How one incident ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Written,
    Unchanged,
    /// Failed for a reason of its own: into the retry set; the watermark passes it.
    Parked(String),
    /// Failed transiently: holds the watermark at its instant.
    Held(String),
    /// Credentials: stop the tenant's cycle.
    Fatal(String),
}

/// Why an attempt did not finish.
pub(super) enum Step {
    /// Someone else wrote (Sentinel 409, state ETag): read everything again.
    Restart,
    Fail(ErrorClass, String),
}

impl Step {
    pub fn from<E: Classify + std::fmt::Display>(e: E) -> Self {
        match e.class() {
            ErrorClass::Conflict => Step::Restart,
            class => Step::Fail(class, e.to_string()),
        }
    }

    fn state(e: StateError) -> Self {
        match e {
            StateError::Conflict => Step::Restart,
            e => Step::Fail(ErrorClass::Transient, format!("state store: {e}")),
        }
    }
}

/// Attempts per incident before giving up for this cycle (each 409 or ETag conflict is one).
const MAX_ROUNDS: usize = 4;

/// An incident synced upstream (Sentinel incident, comments) whose alert rows and state are
/// still to be written.
pub(super) struct Prepared {
    d: DefenderIncident,
    st: IncidentState,
    pre: Precondition,
    wrote: bool,
    /// New or changed alerts, with their fingerprints (stored once shipped).
    rows: Vec<AlertRecord>,
    /// Alert id → fingerprint of each row's alert (stored in the state once shipped).
    fingerprints: Vec<(String, String)>,
    /// Set when the incident must be retried later although its writes went through.
    parked: Option<String>,
}

impl Prepared {
    /// The outcome once its state is written.
    fn outcome(self) -> Outcome {
        match self.parked {
            Some(reason) => Outcome::Parked(reason),
            None if self.wrote => Outcome::Written,
            None => Outcome::Unchanged,
        }
    }
}

/// The final outcome of one incident, with what the checkpoint needs.
pub(super) type Done = (DefenderIncidentId, OffsetDateTime, Outcome);

impl ForwardSync {
    /// Syncs a batch of incidents (one page, or one retry): their Sentinel incidents and
    /// comments a few at a time, then all their new alert rows in one Logs Ingestion call, then
    /// their states. `force` ignores "already synced at this lastUpdateDateTime" (retries).
    pub(super) async fn sync_batch(
        &self,
        ctx: &TenantCtx,
        batch: Vec<DefenderIncident>,
        force: bool,
    ) -> Vec<Done> {
        self.sync_batch_at(ctx, batch, force, 0).await
    }

    fn sync_batch_at<'a>(
        &'a self,
        ctx: &'a TenantCtx,
        batch: Vec<DefenderIncident>,
        force: bool,
        depth: usize,
    ) -> futures::future::BoxFuture<'a, Vec<Done>> {
        Box::pin(async move {
            let n = self.limits.sentinel_concurrency.max(1);
            // A restarted incident met a state: it is read again, never taken for new.
            let new = |d: &DefenderIncident| depth == 0 && ctx.surely_new(d);
            let mut known = self.read_states(&batch, new).await;
            let prepared: Vec<Result<Prepared, Done>> = futures::stream::iter(batch)
                .map(|d| {
                    let state = if new(&d) {
                        Some(None)
                    } else {
                        let name = SentinelIncidentName::for_defender(&d.tenant, &d.id);
                        known.as_mut().map(|m| m.remove(&name))
                    };
                    self.prepare(ctx, d, force, state)
                })
                .buffer_unordered(n)
                .collect()
                .await;
            let mut done = Vec::new();
            let ready: Vec<Prepared> = prepared
                .into_iter()
                .filter_map(|r| r.map_err(|d| done.push(d)).ok())
                .collect();
            let ready = self.ship_batch(ctx, ready, &mut done).await;
            done.extend(self.commit_all(ctx, ready, force, depth, n).await);
            // A restarted incident comes back through the outer batch: count it there only.
            for (_, _, o) in done.iter().filter(|_| depth == 0) {
                match o {
                    Outcome::Written => Tally::add(&ctx.tally.written, 1),
                    Outcome::Unchanged => Tally::add(&ctx.tally.unchanged, 1),
                    _ => {}
                }
            }
            done
        })
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
        match self.state.incidents(&names).await {
            Ok(states) => Some(states),
            Err(e) => {
                tracing::debug!(error = %e, message = "Reading a page's states at once failed; reading them one by one.");
                None
            }
        }
    }

    /// Writes the prepared incidents' states, one transaction per group of the store (a Table
    /// partition) and per [`MAX_STATES_PER_PUT`] states, all at once, each state with its own
    /// `If-Match`. When a transaction
    /// loses a race or is refused (too big), nothing of it was written: each of its states is
    /// then written alone, so only the incidents that really conflict start over. Any other
    /// failure (storage down, the process dying) holds that group's incidents, exactly as a
    /// failed single write would.
    async fn commit_all(
        &self,
        ctx: &TenantCtx,
        mut ready: Vec<Prepared>,
        force: bool,
        depth: usize,
        n: usize,
    ) -> Vec<Done> {
        for p in &mut ready {
            for (id, fp) in p.fingerprints.drain(..) {
                p.st.shipped_alerts.insert(id, fp);
            }
        }
        let mut groups: std::collections::BTreeMap<String, Vec<Vec<Prepared>>> =
            std::collections::BTreeMap::new();
        for p in ready {
            let chunks = groups
                .entry(self.state.incident_group(&p.st.sentinel_name))
                .or_default();
            match chunks.last_mut() {
                Some(last) if last.len() < MAX_STATES_PER_PUT => last.push(p),
                _ => chunks.push(vec![p]),
            }
        }
        let done = futures::future::join_all(
            groups
                .into_values()
                .flatten()
                .map(|g| self.commit_group(ctx, g, force, depth, n)),
        )
        .await;
        done.into_iter().flatten().collect()
    }

    /// Writes the states of one group in one transaction; see [`ForwardSync::commit_all`].
    async fn commit_group(
        &self,
        ctx: &TenantCtx,
        mut ready: Vec<Prepared>,
        force: bool,
        depth: usize,
        n: usize,
    ) -> Vec<Done> {
        if ready.len() > 1 {
            let mut items = Vec::with_capacity(ready.len());
            for p in &mut ready {
                let st = std::mem::replace(
                    &mut p.st,
                    IncidentState::new(p.d.tenant.clone(), p.d.id.clone()),
                );
                items.push((st, p.pre.clone()));
            }
            let result = self.state.put_incidents(&items).await;
            for (p, (st, _)) in ready.iter_mut().zip(items) {
                p.st = st;
            }
            match result {
                Ok(_) => {
                    return ready
                        .into_iter()
                        .map(|p| (p.d.id.clone(), p.d.last_update, p.outcome()))
                        .collect();
                }
                Err(StateError::Conflict | StateError::Invalid(_)) => {
                    tracing::debug!(
                        incidents = ready.len(),
                        message = "A batch state write was refused; writing the states one by one."
                    );
                }
                Err(e) => {
                    return ready
                        .into_iter()
                        .map(|p| {
                            (
                                p.d.id.clone(),
                                p.d.last_update,
                                self.held(ctx, format!("incident {}: state store: {e}", p.d.id)),
                            )
                        })
                        .collect();
                }
            }
        }
        self.commit_each(ctx, ready, force, depth, n).await
    }

    /// Writes each state alone.
    async fn commit_each(
        &self,
        ctx: &TenantCtx,
        ready: Vec<Prepared>,
        force: bool,
        depth: usize,
        n: usize,
    ) -> Vec<Done> {
        let committed: Vec<Vec<Done>> = futures::stream::iter(ready)
            .map(|p| self.commit(ctx, p, force, depth))
            .buffer_unordered(n)
            .collect()
            .await;
        committed.into_iter().flatten().collect()
    }

    /// Writes a prepared incident's state (`If-Match`); a conflict starts the incident over.
    async fn commit(&self, ctx: &TenantCtx, p: Prepared, force: bool, depth: usize) -> Vec<Done> {
        let (id, t) = (p.d.id.clone(), p.d.last_update);
        match self.state.put_incident(&p.st, p.pre.clone()).await {
            Ok(_) => {}
            Err(StateError::Conflict) if depth + 1 < MAX_ROUNDS => {
                tracing::debug!(incident_id = %id, message = "State changed under us; starting the incident over.");
                return self.sync_batch_at(ctx, vec![p.d], force, depth + 1).await;
            }
            Err(e) => {
                return vec![(
                    id.clone(),
                    t,
                    self.held(ctx, format!("incident {id}: state store: {e}")),
                )];
            }
        }
        vec![(id, t, p.outcome())]
    }

    /// Ships the batch's alert rows in one call (the adapter splits by size). When Logs
    /// Ingestion refuses the rows, each incident's rows are tried alone so one bad incident
    /// is parked and the others go through.
    async fn ship_batch(
        &self,
        ctx: &TenantCtx,
        mut ready: Vec<Prepared>,
        done: &mut Vec<Done>,
    ) -> Vec<Prepared> {
        let Some(logs) = &self.logs else { return ready };
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
            done.extend(ready.into_iter().map(|p| self.not_shipped(ctx, p, &err)));
            return Vec::new();
        }
        let mut rows = rows.into_iter();
        for (p, n) in ready.iter_mut().zip(counts) {
            p.rows = rows.by_ref().take(n).collect();
        }
        let mut ok = Vec::new();
        for p in ready {
            let rows = &p.rows;
            match logs.ship_alerts(rows).await {
                Ok(()) => ok.push(p),
                Err(e) => done.push(self.not_shipped(ctx, p, &e)),
            }
        }
        ok
    }

    fn not_shipped(&self, ctx: &TenantCtx, p: Prepared, e: &LogsError) -> Done {
        let msg = format!("incident {}: shipping alerts: {e}", p.d.id);
        let outcome = match e.class() {
            ErrorClass::Rejected => Outcome::Parked(msg),
            ErrorClass::Auth => {
                Tally::add(&ctx.tally.failed, 1);
                ctx.tally.error(msg.clone());
                Outcome::Fatal(msg)
            }
            _ => self.held(ctx, msg),
        };
        (p.d.id, p.d.last_update, outcome)
    }

    /// Syncs one incident's Sentinel side (bounded rounds on 409 and state conflicts).
    /// `known`: its state when already read with the batch's (`Some(None)`: it has none).
    async fn prepare(
        &self,
        ctx: &TenantCtx,
        d: DefenderIncident,
        force: bool,
        known: Option<Option<Versioned<IncidentState>>>,
    ) -> Result<Prepared, Done> {
        let span = tracing::info_span!("incident", incident_id = %d.id, tenant = %ctx.tenant);
        self.prepare_rounds(ctx, d, force, known)
            .instrument(span)
            .await
    }

    async fn prepare_rounds(
        &self,
        ctx: &TenantCtx,
        mut d: DefenderIncident,
        force: bool,
        mut known: Option<Option<Versioned<IncidentState>>>,
    ) -> Result<Prepared, Done> {
        let (id, t) = (d.id.clone(), d.last_update);
        // Not started before the deadline: not a failure, the next cycle takes it.
        if ctx.out_of_time() {
            return Err((
                id,
                t,
                Outcome::Held("the cycle's deadline came first".into()),
            ));
        }
        for round in 0..MAX_ROUNDS {
            if round > 0 && ctx.out_of_time() {
                return Err((
                    id.clone(),
                    t,
                    self.held(
                        ctx,
                        format!("incident {id}: the cycle's deadline came first"),
                    ),
                ));
            }
            // After a conflict, read Sentinel for real: the stored etag may be the stale one.
            // After a conflict, the state is read again too.
            let outcome = match self
                .try_prepare(ctx, &mut d, force, round == 0, known.take())
                .await
            {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => Outcome::Unchanged,
                Err(Step::Restart) => {
                    tracing::debug!(message = "Concurrent write; starting the incident over.");
                    continue;
                }
                Err(Step::Fail(ErrorClass::Rejected | ErrorClass::NotFound, msg)) => {
                    Outcome::Parked(msg)
                }
                Err(Step::Fail(ErrorClass::Auth, msg)) => {
                    Tally::add(&ctx.tally.failed, 1);
                    ctx.tally.error(format!("incident {id}: {msg}"));
                    Outcome::Fatal(msg)
                }
                Err(Step::Fail(_, msg)) => self.held(ctx, format!("incident {id}: {msg}")),
            };
            return Err((id, t, outcome));
        }
        Err((
            id.clone(),
            t,
            self.held(
                ctx,
                format!("incident {id}: still conflicting after {MAX_ROUNDS} attempts"),
            ),
        ))
    }

    fn held(&self, ctx: &TenantCtx, msg: String) -> Outcome {
        tracing::warn!(error = %msg, message = "Incident not synced this cycle; the watermark holds.");
        Tally::add(&ctx.tally.failed, 1);
        ctx.tally.error(msg.clone());
        Outcome::Held(msg)
    }

    /// One attempt; `Ok(None)` when the state shows the incident synced at this instant.
    /// `optimistic`: rebuild the Sentinel incident from the state's snapshot instead of a GET.
    async fn try_prepare(
        &self,
        ctx: &TenantCtx,
        d: &mut DefenderIncident,
        force: bool,
        optimistic: bool,
        known: Option<Option<Versioned<IncidentState>>>,
    ) -> Result<Option<Prepared>, Step> {
        let name = SentinelIncidentName::for_defender(&d.tenant, &d.id);
        let stored = match known {
            Some(stored) => stored,
            None => self.state.incident(&name).await.map_err(Step::state)?,
        };
        if stored.is_none() {
            // Its state will be inserted: the horizon must cover it first.
            self.cover_horizon(ctx, d.created)
                .await
                .map_err(Step::state)?;
        }
        if !force
            && stored
                .as_ref()
                .is_some_and(|v| synced_at(&v.value, d.last_update))
        {
            return Ok(None);
        }
        if d.alerts.is_none() {
            let alerts = self
                .defender
                .alerts_for_incident(&ctx.tenant, &d.id)
                .await
                .map_err(Step::from)?;
            d.alerts = Some(alerts);
        }
        let (current, rebuilt) = self
            .current_sentinel(&name, stored.as_ref().map(|v| &v.value), d, optimistic)
            .await?;
        let mut st = stored.as_ref().map_or_else(
            || IncidentState::new(d.tenant.clone(), d.id.clone()),
            |v| v.value.clone(),
        );
        let mut outcome = self.merge_one(d, &st, current.as_ref())?;
        let lookup = self
            .resolve_owner(&outcome.sentinel_target, current.as_ref())
            .await;
        let mut planned =
            plan::sentinel_incident(d, current.as_ref(), &outcome.sentinel_target, lookup.user());
        // Sentinel refuses an owner its directory does not know (an MSSP's customer users):
        // leave it unassigned, name the Defender owner in the description (on later updates
        // too), and record the Sentinel side as written (unassigned) so the next cycle sees no
        // analyst change.
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
        let (written, mut wrote) = match current {
            Some(c) if plan::same_writable(&planned, &c) => (c, false),
            _ => (
                self.sentinel
                    .put_incident(&planned)
                    .await
                    .map_err(|e| put_failed(e, rebuilt))?,
                true,
            ),
        };
        let extras = self.after_put(ctx, d, &written, &outcome, &mut st).await?;
        wrote |= extras.wrote;
        // Nothing below can fail: the alerts move into the rows (no copy of their JSON).
        let (rows, fingerprints) = self.take_changed_alerts(d, &st);
        wrote |= !rows.is_empty();
        st.defender_last_update = Some(d.last_update);
        st.defender_base = Some(outcome.base.defender);
        st.sentinel_base = Some(outcome.base.sentinel);
        st.sentinel_etag = written.etag.clone();
        st.sentinel_snapshot = super::snapshot::take(&written);
        st.last_outcome = Some(if extras.parked.is_some() {
            Outcome_::Parked
        } else if wrote {
            Outcome_::Synced
        } else {
            Outcome_::Unchanged
        });
        st.last_error = extras.parked.clone();
        st.updated_at = Some(OffsetDateTime::now_utc());
        let pre = stored.map_or(Precondition::Absent, |v| Precondition::Matches(v.etag));
        Ok(Some(Prepared {
            d: d.clone(),
            st,
            pre,
            wrote,
            rows,
            fingerprints,
            parked: extras.parked,
        }))
    }

    /// The Sentinel incident to merge with and PUT over. Never synced: the name is ours alone,
    /// so no read; a PUT without etag creates it (or, if the state was lost, updates it from
    /// Defender, which a first sync does anyway). Synced, with a snapshot of the stored etag:
    /// rebuilt from it without a read; the PUT with that etag proves it (`snapshot` module),
    /// a 409 starts over with a GET. Otherwise: GET. The flag says "rebuilt".
    async fn current_sentinel(
        &self,
        name: &SentinelIncidentName,
        stored: Option<&IncidentState>,
        d: &DefenderIncident,
        optimistic: bool,
    ) -> Result<(Option<SentinelIncident>, bool), Step> {
        let Some(st) = stored else {
            return Ok((None, false));
        };
        if optimistic && let Some(rebuilt) = super::snapshot::rebuild(st, d) {
            return Ok((Some(rebuilt), true));
        }
        Ok((
            self.sentinel.get_incident(name).await.map_err(Step::from)?,
            false,
        ))
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
        let outcome = merge(input, &self.policy)
            .map_err(|e| Step::Fail(ErrorClass::Rejected, e.to_string()))?;
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
        match self.defender.resolve_user(upn).await {
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
}

use crate::state::Outcome as Outcome_;

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

/// True when the state shows this incident synced at exactly this `lastUpdateDateTime`.
fn synced_at(st: &IncidentState, last_update: OffsetDateTime) -> bool {
    st.defender_last_update == Some(last_update)
        && matches!(
            st.last_outcome,
            Some(Outcome_::Synced | Outcome_::Unchanged)
        )
}
