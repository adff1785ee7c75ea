//! What the protocol layer calls into: the sync engine and reverse sync plug in here as trait
//! objects once they exist, together with the state store SyncHealth reads.

use super::payload::HttpRequestData;
use crate::state::StateStore;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The outcome of one sync cycle, as the DefenderSync reply reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CycleReport {
    /// Whether the cycle finished all its work (false when it stopped at the deadline or failed).
    pub completed: bool,
    /// Lines for the reply's `Logs` (the host records them under the invocation).
    pub logs: Vec<String>,
    /// The reply's `ReturnValue` (figures of the cycle).
    pub figures: serde_json::Value,
}

/// Runs one forward sync cycle (the DefenderSync timer).
#[async_trait::async_trait]
pub trait SyncRunner: Send + Sync {
    /// Syncs until done or until `deadline`, whichever comes first; never fails the invocation:
    /// a failed cycle is reported in the [`CycleReport`].
    async fn run_cycle(&self, deadline: tokio::time::Instant) -> CycleReport;
}

/// What an HTTP function answers its caller (becomes `Outputs.res`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    pub status: u16,
    /// Header values are strings, as the host requires.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// Lines for the reply's `Logs`.
    pub logs: Vec<String>,
}

impl HttpReply {
    /// A JSON reply.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        let headers = BTreeMap::from([("Content-Type".to_owned(), "application/json".to_owned())]);
        Self {
            status,
            headers,
            body: body.to_string(),
            logs: Vec::new(),
        }
    }

    /// Adds a log line.
    pub fn with_log(mut self, line: impl Into<String>) -> Self {
        self.logs.push(line.into());
        self
    }
}

/// Handles one SentinelWebhook call (reverse sync).
#[async_trait::async_trait]
pub trait WebhookHandler: Send + Sync {
    /// Authenticates and applies the call; finishes before `deadline`.
    async fn handle(&self, request: HttpRequestData, deadline: tokio::time::Instant) -> HttpReply;

    /// Whether a JSON reply body gets where the call's time went (`crate::call_clock`), for
    /// the benchmark.
    fn reports_timing(&self) -> bool {
        false
    }
}

/// Everything built by the slow part of startup.
#[derive(Clone, Default)]
pub struct Services {
    /// The forward sync; `None` until the engine is wired.
    pub sync: Option<Arc<dyn SyncRunner>>,
    /// Reverse sync; `None` until it is wired.
    pub webhook: Option<Arc<dyn WebhookHandler>>,
    /// The durable state (SyncHealth reads its per-tenant records).
    pub store: Option<Arc<dyn StateStore>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("sync", &self.sync.is_some())
            .field("webhook", &self.webhook.is_some())
            .field("store", &self.store.is_some())
            .finish()
    }
}

/// Where the slow part of startup is.
#[derive(Debug, Clone)]
pub enum Setup {
    Pending,
    Ready(Arc<Services>),
    /// Setup failed; invocations report this message.
    Failed(Arc<str>),
}
