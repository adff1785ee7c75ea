//! What a forward cycle reports, per tenant, and the shared counters incidents update while
//! they run concurrently.

use crate::domain::TenantId;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Figures of one tenant's forward cycle.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TenantReport {
    pub tenant: Option<TenantId>,
    /// Incidents listed by Defender (window pages and retry set).
    pub seen: u64,
    /// Incidents whose Sentinel incident, comments or alert rows were written.
    pub written: u64,
    /// Incidents already in sync (nothing written).
    pub unchanged: u64,
    /// Incidents that failed transiently (they hold the watermark and come back next cycle),
    /// and listed incidents that could not be mapped and carry no usable id (they cannot be
    /// retried, so they do not hold the watermark; their errors are in `errors`).
    pub failed: u64,
    /// Incidents parked in the retry set this cycle (they do not hold the watermark).
    pub parked: u64,
    /// Parked incidents that succeeded this cycle and left the retry set.
    pub cleared: u64,
    /// Throttled upstream calls (429).
    pub throttled: u64,
    /// now − watermark after the cycle.
    pub lag: Option<Duration>,
    /// Incidents whose Sentinel incident holds 100 comments (Sentinel names).
    pub comment_cap_reached: Vec<String>,
    pub errors: Vec<String>,
    /// True when every window was pulled and the watermark reached the window end.
    pub completed: bool,
}

/// Figures of one forward cycle.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CycleReport {
    pub tenants: Vec<TenantReport>,
    /// The Sentinel poll of reverse sync, when it ran.
    pub reverse: Option<super::reverse_poll::ReverseReport>,
}

impl CycleReport {
    /// True when every tenant's cycle (and the reverse poll, when it ran) completed.
    pub fn completed(&self) -> bool {
        self.tenants.iter().all(|t| t.completed)
            && self.reverse.as_ref().is_none_or(|r| r.completed)
    }

    /// Sum of a figure over the tenants.
    pub fn total(&self, f: impl Fn(&TenantReport) -> u64) -> u64 {
        self.tenants.iter().map(f).sum()
    }
}

/// Most errors kept in a report (the first ones; the rest are counted in the log).
const MAX_ERRORS: usize = 20;

/// Counters shared by the incidents of one tenant cycle.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub seen: AtomicU64,
    pub written: AtomicU64,
    pub unchanged: AtomicU64,
    pub failed: AtomicU64,
    pub parked: AtomicU64,
    pub cleared: AtomicU64,
    pub cap: Mutex<Vec<String>>,
    pub errors: Mutex<Vec<String>>,
}

impl Tally {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn error(&self, e: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.len() < MAX_ERRORS {
            errors.push(e);
        }
    }

    pub fn cap_reached(&self, name: String) {
        let mut cap = self.cap.lock().unwrap_or_else(|p| p.into_inner());
        if !cap.contains(&name) {
            cap.push(name);
        }
    }

    pub fn report(
        &self,
        tenant: &TenantId,
        completed: bool,
        lag: Option<Duration>,
        throttled: u64,
    ) -> TenantReport {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TenantReport {
            tenant: Some(tenant.clone()),
            seen: get(&self.seen),
            written: get(&self.written),
            unchanged: get(&self.unchanged),
            failed: get(&self.failed),
            parked: get(&self.parked),
            cleared: get(&self.cleared),
            throttled,
            lag,
            comment_cap_reached: self.cap.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            completed,
        }
    }
}
