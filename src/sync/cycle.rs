//! What one tenant's cycle shares between its owners: the ports, the pair it works for, its
//! deadline, its figures and progress, and what one incident's sync can end in.

use super::report::Tally;
use crate::domain::*;
use crate::ports::*;
use crate::state::StateStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

/// The ports a cycle works through.
#[derive(Clone)]
pub(super) struct Ports {
    pub defender: Arc<dyn DefenderApi>,
    pub sentinel: Arc<dyn SentinelApi>,
    pub logs: Option<Arc<dyn LogsIngest>>,
    pub state: Arc<dyn StateStore>,
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

/// The final outcome of one incident, with what the checkpoint needs.
pub(super) type Done = (DefenderIncidentId, OffsetDateTime, Outcome);

/// One tenant's cycle: the Defender tenant (the Sentinel workspace is the ports'), its deadline,
/// the figures its incidents add to while they run concurrently, and its progress.
pub(super) struct TenantCycle {
    pub tenant: TenantId,
    deadline: Instant,
    margin: Duration,
    pub tally: Tally,
    /// `$expand=alerts` still in use this cycle (turned off after it failed).
    pub expand: AtomicBool,
    /// Pages done so far (for progress reports).
    pages: AtomicU64,
    /// Incidents delivered so far (for progress reports).
    delivered: AtomicU64,
    progress: Option<ProgressFn>,
}

impl TenantCycle {
    /// A cycle ending at `deadline`, keeping `margin` before it (never more than a quarter of
    /// the time left now, so a short budget still does work instead of being out of time
    /// before it begins).
    pub fn new(
        tenant: TenantId,
        deadline: Instant,
        margin: Duration,
        progress: Option<ProgressFn>,
    ) -> Self {
        Self {
            tenant,
            deadline,
            margin: margin.min(deadline.saturating_duration_since(Instant::now()) / 4),
            tally: Tally::default(),
            expand: AtomicBool::new(true),
            pages: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            progress,
        }
    }

    /// True when no new work may start.
    pub fn out_of_time(&self) -> bool {
        Instant::now() + self.margin >= self.deadline
    }

    /// An incident that failed transiently: logged and counted; it holds the watermark.
    pub fn held(&self, msg: String) -> Outcome {
        tracing::warn!(error = %msg, message = "Incident not synced this cycle; the watermark holds.");
        Tally::add(&self.tally.failed, 1);
        self.tally.error(msg.clone());
        Outcome::Held(msg)
    }

    /// An incident that met a credentials error: counted; it stops the tenant's cycle.
    pub fn fatal(&self, msg: String) -> Outcome {
        Tally::add(&self.tally.failed, 1);
        self.tally.error(msg.clone());
        Outcome::Fatal(msg)
    }

    /// Counts a batch of `pages` pages done and tells the progress receiver.
    pub fn batch_done(&self, pages: u64, incidents: usize, delivered: usize, more: bool) {
        let page = self.pages.fetch_add(pages, Ordering::Relaxed) + pages;
        let delivered = self
            .delivered
            .fetch_add(delivered as u64, Ordering::Relaxed) as usize
            + delivered;
        if let Some(progress) = &self.progress {
            progress(&PageProgress {
                tenant: self.tenant.clone(),
                page,
                incidents,
                delivered,
                more,
            });
        }
    }
}

pub(super) fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// Why an attempt at one incident did not finish.
pub(super) enum Step {
    /// Someone else wrote (Sentinel 409, state ETag): read everything again.
    Restart,
    Fail(Failure),
}

impl Step {
    pub fn from<E: Classify + std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        match e.class() {
            ErrorClass::Conflict => Step::Restart,
            class => Step::Fail(Failure::new(class, e)),
        }
    }

    pub fn state(e: crate::state::StateError) -> Self {
        match e {
            crate::state::StateError::Conflict => Step::Restart,
            e => Step::Fail(Failure::new(ErrorClass::Transient, StateStoreFailed(e))),
        }
    }
}

/// A failed step: what the caller does next, and the error with its source chain (rendered
/// only when reported: in the figures, the retry set, the incident's state).
#[derive(Debug)]
pub(super) struct Failure {
    pub class: ErrorClass,
    error: Box<dyn std::error::Error + Send + Sync>,
}

impl Failure {
    pub fn new(class: ErrorClass, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            class,
            error: Box::new(e),
        }
    }
}

impl std::fmt::Display for Failure {
    /// The error and each of its sources, `: `-separated.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        let mut source = self.error.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// The state store failed under an incident's sync.
#[derive(Debug, thiserror::Error)]
#[error("state store")]
pub(super) struct StateStoreFailed(#[source] pub crate::state::StateError);
