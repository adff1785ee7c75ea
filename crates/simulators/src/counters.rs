//! Call counters per API and operation, for the demo's figures and for benchmarks.

use serde::Serialize;
use std::collections::BTreeMap;

/// Counts of one operation, by outcome.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct OpCount {
    pub calls: u64,
    pub ok: u64,
    pub client_errors: u64,
    pub throttled: u64,
    pub server_errors: u64,
    /// Connections dropped by fault injection.
    pub resets: u64,
    /// Answers delayed by a plan's `slow_ms` (slower than a client's timeout, as a test sets
    /// it); also counted by their outcome.
    pub slowed: u64,
}

/// `api → operation → counts`; operations are named `"METHOD route"`, e.g.
/// `"GET /v1.0/security/incidents"` or `"PUT incidents/{id}"`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counters {
    pub by_api: BTreeMap<String, BTreeMap<String, OpCount>>,
}

impl Counters {
    /// Records one finished call; `status` 0 means the connection was dropped.
    pub fn record(&mut self, api: &str, op: &str, status: u16) {
        let c = self
            .by_api
            .entry(api.to_owned())
            .or_default()
            .entry(op.to_owned())
            .or_default();
        c.calls += 1;
        match status {
            0 => c.resets += 1,
            429 => c.throttled += 1,
            200..=399 => c.ok += 1,
            400..=499 => c.client_errors += 1,
            _ => c.server_errors += 1,
        }
    }

    /// Records that a call of `op` was delayed by a slow-answer fault.
    pub fn record_slowed(&mut self, api: &str, op: &str) {
        self.by_api
            .entry(api.to_owned())
            .or_default()
            .entry(op.to_owned())
            .or_default()
            .slowed += 1;
    }

    /// Total calls to one API.
    pub fn total(&self, api: &str) -> u64 {
        self.by_api
            .get(api)
            .map(|m| m.values().map(|c| c.calls).sum())
            .unwrap_or(0)
    }

    /// Counts of one operation (zero if never called).
    pub fn op(&self, api: &str, op: &str) -> OpCount {
        self.by_api
            .get(api)
            .and_then(|m| m.get(op))
            .copied()
            .unwrap_or_default()
    }
}
