//! One incident, forward: read the state (with its ETag), read Sentinel, merge, PUT the whole
//! incident (409 → start over), mirror comments, ship alerts, then replace the state with
//! `If-Match` (conflict → start over). Every step is idempotent, so a crash anywhere in between
//! is finished by the next cycle without duplicates.

use super::forward::{ForwardSync, TenantCtx};
use super::merge::{MergeBase, MergeInput, MergeOutcome, merge};
use super::plan;
use super::report::Tally;
use crate::domain::*;
use crate::ports::*;
use crate::state::*;
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

impl ForwardSync {
    /// Syncs one incident; `force` ignores "already synced at this lastUpdateDateTime" (retries).
    pub(super) async fn sync_incident(&self, ctx: &TenantCtx, d: DefenderIncident, force: bool) -> Outcome {
        let span = tracing::info_span!("incident", incident_id = %d.id, tenant = %ctx.tenant);
        self.sync_rounds(ctx, d, force).instrument(span).await
    }

    async fn sync_rounds(&self, ctx: &TenantCtx, mut d: DefenderIncident, force: bool) -> Outcome {
        // Not started before the deadline: not a failure, the next cycle takes it.
        if ctx.out_of_time() {
            return Outcome::Held("the cycle's deadline came first".into());
        }
        for round in 0..MAX_ROUNDS {
            if round > 0 && ctx.out_of_time() {
                return self.held(ctx, format!("incident {}: the cycle's deadline came first", d.id));
            }
            match self.try_sync(ctx, &mut d, force).await {
                Ok(true) => {
                    Tally::add(&ctx.tally.written, 1);
                    return Outcome::Written;
                }
                Ok(false) => {
                    Tally::add(&ctx.tally.unchanged, 1);
                    return Outcome::Unchanged;
                }
                Err(Step::Restart) => tracing::debug!(message = "Concurrent write; starting the incident over."),
                Err(Step::Fail(ErrorClass::Rejected | ErrorClass::NotFound, msg)) => return Outcome::Parked(msg),
                Err(Step::Fail(ErrorClass::Auth, msg)) => {
                    Tally::add(&ctx.tally.failed, 1);
                    ctx.tally.error(format!("incident {}: {msg}", d.id));
                    return Outcome::Fatal(msg);
                }
                Err(Step::Fail(_, msg)) => return self.held(ctx, format!("incident {}: {msg}", d.id)),
            }
        }
        self.held(ctx, format!("incident {}: still conflicting after {MAX_ROUNDS} attempts", d.id))
    }

    fn held(&self, ctx: &TenantCtx, msg: String) -> Outcome {
        tracing::warn!(error = %msg, message = "Incident not synced this cycle; the watermark holds.");
        Tally::add(&ctx.tally.failed, 1);
        ctx.tally.error(msg.clone());
        Outcome::Held(msg)
    }

    /// One attempt. `Ok(true)` when something was written upstream.
    async fn try_sync(&self, ctx: &TenantCtx, d: &mut DefenderIncident, force: bool) -> Result<bool, Step> {
        let name = SentinelIncidentName::for_defender(&d.tenant, &d.id);
        let stored = self.state.incident(&name).await.map_err(Step::state)?;
        if !force && stored.as_ref().is_some_and(|v| synced_at(&v.value, d.last_update)) {
            return Ok(false);
        }
        if d.alerts.is_none() {
            let alerts = self.call(ctx, || self.defender.alerts_for_incident(&ctx.tenant, &d.id)).await.map_err(Step::from)?;
            d.alerts = Some(alerts);
        }
        let current = self.call(ctx, || self.sentinel.get_incident(&name)).await.map_err(Step::from)?;
        let mut st = stored.as_ref().map_or_else(|| IncidentState::new(d.tenant.clone(), d.id.clone()), |v| v.value.clone());
        let outcome = self.merge_one(d, &st, current.as_ref())?;
        let resolved = self.resolve_owner(&outcome.sentinel_target, current.as_ref()).await;
        let planned = plan::sentinel_incident(d, current.as_ref(), &outcome.sentinel_target, resolved.as_ref());
        let (written, mut wrote) = match current {
            Some(c) if plan::same_writable(&planned, &c) => (c, false),
            _ => (self.call(ctx, || self.sentinel.put_incident(&planned)).await.map_err(Step::from)?, true),
        };
        let extras = self.after_put(ctx, d, &written, &outcome, &mut st).await?;
        wrote |= extras.wrote;
        st.defender_last_update = Some(d.last_update);
        st.defender_base = Some(outcome.base.defender);
        st.sentinel_base = Some(outcome.base.sentinel);
        st.sentinel_etag = written.etag.clone();
        st.last_outcome = Some(if extras.parked.is_some() { Outcome_::Parked } else if wrote { Outcome_::Synced } else { Outcome_::Unchanged });
        st.last_error = extras.parked.clone();
        st.updated_at = Some(OffsetDateTime::now_utc());
        let pre = stored.map_or(Precondition::Absent, |v| Precondition::Matches(v.etag));
        self.state.put_incident(&st, pre).await.map_err(Step::state)?;
        match extras.parked {
            Some(reason) => Err(Step::Fail(ErrorClass::Rejected, reason)),
            None => Ok(wrote),
        }
    }

    fn merge_one(&self, d: &DefenderIncident, st: &IncidentState, current: Option<&SentinelIncident>) -> Result<MergeOutcome, Step> {
        let base = match (&st.defender_base, &st.sentinel_base) {
            (Some(defender), Some(sentinel)) => Some(MergeBase { defender: defender.clone(), sentinel: sentinel.clone() }),
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
        let outcome = merge(input, &self.policy).map_err(|e| Step::Fail(ErrorClass::Rejected, e.to_string()))?;
        if !outcome.defender_writes.is_empty() {
            // Reverse sync executes these later; until then the Sentinel base is not advanced.
            tracing::debug!(writes = ?outcome.defender_writes, message = "Defender writes pending (not executed by forward sync).");
        }
        Ok(outcome)
    }

    /// The directory user of a new owner (for the object id Sentinel needs); `None` when the
    /// owner is unchanged, unknown, or the look-up failed (the owner is then set by UPN only).
    async fn resolve_owner(&self, target: &SentinelFields, current: Option<&SentinelIncident>) -> Option<UserRef> {
        let upn = target.owner_upn.as_deref()?;
        let unchanged = current.is_some_and(|c| super::mapping::owner_same(c.owner.upn_or_email(), Some(upn)));
        if unchanged {
            return None;
        }
        match self.defender.resolve_user(upn).await {
            Ok(u) => u,
            Err(e) => {
                tracing::info!(error = %e, message = "Owner not resolved; assigning by UPN only.");
                None
            }
        }
    }
}

use crate::state::Outcome as Outcome_;

/// True when the state shows this incident synced at exactly this `lastUpdateDateTime`.
fn synced_at(st: &IncidentState, last_update: OffsetDateTime) -> bool {
    st.defender_last_update == Some(last_update) && matches!(st.last_outcome, Some(Outcome_::Synced | Outcome_::Unchanged))
}
