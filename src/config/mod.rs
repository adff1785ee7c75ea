//! Settings, parsed once from the environment into typed values (names fixed by
//! the README's Configuration table). Parsing reports every problem, one line each, naming the
//! setting. Secrets are [`azure_core::credentials::Secret`], whose `Debug` prints nothing.

use crate::domain::{ConflictPolicyName, TenantId};
use azure_core::credentials::Secret;
use std::time::Duration;
use url::Url;

mod env;
mod reader;
pub mod timeout;

pub use reader::{SettingError, SettingsErrors};

/// Everything the handler needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tenant of the Sentinel workspace (and default Defender tenant).
    pub azure_tenant_id: TenantId,
    pub credential: CredentialSettings,
    /// `AZURE_AUTHORITY_HOST`, always https.
    pub authority_host: Url,
    /// `DEFENDER_TENANT_IDS`, default `[AZURE_TENANT_ID]`.
    pub defender_tenants: Vec<TenantId>,
    pub graph_endpoint: Url,
    pub arm_endpoint: Url,
    pub workspace: SentinelWorkspace,
    /// `SENTINEL_TARGET`: where the Sentinel-side incidents live (default ARM).
    pub sentinel_target: SentinelTarget,
    /// `None` = alert ingestion off.
    pub logs: Option<LogsSettings>,
    /// The state table's connection; `None` only with `SYNC_STATE_STORE=memory` (state kept in
    /// process memory: local development, demo and tests; lost on restart).
    pub storage: Option<StorageConfig>,
    pub state_table: String,
    pub lookback: Duration,
    pub conflict_policy: ConflictPolicyName,
    pub severity_to_defender: bool,
    /// The host's `functionTimeout`; work stops with a margin before it.
    pub function_timeout: Duration,
    pub webhook_auth: WebhookAuth,
    /// `WEBHOOK_ALLOWED_APP_IDS`: the app ids a webhook bearer token may come from (`appid` /
    /// `azp`); empty = any app of the tenant. Not in the fixed contract.
    pub webhook_allowed_app_ids: Vec<String>,
    pub limits: ClientLimits,
    /// First delay before a parked incident is retried (doubled per attempt, capped at an hour):
    /// `SYNC_RETRY_BACKOFF_SECONDS`, default 60. Tests and demos shorten it.
    pub retry_backoff: Duration,
    /// How long one upstream HTTP call (Graph, ARM, Logs) may take before it counts as failed
    /// and is retried or deferred: `SYNC_CALL_TIMEOUT_SECONDS`, default 30. Not in the fixed
    /// contract.
    pub call_timeout: Duration,
    /// `DEFENDER_SYNC_SCHEDULE` as given (the host evaluates it; kept for SyncHealth).
    pub schedule: Option<String>,
    /// `SYNC_STARTUP_CHECK`: run the permission self-check (`check`) once after startup and log
    /// it. Default on, except when `GRAPH_ENDPOINT` is a loopback host (local simulators).
    pub startup_check: bool,
}

/// How the handler gets Entra tokens.
#[derive(Debug, Clone)]
pub enum CredentialSettings {
    /// App Service managed identity (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`); `client_id` selects a
    /// user-assigned identity.
    ManagedIdentity { client_id: Option<String> },
    /// Client secret of a (multi-tenant) app registration.
    ClientSecret { client_id: String, secret: Secret },
}

/// The Sentinel workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelWorkspace {
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace_name: String,
}

/// `SENTINEL_TARGET`: which Sentinel-side adapter the handler uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SentinelTarget {
    /// `arm` (default): the sync creates Sentinel incidents through ARM (shown in the Azure
    /// portal).
    #[default]
    Arm,
    /// `unified`: an analytics rule over the ingested alerts makes the platform create the
    /// incidents; the sync finds and updates them through Graph in the workspace's tenant
    /// (shown in the unified Defender portal).
    Unified,
}

impl SentinelTarget {
    /// The setting's value: `arm` or `unified` (case-insensitive).
    pub fn parse(v: &str) -> Result<Self, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "arm" => Ok(Self::Arm),
            "unified" => Ok(Self::Unified),
            _ => Err(format!("'{v}' is not one of arm, unified")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Arm => "arm",
            Self::Unified => "unified",
        }
    }
}

/// Logs Ingestion target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsSettings {
    pub endpoint: Url,
    pub dcr_immutable_id: String,
    pub stream_name: String,
    /// Token audience (`LOGS_INGESTION_AUDIENCE`; default from the endpoint's cloud).
    pub audience: Url,
}

/// Where the state table lives and how to authenticate to it.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// Account key (connection string or `UseDevelopmentStorage=true`); SharedKey signing.
    SharedKey {
        account: String,
        key: Secret,
        table_endpoint: Url,
    },
    /// Identity-based connection (`AzureWebJobsStorage__accountName` / `__tableServiceUri`).
    Identity {
        account: String,
        table_endpoint: Url,
    },
}

/// How SentinelWebhook callers authenticate (besides the host's function key).
#[derive(Debug, Clone)]
pub enum WebhookAuth {
    /// Header `X-Sync-Secret`, compared in constant time.
    SharedSecret(Secret),
    /// Entra bearer token for this audience.
    EntraToken { audience: String },
    /// Both accepted.
    Either { secret: Secret, audience: String },
    /// `WEBHOOK_AUTH=none`: local development only.
    Disabled,
}

/// Client-side budgets (defaults follow the services' documented limits).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientLimits {
    /// Graph `/security` requests per minute per tenant (150).
    pub graph_per_minute: u32,
    /// ARM write burst (200) and refill per second (10).
    pub arm_write_burst: u32,
    pub arm_writes_per_second: f64,
    /// ARM read burst (250) and refill per second (25): the Sentinel poll's list pages and
    /// every incident and comment read.
    pub arm_read_burst: u32,
    pub arm_reads_per_second: f64,
    /// Concurrent Sentinel incident writes.
    pub sentinel_concurrency: usize,
}

impl ClientLimits {
    /// Limits so high they never throttle (`SYNC_BENCH_UNLIMITED=true`, benchmarks against the
    /// local simulators only: against real services this gets the app throttled).
    pub fn unlimited() -> Self {
        Self {
            graph_per_minute: 1_000_000,
            arm_write_burst: 1_000_000,
            arm_writes_per_second: 1_000_000.0,
            arm_read_burst: 1_000_000,
            arm_reads_per_second: 1_000_000.0,
            sentinel_concurrency: 64,
        }
    }
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            graph_per_minute: 150,
            arm_write_burst: 200,
            arm_writes_per_second: 10.0,
            arm_read_burst: 250,
            arm_reads_per_second: 25.0,
            sentinel_concurrency: 8,
        }
    }
}
