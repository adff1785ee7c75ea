//! The figures: each cycle's counts and time, calls per API as the simulators counted them and
//! as the handler reported them, and SyncHealth's JSON.

use super::view::cell;
use dss_simulators::Counters;
use serde_json::Value;
use std::time::Duration;

/// One `DefenderSync` invocation as the demo saw it.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub label: String,
    pub took: Duration,
    /// The reply's `ReturnValue`: `completed` and the handler's `figures`.
    pub reply: Value,
}

impl Cycle {
    /// True when the handler says the cycle completed.
    pub fn completed(&self) -> bool {
        self.reply["completed"] == Value::Bool(true)
    }

    fn sum(&self, key: &str) -> u64 {
        self.reply["figures"]["tenants"]
            .as_array()
            .map(|ts| ts.iter().filter_map(|t| t[key].as_u64()).sum())
            .unwrap_or(0)
    }

    /// `seen 14, written 14, unchanged 0, failed 0, parked 0 — 0.41 s`.
    pub fn line(&self) -> String {
        let done = if self.completed() {
            "completed"
        } else {
            "NOT completed"
        };
        format!(
            "{}: {} seen, {} written, {} unchanged, {} failed, {} parked, {done}, {:.2} s",
            self.label,
            self.sum("seen"),
            self.sum("written"),
            self.sum("unchanged"),
            self.sum("failed"),
            self.sum("parked"),
            self.took.as_secs_f64()
        )
    }

    /// The Sentinel poll's figures of this cycle (reverse sync), when it ran.
    pub fn poll_line(&self) -> Option<String> {
        let p = self.reply["figures"]["reverse"].as_object()?;
        let n = |k: &str| p.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        Some(format!(
            "sentinel poll: {} seen, {} Defender writes, {} comments, {} conflicts, {} parked",
            n("seen"),
            n("defenderWrites"),
            n("comments"),
            n("conflicts"),
            n("parked")
        ))
    }

    /// Error lines the handler reported.
    pub fn errors(&self) -> Vec<String> {
        let tenants = self.reply["figures"]["tenants"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let poll = self.reply["figures"]["reverse"]["errors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        tenants
            .iter()
            .flat_map(|t| t["errors"].as_array().cloned().unwrap_or_default())
            .chain(poll)
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect()
    }
}

/// Calls per API and operation, as the simulators served them.
pub fn calls_table(c: &Counters) -> String {
    let mut out = format!(
        "  {} {:>6} {:>6} {:>5} {:>5} {:>5}\n",
        cell("API / operation", 60),
        "calls",
        "ok",
        "4xx",
        "429",
        "5xx"
    );
    for (api, ops) in &c.by_api {
        for (op, n) in ops {
            let name = format!("{api:<6} {op}");
            out.push_str(&format!(
                "  {} {:>6} {:>6} {:>5} {:>5} {:>5}\n",
                cell(&name, 60),
                n.calls,
                n.ok,
                n.client_errors,
                n.throttled,
                n.server_errors + n.resets
            ));
        }
        out.push_str(&format!(
            "  {} {:>6}\n",
            cell(&format!("{api:<6} total"), 60),
            c.total(api)
        ));
    }
    out.push_str("  4xx are answers the handler expects: 404 for an owner not in the directory; an optimistic\n");
    out.push_str(
        "  PUT refused (e.g. 409, stale etag) is followed by a GET, a merge and a new PUT.\n",
    );
    out
}

/// The handler's own call figures (a reply's `figures.calls`, counted since the handler
/// started): calls, retries, throttled per API.
pub fn handler_calls(reply: &Value) -> String {
    ["graph", "arm", "logs"]
        .iter()
        .map(|api| {
            let c = &reply["figures"]["calls"][api];
            match c["calls"].as_u64() {
                Some(n) => format!(
                    "    {api:<6} {n:>6} calls, {} retries, {} throttled",
                    c["retries"], c["throttled"]
                ),
                None => format!("    {api:<6} (not configured)"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pretty JSON with every line cut to fit 100 columns.
pub fn fitted_json(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    text.lines()
        .map(|l| format!("  {}", cell(l, 98).trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}
