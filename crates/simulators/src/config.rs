//! Simulator configuration: identities, workspace, streams, throttling and service quirks.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Well-known ids the simulators are set up with by default (and that a handler config can use).
pub mod wellknown {
    /// Tenant of the Sentinel workspace, the managed identity and the default Defender tenant.
    pub const TENANT_ID: &str = "2070ecc9-b4d5-4ae4-adaa-936fa1954fa8";
    /// A second Defender tenant (MSSP setups pull from both).
    pub const TENANT_ID_2: &str = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c";
    /// Multi-tenant app registration (client credentials), consented in both tenants.
    pub const CLIENT_ID: &str = "4f1c6a52-7d43-4d8e-9b0f-0d1b2c3e4f50";
    /// Its client secret.
    pub const CLIENT_SECRET: &str = "sim-client-secret-not-a-real-one";
    /// Object id of the app's service principal.
    pub const CLIENT_OBJECT_ID: &str = "0b6f2a9e-1c3d-4e5f-8a7b-9c0d1e2f3a4b";
    /// Managed identity (system-assigned) client id and object id.
    pub const MI_CLIENT_ID: &str = "7d9e3b1a-2c4f-4a6b-8d0e-1f2a3b4c5d6e";
    pub const MI_OBJECT_ID: &str = "a1b2c3d4-e5f6-4789-9abc-def012345678";
    /// Secret the simulated Functions platform puts into `IDENTITY_HEADER`.
    pub const IDENTITY_HEADER: &str = "sim-identity-header-secret";
    pub const SUBSCRIPTION_ID: &str = "d0cfe6b2-9ac0-4464-9919-dccaee2e48c0";
    pub const RESOURCE_GROUP: &str = "rg-secops-prod";
    pub const WORKSPACE_NAME: &str = "law-sentinel-prod";
    pub const WORKSPACE_ID: &str = "5b1f7a2e-3c4d-4e8f-9a0b-1c2d3e4f5a6b";
    pub const DCR_IMMUTABLE_ID: &str = "dcr-000a00a000a00000a000000aa000a0aa";
    pub const STREAM_NAME: &str = "Custom-DefenderAlerts_CL";
    /// Analyst in the directory of every tenant (the trigger fixture's owner).
    pub const ANALYST_UPN: &str = "sam.analyst@contoso.com";
    pub const ANALYST_OBJECT_ID: &str = "2046feea-040d-4a46-9e2b-91c2941bfa70";
    /// A security group in the directory of every tenant (a Sentinel incident owner of type
    /// `Group`).
    pub const SOC_GROUP_OBJECT_ID: &str = "9c4b2e61-7d3a-4f85-b1c0-3e2d5a6f7081";
    pub const SOC_GROUP_NAME: &str = "SOC Tier 1";
}

/// An app registration known to the token endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppRegistration {
    pub client_id: String,
    pub client_secret: String,
    /// Object id of its service principal (the `oid` claim).
    pub object_id: String,
    /// Tenants where the app is consented; others answer AADSTS700016.
    pub tenants: Vec<String>,
}

/// A user of the simulated directory (`GET /v1.0/users/{upn}`, Sentinel owner resolution).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DirectoryUser {
    pub object_id: String,
    pub user_principal_name: String,
    pub mail: Option<String>,
    pub display_name: String,
}

/// A group of the simulated directory (a Sentinel incident owner of type `Group`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DirectoryGroup {
    pub object_id: String,
    pub display_name: String,
}

/// A token bucket: `capacity` tokens, refilled at `refill_per_sec`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct BucketSpec {
    pub capacity: f64,
    pub refill_per_sec: f64,
}

impl BucketSpec {
    /// Both the burst and the rate multiplied by `factor` (scale < 1 to hit limits fast in tests).
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            capacity: (self.capacity * factor).max(1.0),
            refill_per_sec: self.refill_per_sec * factor,
        }
    }
}

/// Throttling like the real services. `None` for a bucket turns that limit off.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThrottleConfig {
    /// Graph `/security` and `/users`: per app per tenant. Real: 150 per minute.
    pub graph: Option<BucketSpec>,
    /// ARM reads per principal. Real: 250 burst, 25/s.
    pub arm_reads: Option<BucketSpec>,
    /// ARM writes (PUT/DELETE) per principal. Real: 200 burst, 10/s.
    pub arm_writes: Option<BucketSpec>,
    /// Logs Ingestion requests per DCR. Real: 12,000 per minute.
    pub logs: Option<BucketSpec>,
}

impl ThrottleConfig {
    /// The documented limits of the real services.
    pub fn real() -> Self {
        Self {
            graph: Some(BucketSpec {
                capacity: 150.0,
                refill_per_sec: 2.5,
            }),
            arm_reads: Some(BucketSpec {
                capacity: 250.0,
                refill_per_sec: 25.0,
            }),
            arm_writes: Some(BucketSpec {
                capacity: 200.0,
                refill_per_sec: 10.0,
            }),
            logs: Some(BucketSpec {
                capacity: 12_000.0,
                refill_per_sec: 200.0,
            }),
        }
    }
    /// No throttling at all (benchmarks).
    pub fn off() -> Self {
        Self {
            graph: None,
            arm_reads: None,
            arm_writes: None,
            logs: None,
        }
    }
    /// Every bucket scaled by `factor`.
    pub fn scaled(self, factor: f64) -> Self {
        let s = |b: Option<BucketSpec>| b.map(|b| b.scaled(factor));
        Self {
            graph: s(self.graph),
            arm_reads: s(self.arm_reads),
            arm_writes: s(self.arm_writes),
            logs: s(self.logs),
        }
    }
}

/// Graph quirks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphConfig {
    /// `$top` above this → 400 (real: 50).
    pub max_top: usize,
    /// Page size when `$top` is omitted.
    pub default_top: usize,
    /// `$skip` above this → 400 (real: 500).
    pub max_skip: usize,
    /// Production fault: a list page with `$expand=alerts` answers 500 when one of its incidents
    /// has more alerts than this (elastic/integrations #18144). One incident read on its own
    /// (`GET incidents/{id}?$expand=alerts`) is not affected. `None` = off.
    pub expand_alerts_fail_above: Option<usize>,
    /// Return determinations in the property spelling (`clean`, `compromisedUser`, …) instead of
    /// the PATCH spelling they were written in.
    pub legacy_determination_spelling: bool,
    /// Observed fault: the incident list stops returning pages past this many items, silently
    /// (a 200 without `@odata.nextLink`, while `@odata.count` still counts them all). Reported
    /// by other connectors' users; Graph's docs promise neither behaviour. `None` = off.
    #[serde(default)]
    pub silent_page_end_after: Option<usize>,
    /// Answer without `@odata.count` even when `$count=true` is asked (the docs list `$count`
    /// as supported, but a client must not depend on it). `false` = off.
    #[serde(default)]
    pub omit_count: bool,
    /// Unified-platform mode: ingested alert rows become platform alerts and incidents in the
    /// workspace tenant's Graph ([`crate::unified`]). `None` = off.
    #[serde(default)]
    pub unified: Option<crate::unified::UnifiedConfig>,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            max_top: 50,
            default_top: 50,
            max_skip: 500,
            expand_alerts_fail_above: None,
            legacy_determination_spelling: false,
            silent_page_end_after: None,
            omit_count: false,
            unified: None,
        }
    }
}

/// ARM quirks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArmConfig {
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace_name: String,
    pub workspace_id: String,
    /// Page size of the incident list when `$top` is omitted.
    pub default_top: usize,
    /// `$top` maximum (real: 1000).
    pub max_top: usize,
}

/// Logs Ingestion: one DCR with its streams and their columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogsConfig {
    pub dcr_immutable_id: String,
    /// stream name → allowed column names.
    pub streams: BTreeMap<String, Vec<String>>,
    /// Request and decompressed body limit (real: 1 MB).
    pub max_body_bytes: usize,
}

/// Everything [`crate::Simulators::start`] needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimConfig {
    /// Home tenant: Sentinel workspace, managed identity.
    pub tenant_id: String,
    /// Defender tenants with a Graph data set (the token's `tid` picks one).
    pub defender_tenants: Vec<String>,
    pub apps: Vec<AppRegistration>,
    pub mi_client_id: String,
    pub mi_object_id: String,
    pub identity_header: String,
    /// Users present in every tenant's directory.
    pub users: Vec<DirectoryUser>,
    /// Groups present in every tenant's directory.
    #[serde(default = "default_groups")]
    pub groups: Vec<DirectoryGroup>,
    pub throttle: ThrottleConfig,
    pub graph: GraphConfig,
    pub arm: ArmConfig,
    pub logs: LogsConfig,
    /// Token lifetime in seconds.
    pub token_lifetime_secs: i64,
    /// Seed of the fault-injection random source.
    pub fault_seed: u64,
    /// The Azure cloud whose audiences Graph, ARM and Logs Ingestion accept (besides their own
    /// served origins).
    #[serde(default)]
    pub cloud: Cloud,
    /// Application permissions consented per app (client id, or the managed identity's), put
    /// in its tokens' `roles` claim as Entra does (what `check` reads). Not enforced by the
    /// APIs (use `Fault::Forbidden` for a refusal). Empty: tokens carry no `roles` claim.
    #[serde(default)]
    pub app_roles: std::collections::BTreeMap<String, Vec<String>>,
}

/// An Azure cloud, for its token audiences (Microsoft Learn: "National cloud deployments" for
/// Graph, "Azure Government developer guide" / "Azure China developer guide" for ARM, and the
/// Azure Monitor Ingestion clients' `LogsIngestionAudience`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Cloud {
    #[default]
    Public,
    UsGovernment,
    China,
}

impl Cloud {
    /// Graph's audiences in this cloud.
    pub fn graph_audiences(self) -> &'static [&'static str] {
        match self {
            Cloud::Public => &[
                "https://graph.microsoft.com",
                "00000003-0000-0000-c000-000000000000",
            ],
            Cloud::UsGovernment => &[
                "https://graph.microsoft.us",
                "https://dod-graph.microsoft.us",
                "00000003-0000-0000-c000-000000000000",
            ],
            Cloud::China => &[
                "https://microsoftgraph.chinacloudapi.cn",
                "00000003-0000-0000-c000-000000000000",
            ],
        }
    }

    /// ARM's audiences in this cloud.
    pub fn arm_audiences(self) -> &'static [&'static str] {
        match self {
            Cloud::Public => &[
                "https://management.azure.com",
                "https://management.core.windows.net",
            ],
            Cloud::UsGovernment => &[
                "https://management.usgovcloudapi.net",
                "https://management.core.usgovcloudapi.net",
            ],
            Cloud::China => &[
                "https://management.chinacloudapi.cn",
                "https://management.core.chinacloudapi.cn",
            ],
        }
    }

    /// The Logs Ingestion audience in this cloud.
    pub fn logs_audiences(self) -> &'static [&'static str] {
        match self {
            Cloud::Public => &["https://monitor.azure.com"],
            Cloud::UsGovernment => &["https://monitor.azure.us"],
            Cloud::China => &["https://monitor.azure.cn"],
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        use wellknown as w;
        let mut streams = BTreeMap::new();
        streams.insert(w::STREAM_NAME.to_owned(), Vec::new());
        Self {
            tenant_id: w::TENANT_ID.into(),
            defender_tenants: vec![w::TENANT_ID.into(), w::TENANT_ID_2.into()],
            apps: vec![AppRegistration {
                client_id: w::CLIENT_ID.into(),
                client_secret: w::CLIENT_SECRET.into(),
                object_id: w::CLIENT_OBJECT_ID.into(),
                tenants: vec![w::TENANT_ID.into(), w::TENANT_ID_2.into()],
            }],
            mi_client_id: w::MI_CLIENT_ID.into(),
            mi_object_id: w::MI_OBJECT_ID.into(),
            identity_header: w::IDENTITY_HEADER.into(),
            users: default_users(),
            groups: default_groups(),
            throttle: ThrottleConfig::real(),
            graph: GraphConfig::default(),
            arm: ArmConfig {
                subscription_id: w::SUBSCRIPTION_ID.into(),
                resource_group: w::RESOURCE_GROUP.into(),
                workspace_name: w::WORKSPACE_NAME.into(),
                workspace_id: w::WORKSPACE_ID.into(),
                default_top: 50,
                max_top: 1000,
            },
            logs: LogsConfig {
                dcr_immutable_id: w::DCR_IMMUTABLE_ID.into(),
                streams,
                max_body_bytes: 1024 * 1024,
            },
            token_lifetime_secs: 3599,
            fault_seed: 42,
            cloud: Cloud::Public,
            app_roles: Default::default(),
        }
    }
}

impl SimConfig {
    /// Declares the columns of a Logs Ingestion stream (an empty list accepts any column).
    pub fn with_stream(mut self, stream: &str, columns: &[&str]) -> Self {
        self.logs.streams.insert(
            stream.to_owned(),
            columns.iter().map(|c| (*c).to_owned()).collect(),
        );
        self
    }
}

fn default_groups() -> Vec<DirectoryGroup> {
    vec![DirectoryGroup {
        object_id: wellknown::SOC_GROUP_OBJECT_ID.into(),
        display_name: wellknown::SOC_GROUP_NAME.into(),
    }]
}

fn default_users() -> Vec<DirectoryUser> {
    let mk = |oid: &str, upn: &str, name: &str| DirectoryUser {
        object_id: oid.into(),
        user_principal_name: upn.into(),
        mail: Some(upn.into()),
        display_name: name.into(),
    };
    vec![
        mk(
            wellknown::ANALYST_OBJECT_ID,
            wellknown::ANALYST_UPN,
            "Sam Analyst",
        ),
        mk(
            "5d8e6f10-2a3b-4c5d-8e9f-0a1b2c3d4e5f",
            "kai.carter@contoso.com",
            "Kai Carter",
        ),
        mk(
            "6e9f7a21-3b4c-4d6e-9f0a-1b2c3d4e5f60",
            "dana.smith@contoso.com",
            "Dana Smith",
        ),
        mk(
            "7fa08b32-4c5d-4e7f-8a1b-2c3d4e5f6071",
            "lee.wong@contoso.com",
            "Lee Wong",
        ),
        mk(
            "80b19c43-5d6e-4f80-9b2c-3d4e5f607182",
            "admin@contoso.com",
            "SOC Admin",
        ),
    ]
}
