//! Glue between the host protocol and the sync engine: runs a forward cycle for the
//! `DefenderSync` timer (and the `sync` subcommand) and turns its report into the reply's
//! `Logs` and `ReturnValue`, with the upstream call figures of each adapter.

use crate::adapters::graph::GraphClient;
use crate::adapters::http::CallCounts;
use crate::adapters::logs::LogsClient;
use crate::adapters::sentinel::SentinelClient;
use crate::host::plugins::{CycleReport as HostReport, SyncRunner};
use crate::sync::{CycleReport, ForwardSync, PageProgress, ReverseReport, TenantReport};
use serde_json::json;
use std::sync::Arc;

/// The forward sync with the adapters it runs on (kept for their call counters).
pub struct EngineRunner {
    pub sync: ForwardSync,
    pub graph: Arc<GraphClient>,
    pub sentinel: Arc<SentinelClient>,
    pub logs: Option<Arc<LogsClient>>,
    /// The Sentinel side the engine writes (`sentinel`, or the unified target's client).
    pub sentinel_side: Arc<dyn crate::ports::SentinelApi>,
    /// The unified target's client, when `SENTINEL_TARGET=unified` (the webhook routes by it).
    pub unified: Option<Arc<crate::adapters::unified::UnifiedClient>>,
}

impl EngineRunner {
    /// Upstream calls so far, per API (every attempt counts).
    pub fn calls(&self) -> serde_json::Value {
        let c = |c: CallCounts| json!({ "calls": c.calls, "retries": c.retries, "throttled": c.throttled });
        json!({
            "graph": c(self.graph.counts()),
            "arm": c(self.sentinel.counts()),
            "logs": self.logs.as_ref().map(|l| c(l.counts())),
        })
    }
}

/// One line per tenant, for the invocation's `Logs` and the `sync` subcommand.
pub fn tenant_line(t: &TenantReport) -> String {
    let tenant = t
        .tenant
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_else(|| "?".into());
    let lag = t
        .lag
        .map(|l| format!("{}s", l.as_secs()))
        .unwrap_or_else(|| "-".into());
    format!(
        "tenant {tenant}: {} seen, {} written, {} unchanged, {} failed, {} parked, {} cleared, {} throttled, lag {lag}, {}",
        t.seen,
        t.written,
        t.unchanged,
        t.failed,
        t.parked,
        t.cleared,
        t.throttled,
        if t.completed {
            "completed"
        } else {
            "NOT completed (the next cycle continues)"
        }
    )
}

/// The `sync` subcommand's line for a page of incidents (printed on a terminal only).
pub fn progress_line(p: &PageProgress) -> String {
    let next = if p.more { ", more to come" } else { "" };
    format!(
        "tenant {}: page {} done ({} incidents; {} delivered so far{next})",
        p.tenant, p.page, p.incidents, p.delivered
    )
}

/// The `sync` subcommand's line for a page of the Sentinel poll (printed on a terminal only).
pub fn poll_progress_line(p: &crate::sync::PollProgress) -> String {
    let next = if p.more { ", more to come" } else { "" };
    format!(
        "sentinel poll: page {} done ({} incidents; {} seen, {} Defender writes so far{next})",
        p.page, p.incidents, p.seen, p.defender_writes
    )
}

/// The line of the reverse poll (Sentinel → Defender).
pub fn reverse_line(r: &ReverseReport) -> String {
    format!(
        "sentinel poll: {} incidents seen, {} Defender writes, {} comments, {} conflicts, \
         {} unmanaged, {} parked, {} failed, {} throttled, {} pages{}",
        r.seen,
        r.defender_writes,
        r.comments,
        r.conflicts,
        r.unmanaged,
        r.parked,
        r.failed,
        r.throttled,
        r.pages,
        if r.completed { "" } else { " (incomplete)" }
    )
}

/// The figures of the cycle's one summary line: every tenant and the Sentinel poll together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CycleSummary {
    pub tenants: usize,
    pub seen: u64,
    pub written: u64,
    pub failed: u64,
    pub parked: u64,
    pub throttled: u64,
    /// The largest lag of a tenant (now − watermark), in seconds.
    pub lag_seconds: Option<u64>,
    pub completed: bool,
}

/// Sums the report up: forward figures plus the Sentinel poll's (its Defender writes count
/// as written).
pub fn summary(report: &CycleReport) -> CycleSummary {
    let mut s = CycleSummary {
        tenants: report.tenants.len(),
        completed: report.completed(),
        ..CycleSummary::default()
    };
    for t in &report.tenants {
        s.seen += t.seen;
        s.written += t.written;
        s.failed += t.failed;
        s.parked += t.parked;
        s.throttled += t.throttled;
        if let Some(lag) = t.lag {
            s.lag_seconds = Some(s.lag_seconds.unwrap_or(0).max(lag.as_secs()));
        }
    }
    if let Some(r) = &report.reverse {
        s.seen += r.seen;
        s.written += r.defender_writes;
        s.failed += r.failed;
        s.parked += r.parked;
        s.throttled += r.throttled;
    }
    s
}

/// Logs the cycle's one summary line (`Cycle summary.`; in JSON under the host, see
/// `telemetry`), which the saved queries in `infra/` read.
pub fn log_summary(report: &CycleReport) {
    let s = summary(report);
    let direction = if report.reverse.is_some() {
        "both"
    } else {
        "defender-to-sentinel"
    };
    tracing::info!(
        direction,
        tenants = s.tenants,
        seen = s.seen,
        written = s.written,
        failed = s.failed,
        parked = s.parked,
        throttled = s.throttled,
        lag_seconds = s.lag_seconds,
        outcome = if s.completed {
            "completed"
        } else {
            "incomplete"
        },
        message = "Cycle summary."
    );
}

/// The report as JSON figures (the reply's `ReturnValue`).
pub fn figures(report: &CycleReport, calls: serde_json::Value) -> serde_json::Value {
    let tenants: Vec<_> = report
        .tenants
        .iter()
        .map(|t| {
            json!({
                "tenant": t.tenant.as_ref().map(|t| t.to_string()),
                "seen": t.seen, "written": t.written, "unchanged": t.unchanged, "failed": t.failed,
                "parked": t.parked, "cleared": t.cleared, "throttled": t.throttled,
                "lagSeconds": t.lag.map(|l| l.as_secs()),
                "commentCapReached": t.comment_cap_reached,
                "errors": t.errors,
                "completed": t.completed,
            })
        })
        .collect();
    let reverse = report.reverse.as_ref().map(|r| {
        json!({
            "seen": r.seen, "unmanaged": r.unmanaged, "unchanged": r.unchanged,
            "defenderWrites": r.defender_writes, "comments": r.comments, "conflicts": r.conflicts,
            "parked": r.parked, "failed": r.failed, "throttled": r.throttled,
            "pages": r.pages, "outOfTime": r.out_of_time, "cleared": r.cleared,
            "defenderLists": r.defender_lists,
            "errors": r.errors, "completed": r.completed,
        })
    });
    json!({
        "completed": report.completed(), "tenants": tenants, "reverse": reverse, "calls": calls
    })
}

#[async_trait::async_trait]
impl SyncRunner for EngineRunner {
    async fn run_cycle(&self, deadline: tokio::time::Instant) -> HostReport {
        let report = self.sync.run_cycle(deadline).await;
        log_summary(&report);
        let mut logs: Vec<String> = report.tenants.iter().map(tenant_line).collect();
        logs.extend(report.reverse.as_ref().map(reverse_line));
        logs.extend(
            report
                .tenants
                .iter()
                .flat_map(|t| t.errors.iter().map(|e| format!("error: {e}"))),
        );
        HostReport {
            completed: report.completed(),
            logs,
            figures: figures(&report, self.calls()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantId;

    #[test]
    fn the_reverse_poll_has_its_line_and_its_figures() {
        let r = ReverseReport {
            seen: 4,
            unmanaged: 1,
            defender_writes: 2,
            comments: 3,
            conflicts: 1,
            parked: 1,
            throttled: 5,
            pages: 2,
            completed: true,
            ..ReverseReport::default()
        };
        let line = reverse_line(&r);
        assert_eq!(
            line,
            "sentinel poll: 4 incidents seen, 2 Defender writes, 3 comments, 1 conflicts, \
             1 unmanaged, 1 parked, 0 failed, 5 throttled, 2 pages"
        );
        let report = CycleReport {
            tenants: vec![],
            reverse: Some(r),
        };
        let f = figures(&report, json!({}));
        assert_eq!(f["reverse"]["defenderWrites"], 2);
        assert_eq!(f["reverse"]["unmanaged"], 1);
        assert_eq!(f["reverse"]["throttled"], 5);
        assert_eq!(f["reverse"]["pages"], 2);
        assert_eq!(f["completed"], true);
        let none = figures(&CycleReport::default(), json!({}));
        assert!(none["reverse"].is_null());
    }

    #[test]
    fn the_summary_adds_up_the_tenants_and_the_poll_and_keeps_the_largest_lag() {
        let t = |seen, lag: Option<u64>| TenantReport {
            seen,
            written: 1,
            failed: 1,
            parked: 2,
            throttled: 3,
            lag: lag.map(std::time::Duration::from_secs),
            completed: true,
            ..TenantReport::default()
        };
        let mut report = CycleReport {
            tenants: vec![t(5, Some(30)), t(7, Some(90)), t(1, None)],
            reverse: Some(ReverseReport {
                seen: 4,
                defender_writes: 2,
                throttled: 1,
                completed: true,
                ..ReverseReport::default()
            }),
        };
        let s = summary(&report);
        assert_eq!(
            s,
            CycleSummary {
                tenants: 3,
                seen: 17,
                written: 5,
                failed: 3,
                parked: 6,
                throttled: 10,
                lag_seconds: Some(90),
                completed: true,
            }
        );
        report.tenants[1].completed = false;
        assert!(!summary(&report).completed);
        assert_eq!(summary(&CycleReport::default()).lag_seconds, None);
    }

    #[test]
    fn a_poll_progress_line_names_the_page_and_the_counts() {
        let p = crate::sync::PollProgress {
            page: 2,
            incidents: 40,
            seen: 1040,
            defender_writes: 3,
            more: true,
        };
        assert_eq!(
            poll_progress_line(&p),
            "sentinel poll: page 2 done (40 incidents; 1040 seen, 3 Defender writes so far, more to come)"
        );
    }

    #[test]
    fn a_progress_line_names_the_tenant_the_page_and_the_counts() {
        let tenant = TenantId::parse("2070ecc9-b4d5-4ae4-adaa-936fa1954fa8").unwrap();
        let mut p = PageProgress {
            tenant,
            page: 3,
            incidents: 50,
            delivered: 150,
            more: true,
        };
        assert_eq!(
            progress_line(&p),
            "tenant 2070ecc9-b4d5-4ae4-adaa-936fa1954fa8: page 3 done (50 incidents; 150 delivered so far, more to come)"
        );
        p.more = false;
        assert!(progress_line(&p).ends_with("(50 incidents; 150 delivered so far)"));
    }
}
