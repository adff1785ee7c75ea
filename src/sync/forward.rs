//! The forward-sync shell: one cycle per tenant, Defender → Sentinel (and Logs Ingestion),
//! through the ports. Decisions are the pure `merge` and `plan`; this file sequences them, and
//! advances the checkpoint only past what was delivered or parked.

use super::merge::MergePolicy;
use super::plan;
use super::report::{CycleReport, Tally, TenantReport};
use crate::config::ClientLimits;
use crate::domain::*;
use crate::ports::*;
use crate::state::*;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::Instrument;

/// Tunables of the forward cycle (defaults for production; tests shorten the delays).
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardOptions {
    /// How far back the first cycle of a tenant looks (`SYNC_LOOKBACK`).
    pub lookback: Duration,
    /// Each query starts this long before the watermark: Graph writes can become visible late.
    pub overlap: Duration,
    /// First delay of the retry set's backoff (doubled per attempt, capped).
    pub park_backoff: Duration,
    pub park_backoff_max: Duration,
    /// Work stops this long before the deadline.
    pub deadline_margin: Duration,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        Self {
            lookback: Duration::from_secs(24 * 3600),
            overlap: Duration::from_secs(5 * 60),
            park_backoff: Duration::from_secs(60),
            park_backoff_max: Duration::from_secs(3600),
            deadline_margin: Duration::from_secs(5),
        }
    }
}

/// Forward sync of every configured Defender tenant into one Sentinel workspace.
pub struct ForwardSync {
    pub(super) defender: Arc<dyn DefenderApi>,
    pub(super) sentinel: Arc<dyn SentinelApi>,
    pub(super) logs: Option<Arc<dyn LogsIngest>>,
    pub(super) state: Arc<dyn StateStore>,
    pub(super) tenants: Vec<TenantId>,
    pub(super) policy: MergePolicy,
    pub(super) limits: ClientLimits,
    pub(super) opts: ForwardOptions,
    /// Told after every page of incidents (the `sync` subcommand prints it on a terminal).
    pub(super) progress: Option<ProgressFn>,
    /// Every 429 the upstream clients met so far (see [`ForwardSync::with_throttle_probe`]).
    pub(super) throttle_probe: Option<ThrottleProbe>,
}

/// A batch of a tenant's pages of incidents done (one page, or a few delivered together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageProgress {
    pub tenant: TenantId,
    /// Pages done in this tenant's cycle, from 1: the last page of the batch.
    pub page: u64,
    /// Incidents of the batch.
    pub incidents: usize,
    /// Incidents delivered (or skipped as already synced) in this tenant's cycle so far.
    pub delivered: usize,
    /// True when another page of the window follows.
    pub more: bool,
}

/// Receives [`PageProgress`] reports.
pub type ProgressFn = Arc<dyn Fn(&PageProgress) + Send + Sync>;

/// Reads a running count of throttled (429) upstream responses.
pub type ThrottleProbe = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Everything one tenant's cycle shares between its concurrently running incidents.
pub(super) struct TenantCtx {
    pub tenant: TenantId,
    pub deadline: Instant,
    pub margin: Duration,
    pub tally: Tally,
    /// Parked incidents not due (or not cleared) this cycle: the window skips them.
    /// Id → the `lastUpdateDateTime` it was parked at: a page skips it unless it changed since.
    pub parked: HashMap<String, OffsetDateTime>,
    /// Delivered at the watermark instant in an earlier cycle: skipped without a state read.
    pub at_watermark: Option<Checkpoint>,
    /// `$expand=alerts` still in use this cycle (turned off after it failed).
    pub expand: std::sync::atomic::AtomicBool,
    /// Pages done so far (for progress reports).
    pub pages: std::sync::atomic::AtomicU64,
    /// Incidents delivered so far (for progress reports).
    pub delivered: std::sync::atomic::AtomicU64,
    /// The throttle probe's count when the tenant's cycle started.
    pub throttled_before: Option<u64>,
    /// Incidents created after this instant have no state yet: the [`StateHorizon`] this
    /// cycle's raise replaced (the earliest instant when there was none). Their states are
    /// inserted without being read. `None` (the raise failed): every state is read.
    pub new_after: Option<OffsetDateTime>,
    /// The horizon as this cycle last read or wrote it.
    pub horizon: tokio::sync::Mutex<Option<Versioned<StateHorizon>>>,
}

impl TenantCtx {
    /// True when no new work may start.
    pub fn out_of_time(&self) -> bool {
        Instant::now() + self.margin >= self.deadline
    }

    /// True when the incident cannot have a state yet (see [`TenantCtx::new_after`]).
    pub fn surely_new(&self, d: &DefenderIncident) -> bool {
        self.new_after.is_some_and(|t| d.created > t)
    }
}

/// Attempts to raise the state horizon when other writers keep moving it.
const HORIZON_ATTEMPTS: usize = 5;

impl ForwardSync {
    /// Builds the engine from the ports and settings.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        defender: Arc<dyn DefenderApi>,
        sentinel: Arc<dyn SentinelApi>,
        logs: Option<Arc<dyn LogsIngest>>,
        state: Arc<dyn StateStore>,
        tenants: Vec<TenantId>,
        policy: MergePolicy,
        opts: ForwardOptions,
        limits: ClientLimits,
    ) -> Self {
        Self {
            defender,
            sentinel,
            logs,
            state,
            tenants,
            policy,
            limits,
            opts,
            progress: None,
            throttle_probe: None,
        }
    }

    /// Reports every page of incidents to `progress`.
    pub fn set_progress(&mut self, progress: ProgressFn) {
        self.progress = Some(progress);
    }

    /// Counts throttled calls from the upstream clients' own counters. The clients own the
    /// retries (they wait out `Retry-After` and try again) and count every 429 they meet, once;
    /// the engine never retries a call and counts none. A tenant's figure is the probe's
    /// increase during its cycle (tenants run one after another; a concurrent invocation in the
    /// same process adds its own); without a probe it is 0.
    pub fn with_throttle_probe(mut self, probe: ThrottleProbe) -> Self {
        self.throttle_probe = Some(probe);
        self
    }

    /// Replaces the tunables (keeps nothing of the previous ones).
    pub fn with_options(mut self, opts: ForwardOptions) -> Self {
        self.opts = opts;
        self
    }

    /// The state store the engine writes (SyncHealth reads it).
    pub fn state(&self) -> Arc<dyn StateStore> {
        self.state.clone()
    }

    /// One forward cycle over every tenant, stopping cleanly before `deadline`.
    pub async fn run_cycle(&self, deadline: Instant) -> CycleReport {
        let mut report = CycleReport::default();
        for tenant in &self.tenants {
            let span = tracing::info_span!("forward_cycle", tenant = %tenant);
            let r = self.run_tenant(tenant, deadline).instrument(span).await;
            tracing::info!(
                tenant = %tenant, seen = r.seen, written = r.written, unchanged = r.unchanged, failed = r.failed,
                parked = r.parked, throttled = r.throttled, completed = r.completed, message = "Forward cycle finished."
            );
            report.tenants.push(r);
        }
        report
    }

    async fn run_tenant(&self, tenant: &TenantId, deadline: Instant) -> TenantReport {
        let start = OffsetDateTime::now_utc();
        let mut ctx = TenantCtx {
            tenant: tenant.clone(),
            deadline,
            margin: margin(self.opts.deadline_margin, deadline),
            tally: Tally::default(),
            parked: HashMap::new(),
            at_watermark: None,
            expand: std::sync::atomic::AtomicBool::new(true),
            pages: std::sync::atomic::AtomicU64::new(0),
            delivered: std::sync::atomic::AtomicU64::new(0),
            throttled_before: self.throttle_probe.as_ref().map(|p| p()),
            new_after: None,
            horizon: tokio::sync::Mutex::new(None),
        };
        let checkpoint = match self.state.checkpoint(tenant).await {
            Ok(c) => c,
            Err(e) => {
                ctx.tally.error(format!("reading the checkpoint: {e}"));
                return self.finish(&ctx, start, false, None).await;
            }
        };
        ctx.at_watermark = checkpoint.as_ref().map(|c| c.value.clone());
        ctx.parked = self.retry_parked(&ctx).await;
        let window = plan::initial_window(
            ctx.at_watermark.as_ref(),
            to_time(self.opts.lookback),
            to_time(self.opts.overlap),
            start,
        );
        let window_end = window.updated_to.unwrap_or(start);
        // Every incident of the window was created before its end (creation ≤ last update).
        ctx.new_after = match self.raise_horizon(&ctx, window_end).await {
            Ok(before) => Some(before.unwrap_or(OffsetDateTime::UNIX_EPOCH)),
            Err(e) => {
                tracing::warn!(error = %e, message = "The state horizon could not be raised; every incident's state is read.");
                None
            }
        };
        let pulled = self.pull(&ctx, window).await;
        let next = plan::advance_checkpoint(
            ctx.at_watermark.as_ref(),
            window_end,
            pulled.hold,
            &pulled.delivered,
        );
        let completed = pulled.hold.is_none();
        let watermark = match next {
            Some(cp) => self.save_checkpoint(&ctx, checkpoint, cp).await,
            None => ctx.at_watermark.as_ref().map(|c| c.watermark),
        };
        self.finish(&ctx, start, completed, watermark).await
    }

    /// Raises the tenant's [`StateHorizon`] to at least `to` (compare-and-swap, re-reading
    /// after a lost race). Returns the value the write replaced (`None`: there was no record),
    /// or the current value when it already covered `to`.
    pub(super) async fn raise_horizon(
        &self,
        ctx: &TenantCtx,
        to: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StateError> {
        let mut held = ctx.horizon.lock().await;
        for _ in 0..HORIZON_ATTEMPTS {
            let current = match held.take() {
                Some(v) => Some(v),
                None => self.state.state_horizon(&ctx.tenant).await?,
            };
            let before = current.as_ref().map(|v| v.value.created);
            if before.is_some_and(|b| b >= to) {
                *held = current;
                return Ok(before);
            }
            let pre = current.as_ref().map_or(Precondition::Absent, |v| {
                Precondition::Matches(v.etag.clone())
            });
            let value = StateHorizon { created: to };
            match self.state.put_state_horizon(&ctx.tenant, &value, pre).await {
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

    /// Makes sure the horizon covers an incident whose state is about to be inserted (only an
    /// incident created after the cycle's window end, which Graph should never list, needs a
    /// raise).
    pub(super) async fn cover_horizon(
        &self,
        ctx: &TenantCtx,
        created: OffsetDateTime,
    ) -> Result<(), StateError> {
        let covered = ctx
            .horizon
            .lock()
            .await
            .as_ref()
            .is_some_and(|v| v.value.created >= created);
        if !covered {
            self.raise_horizon(ctx, created).await?;
        }
        Ok(())
    }

    async fn save_checkpoint(
        &self,
        ctx: &TenantCtx,
        old: Option<Versioned<Checkpoint>>,
        cp: Checkpoint,
    ) -> Option<OffsetDateTime> {
        let pre = old.as_ref().map_or(Precondition::Absent, |v| {
            Precondition::Matches(v.etag.clone())
        });
        if old.as_ref().is_some_and(|v| v.value == cp) {
            return Some(cp.watermark);
        }
        match self.state.put_checkpoint(&ctx.tenant, &cp, pre).await {
            Ok(_) => Some(cp.watermark),
            Err(e) => {
                // Another instance moved it (or storage failed): the next cycle re-reads the overlap.
                tracing::warn!(error = %e, message = "Checkpoint not saved.");
                ctx.tally.error(format!("saving the checkpoint: {e}"));
                old.map(|v| v.value.watermark)
            }
        }
    }

    async fn finish(
        &self,
        ctx: &TenantCtx,
        start: OffsetDateTime,
        completed: bool,
        watermark: Option<OffsetDateTime>,
    ) -> TenantReport {
        let end = OffsetDateTime::now_utc();
        // The clients count every 429 once (they own the retries); the engine counts none.
        let throttled = match (&self.throttle_probe, ctx.throttled_before) {
            (Some(probe), Some(before)) => probe().saturating_sub(before),
            _ => 0,
        };
        let lag = watermark.map(|w| (end - w).try_into().unwrap_or(Duration::ZERO));
        let report = ctx.tally.report(&ctx.tenant, completed, lag, throttled);
        let health = TenantHealth {
            last_cycle_start: Some(start),
            last_cycle_end: Some(end),
            last_cycle_completed: completed,
            incidents_seen: report.seen,
            incidents_written: report.written,
            incidents_failed: report.failed + report.parked,
            throttled_calls: report.throttled,
            comment_cap_reached: report.comment_cap_reached.clone(),
            last_errors: report.errors.clone(),
        };
        if let Err(e) = self.state.put_tenant_health(&ctx.tenant, &health).await {
            tracing::warn!(error = %e, message = "Tenant health not saved.");
        }
        report
    }

    /// Retries the due entries of the retry set; returns the ids still parked, with the
    /// `lastUpdateDateTime` each was parked at.
    async fn retry_parked(&self, ctx: &TenantCtx) -> HashMap<String, OffsetDateTime> {
        let entries = match self.state.retry_set(&ctx.tenant).await {
            Ok(e) => e,
            Err(e) => {
                ctx.tally.error(format!("reading the retry set: {e}"));
                return HashMap::new();
            }
        };
        let now = OffsetDateTime::now_utc();
        let (due, later): (Vec<RetryEntry>, Vec<RetryEntry>) =
            entries.into_iter().partition(|e| e.next_attempt <= now);
        let mut still: HashMap<String, OffsetDateTime> = later
            .iter()
            .map(|e| (e.incident_id.to_string(), e.last_update))
            .collect();
        let results: Vec<(String, OffsetDateTime, bool)> = futures::stream::iter(due)
            .map(|e| async move {
                let cleared = !ctx.out_of_time() && self.retry_one(ctx, &e).await;
                (e.incident_id.to_string(), e.last_update, cleared)
            })
            .buffer_unordered(self.limits.sentinel_concurrency.max(1))
            .collect()
            .await;
        still.extend(
            results
                .into_iter()
                .filter(|(_, _, cleared)| !cleared)
                .map(|(id, t, _)| (id, t)),
        );
        still
    }

    /// One retry; true when the incident left the retry set.
    async fn retry_one(&self, ctx: &TenantCtx, entry: &RetryEntry) -> bool {
        let fetched = self
            .defender
            .get_incident(&ctx.tenant, &entry.incident_id)
            .await;
        let incident = match fetched {
            Ok(Some(i)) => i,
            Ok(None) => return self.unpark(ctx, &entry.incident_id).await,
            // Still refused (e.g. a payload that cannot be mapped): parked again, with backoff.
            Err(e) if e.class() == ErrorClass::Rejected => {
                self.park(
                    ctx,
                    &entry.incident_id,
                    entry.last_update,
                    e.to_string(),
                    Some(entry),
                )
                .await;
                return false;
            }
            Err(e) => {
                ctx.tally
                    .error(format!("retrying incident {}: {e}", entry.incident_id));
                return false;
            }
        };
        Tally::add(&ctx.tally.seen, 1);
        let (id, t) = (incident.id.clone(), incident.last_update);
        let outcome = self
            .sync_batch(ctx, vec![incident], true)
            .await
            .pop()
            .map(|(_, _, o)| o);
        match outcome {
            Some(super::incident::Outcome::Written | super::incident::Outcome::Unchanged) => {
                Tally::add(&ctx.tally.cleared, 1);
                self.unpark(ctx, &entry.incident_id).await
            }
            Some(super::incident::Outcome::Parked(msg)) => {
                self.park(ctx, &id, t, msg, Some(entry)).await;
                false
            }
            _ => false,
        }
    }

    pub(super) async fn unpark(&self, ctx: &TenantCtx, id: &DefenderIncidentId) -> bool {
        match self.state.remove_retry(&ctx.tenant, id).await {
            Ok(()) => true,
            Err(e) => {
                ctx.tally
                    .error(format!("removing {id} from the retry set: {e}"));
                false
            }
        }
    }

    /// Parks an incident in the retry set (with backoff) and records the failure in its state.
    pub(super) async fn park(
        &self,
        ctx: &TenantCtx,
        id: &DefenderIncidentId,
        last_update: OffsetDateTime,
        error: String,
        prev: Option<&RetryEntry>,
    ) {
        let attempts = prev.map_or(1, |p| p.attempts.saturating_add(1));
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
        let delay = self
            .opts
            .park_backoff
            .saturating_mul(factor)
            .min(self.opts.park_backoff_max);
        let now = OffsetDateTime::now_utc();
        let entry = RetryEntry {
            incident_id: id.clone(),
            last_update,
            attempts,
            last_error: error.clone(),
            next_attempt: now + to_time(delay),
        };
        tracing::warn!(incident_id = %id, attempts, error = %error, message = "Incident parked in the retry set.");
        Tally::add(&ctx.tally.parked, 1);
        ctx.tally.error(format!("incident {id}: {error}"));
        if let Err(e) = self.state.put_retry(&ctx.tenant, &entry).await {
            ctx.tally.error(format!("parking {id}: {e}"));
        }
        self.record_failure(ctx, id, error).await;
    }

    /// Marks the incident's state as parked (for SyncHealth); best effort.
    async fn record_failure(&self, ctx: &TenantCtx, id: &DefenderIncidentId, error: String) {
        let name = SentinelIncidentName::for_defender(&ctx.tenant, id);
        let Ok(current) = self.state.incident(&name).await else {
            return;
        };
        let (mut value, pre) = match current {
            Some(v) => (v.value, Precondition::Matches(v.etag)),
            None => {
                // An insert: the horizon must cover the incident, created before now.
                if self
                    .cover_horizon(ctx, OffsetDateTime::now_utc())
                    .await
                    .is_err()
                {
                    return;
                }
                (
                    IncidentState::new(ctx.tenant.clone(), id.clone()),
                    Precondition::Absent,
                )
            }
        };
        value.last_outcome = Some(Outcome::Parked);
        value.last_error = Some(error);
        value.updated_at = Some(OffsetDateTime::now_utc());
        if let Err(e) = self.state.put_incident(&value, pre).await {
            tracing::debug!(error = %e, message = "Parked state not recorded.");
        }
    }
}

/// The margin kept before `deadline`: the configured one, but never more than a quarter of the
/// time left when the tenant's cycle starts, so a short budget (a short `functionTimeout`) still
/// does work instead of being out of time before it begins.
fn margin(configured: Duration, deadline: Instant) -> Duration {
    configured.min(deadline.saturating_duration_since(Instant::now()) / 4)
}

pub(super) fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}
