//! The forward-sync shell: one cycle per tenant, Defender → Sentinel (and Logs Ingestion),
//! through the ports. Decisions are the pure `merge` and `plan`; the owners (horizon, retry
//! set, puller, incident sync, comment mirror) do the work; this file builds them for each
//! tenant's cycle, sequences them, and advances the checkpoint only past what was delivered or
//! parked.

use super::cycle::{Ports, ProgressFn, TenantCycle, to_time};
use super::horizon::Horizon;
use super::incident::IncidentSync;
use super::merge::MergePolicy;
use super::plan;
use super::pull::{Delivery, Pulled, Puller};
use super::report::{CycleReport, TenantReport};
use super::retry_set::RetrySet;
use crate::config::ClientLimits;
use crate::domain::*;
use crate::ports::*;
use crate::state::*;
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
    ports: Ports,
    tenants: Vec<TenantId>,
    policy: MergePolicy,
    limits: ClientLimits,
    opts: ForwardOptions,
    /// Told after every batch of pages (the `sync` subcommand prints it on a terminal).
    progress: Option<ProgressFn>,
    /// Every 429 the upstream clients met so far (see [`ForwardSync::with_throttle_probe`]).
    throttle_probe: Option<ThrottleProbe>,
    /// The Sentinel poll of reverse sync, run after the tenants when set.
    reverse: Option<super::reverse_poll::ReverseOptions>,
    /// Told after every page of the Sentinel poll.
    reverse_progress: Option<super::reverse_poll::PollProgressFn>,
}

/// Reads a running count of throttled (429) upstream responses.
pub type ThrottleProbe = Arc<dyn Fn() -> u64 + Send + Sync>;

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
            ports: Ports {
                defender,
                sentinel,
                logs,
                state,
            },
            tenants,
            policy,
            limits,
            opts,
            progress: None,
            throttle_probe: None,
            reverse: None,
            reverse_progress: None,
        }
    }

    /// Reports every page of the Sentinel poll to `progress`.
    pub fn set_reverse_progress(&mut self, progress: super::reverse_poll::PollProgressFn) {
        self.reverse_progress = Some(progress);
    }

    /// Reports every batch of pages of incidents to `progress`.
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

    /// Runs the Sentinel poll of reverse sync in every cycle, after the tenants' forward
    /// cycles (so a change Defender made this cycle is in Sentinel before the poll merges).
    pub fn with_reverse_poll(mut self, opts: super::reverse_poll::ReverseOptions) -> Self {
        self.reverse = Some(opts);
        self
    }

    /// Replaces the tunables (keeps nothing of the previous ones).
    pub fn with_options(mut self, opts: ForwardOptions) -> Self {
        self.opts = opts;
        self
    }

    /// The state store the engine writes (SyncHealth reads it).
    pub fn state(&self) -> Arc<dyn StateStore> {
        self.ports.state.clone()
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
        if let Some(opts) = &self.reverse {
            let span = tracing::info_span!("reverse_poll");
            let before = self.throttle_probe.as_ref().map(|p| p());
            let mut r = self.run_reverse(opts, deadline).instrument(span).await;
            r.throttled = match (&self.throttle_probe, before) {
                (Some(p), Some(b)) => p().saturating_sub(b),
                _ => 0,
            };
            tracing::info!(
                seen = r.seen,
                unmanaged = r.unmanaged,
                defender_writes = r.defender_writes,
                comments = r.comments,
                conflicts = r.conflicts,
                parked = r.parked,
                failed = r.failed,
                completed = r.completed,
                message = "Reverse poll finished."
            );
            self.save_reverse_figures(&r).await;
            report.reverse = Some(r);
        }
        report
    }

    /// Each tenant's share of the poll, added to its health figures (for SyncHealth).
    async fn save_reverse_figures(&self, r: &super::reverse_poll::ReverseReport) {
        let state = &*self.ports.state;
        for tenant in &self.tenants {
            let figures = r.per_tenant.get(tenant).cloned().unwrap_or_default();
            let mut health = match state.tenant_health(tenant).await {
                Ok(h) => h.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e, message = "Tenant health not read.");
                    continue;
                }
            };
            health.reverse = Some(figures);
            if let Err(e) = state.put_tenant_health(tenant, &health).await {
                tracing::warn!(error = %e, message = "Tenant health not saved.");
            }
        }
    }

    /// The Sentinel poll: each changed incident applied to its own Defender tenant.
    async fn run_reverse(
        &self,
        opts: &super::reverse_poll::ReverseOptions,
        deadline: Instant,
    ) -> super::reverse_poll::ReverseReport {
        let deadline = deadline
            .checked_sub(self.opts.deadline_margin)
            .unwrap_or(deadline);
        let apply = super::reverse::ReverseApply {
            defender: self.ports.defender.as_ref(),
            sentinel: self.ports.sentinel.as_ref(),
            store: self.ports.state.as_ref(),
            policy: &self.policy,
            tenants: &self.tenants,
        };
        super::reverse_poll::ReversePoll {
            apply,
            sentinel: self.ports.sentinel.as_ref(),
            store: self.ports.state.as_ref(),
            opts,
            concurrency: self.limits.sentinel_concurrency.max(1),
            progress: self.reverse_progress.clone(),
            defender_overlap: self.opts.overlap,
        }
        .run(deadline)
        .await
    }

    /// One tenant's cycle: the owners are built for it and dropped with it.
    async fn run_tenant(&self, tenant: &TenantId, deadline: Instant) -> TenantReport {
        let start = OffsetDateTime::now_utc();
        let throttled_before = self.throttle_probe.as_ref().map(|p| p());
        let margin = self.opts.deadline_margin;
        let cycle = TenantCycle::new(tenant.clone(), deadline, margin, self.progress.clone());
        let (completed, watermark) = self.sync_tenant(&cycle, start).await;
        self.finish(&cycle, start, completed, watermark, throttled_before)
            .await
    }

    /// Retries the retry set's due incidents, pulls the tenant's window from its checkpoint
    /// and saves the next one; returns whether the cycle completed, and the watermark.
    async fn sync_tenant(
        &self,
        cycle: &TenantCycle,
        start: OffsetDateTime,
    ) -> (bool, Option<OffsetDateTime>) {
        let state = &*self.ports.state;
        let checkpoint = match state.checkpoint(&cycle.tenant).await {
            Ok(c) => c,
            Err(e) => {
                cycle.tally.error(format!("reading the checkpoint: {e}"));
                return (false, None);
            }
        };
        let at_watermark = checkpoint.as_ref().map(|c| &c.value);
        let (lookback, overlap) = (to_time(self.opts.lookback), to_time(self.opts.overlap));
        let window = plan::initial_window(at_watermark, lookback, overlap, start);
        let window_end = window.updated_to.unwrap_or(start);
        let pulled = self.pull(cycle, window, window_end, at_watermark).await;
        let next =
            plan::advance_checkpoint(at_watermark, window_end, pulled.hold, &pulled.delivered);
        let watermark = match next {
            Some(cp) => self.save_checkpoint(cycle, checkpoint.as_ref(), cp).await,
            None => at_watermark.map(|c| c.watermark),
        };
        (pulled.hold.is_none(), watermark)
    }

    /// Builds the cycle's owners, retries the due incidents of the retry set, raises the state
    /// horizon to the window's end and pulls the window.
    async fn pull(
        &self,
        cycle: &TenantCycle,
        window: IncidentWindow,
        window_end: OffsetDateTime,
        at_watermark: Option<&Checkpoint>,
    ) -> Pulled {
        let state = &*self.ports.state;
        let horizon = Horizon::new(state, &cycle.tenant);
        let incidents = IncidentSync {
            ports: &self.ports,
            cycle,
            horizon: &horizon,
            policy: &self.policy,
            concurrency: self.limits.sentinel_concurrency.max(1),
        };
        let retries = RetrySet {
            state,
            cycle,
            horizon: &horizon,
            backoff: self.opts.park_backoff,
            backoff_max: self.opts.park_backoff_max,
        };
        let defender = &*self.ports.defender;
        let parked = retries.retry_due(defender, &incidents).await;
        horizon.open(window_end).await;
        let delivery = Delivery {
            defender,
            cycle,
            incidents: &incidents,
            retries: &retries,
            parked: &parked,
            at_watermark,
        };
        Puller::new(delivery).run(window).await
    }

    async fn save_checkpoint(
        &self,
        cycle: &TenantCycle,
        old: Option<&Versioned<Checkpoint>>,
        cp: Checkpoint,
    ) -> Option<OffsetDateTime> {
        if old.is_some_and(|v| v.value == cp) {
            return Some(cp.watermark);
        }
        let pre = old.map_or(Precondition::Absent, |v| {
            Precondition::Matches(v.etag.clone())
        });
        match self
            .ports
            .state
            .put_checkpoint(&cycle.tenant, &cp, pre)
            .await
        {
            Ok(_) => Some(cp.watermark),
            Err(e) => {
                // Another instance moved it (or storage failed): the next cycle re-reads the overlap.
                tracing::warn!(error = %e, message = "Checkpoint not saved.");
                cycle.tally.error(format!("saving the checkpoint: {e}"));
                old.map(|v| v.value.watermark)
            }
        }
    }

    /// The tenant's report, also saved as its health figures (for SyncHealth).
    async fn finish(
        &self,
        cycle: &TenantCycle,
        start: OffsetDateTime,
        completed: bool,
        watermark: Option<OffsetDateTime>,
        throttled_before: Option<u64>,
    ) -> TenantReport {
        let end = OffsetDateTime::now_utc();
        // The clients count every 429 once (they own the retries); the engine counts none.
        let throttled = match (&self.throttle_probe, throttled_before) {
            (Some(probe), Some(before)) => probe().saturating_sub(before),
            _ => 0,
        };
        let lag = watermark.map(|w| (end - w).try_into().unwrap_or(Duration::ZERO));
        let report = cycle.tally.report(&cycle.tenant, completed, lag, throttled);
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
            // Added by the Sentinel poll after the tenants (`save_reverse_figures`).
            reverse: None,
        };
        if let Err(e) = self
            .ports
            .state
            .put_tenant_health(&cycle.tenant, &health)
            .await
        {
            tracing::warn!(error = %e, message = "Tenant health not saved.");
        }
        report
    }
}
