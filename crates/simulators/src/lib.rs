//! Faithful in-process simulators of Entra ID, Microsoft Graph security (Defender XDR),
//! Microsoft Sentinel (ARM) and the Azure Monitor Logs Ingestion API, built from
//! `docs/api-notes.md` and the documented payloads in `tests/fixtures/`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use dss_simulators::{Simulators, SimConfig};
//! let sims = Simulators::start(SimConfig::default()).await?;
//! sims.seed(dss_simulators::wellknown::TENANT_ID, 20, 7);
//! std::fs::write("/tmp/sim-ca.pem", sims.cert_pem())?;          // SSL_CERT_FILE for azure_identity
//! for (k, v) in sims.handler_env("/tmp/sim-ca.pem") { println!("{k}={v}"); }
//! sims.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Every service binds `127.0.0.1:0`. Graph, ARM and Logs check bearer tokens minted by the
//! simulated Entra ID (each API accepts its public audience or its own served origin), count
//! calls, throttle like the real services and inject faults on request. The control API
//! (Rust methods here, or HTTP on [`Urls::control`]) plays the analysts and inspects state.

// Handlers return `Result<_, Response>`, the axum idiom; boxing every error response buys nothing here.
#![allow(clippy::result_large_err)]

pub mod arm;
pub mod config;
pub mod control;
mod control_http;
pub mod counters;
pub mod entra;
pub mod faults;
mod gate;
pub mod generator;
pub mod graph;
mod locks;
pub mod logs;
pub mod odata;
mod server;
mod sims_data;
pub mod state;
mod throttle;
pub mod unified;
pub mod util;

pub use config::{
    AppRegistration, BucketSpec, Cloud, DirectoryGroup, DirectoryUser, GraphConfig, SimConfig,
    ThrottleConfig, wellknown,
};
pub use control::{ActionError, DefenderAction, SentinelAction};
pub use counters::{Counters, OpCount};
pub use entra::{BadToken, TokenSpec};
pub use faults::{Api, Fault, FaultPlan, FaultScope};
pub use state::Urls;
pub use unified::UnifiedConfig;

use axum::Router;
use faults::Faults;
use gate::Gate;
use state::{Directory, Shared, lock, read, write};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The running simulators. Dropping it stops the listeners too; [`Simulators::shutdown`] also
/// waits for them.
pub struct Simulators {
    shared: Arc<Shared>,
    urls: Urls,
    cert_pem: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn gated(router: Router, shared: &Arc<Shared>, api: Api) -> Router {
    let g = Gate {
        shared: shared.clone(),
        api,
    };
    router.layer(axum::middleware::from_fn_with_state(g, gate::gate))
}

impl Simulators {
    /// Starts every service on `127.0.0.1:0`.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<Self> {
        let key = tokio::task::spawn_blocking(entra::keys::generate_key).await??;
        let tls = tokio::task::spawn_blocking(entra::tls::generate).await??;
        let shared = Arc::new(Shared {
            graph_cfg: RwLock::new(cfg.graph.clone()),
            throttle_cfg: RwLock::new(cfg.throttle.clone()),
            keys: RwLock::new(vec![key]),
            verified_tokens: Mutex::default(),
            bad_tokens: Mutex::new(VecDeque::new()),
            graph: Mutex::default(),
            arm: Mutex::default(),
            logs: Mutex::default(),
            unified: Mutex::default(),
            directory: RwLock::new(Directory::new(cfg.users.clone(), cfg.groups.clone())),
            counters: Mutex::default(),
            faults: Mutex::new(Faults::new(cfg.fault_seed)),
            buckets: Mutex::default(),
            urls: OnceLock::new(),
            cfg,
        });
        let (stop, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut bind = async |router: Router,
                              tls: Option<tokio_rustls::TlsAcceptor>|
               -> anyhow::Result<String> {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let (addr, task) = server::spawn(router, tls, rx.clone()).await?;
            tasks.push(task);
            Ok(format!("{scheme}://{addr}"))
        };
        let graph = bind(
            gated(graph::router(shared.clone()), &shared, Api::Graph),
            None,
        )
        .await?;
        let arm = bind(gated(arm::router(shared.clone()), &shared, Api::Arm), None).await?;
        let logs = bind(
            gated(logs::router(shared.clone()), &shared, Api::Logs),
            None,
        )
        .await?;
        let msi = bind(
            gated(entra::msi_router(shared.clone()), &shared, Api::Entra),
            None,
        )
        .await?;
        let authority = bind(
            gated(entra::authority_router(shared.clone()), &shared, Api::Entra),
            Some(tls.acceptor),
        )
        .await?;
        let control = bind(control_http::router(shared.clone()), None).await?;
        let urls = Urls {
            graph,
            arm,
            logs,
            identity_endpoint: format!("{msi}/msi/token"),
            authority_host: authority,
            control,
        };
        let _ = shared.urls.set(urls.clone());
        tracing::info!(graph = %urls.graph, arm = %urls.arm, logs = %urls.logs, authority = %urls.authority_host, "simulators started");
        Ok(Self {
            shared,
            urls,
            cert_pem: tls.ca_pem,
            stop,
            tasks,
        })
    }

    /// Service URLs.
    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// PEM of the CA that signed the authority's certificate (write it to a file and point
    /// `SSL_CERT_FILE` at it, or add it as a root to a reqwest client).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The configuration the simulators run with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.cfg
    }

    /// Environment for the handler (the README's setting names), client-secret credential, all Defender
    /// tenants; `ca_file` is where the caller wrote [`Self::cert_pem`]. Storage settings are not
    /// included.
    pub fn handler_env(&self, ca_file: &str) -> Vec<(String, String)> {
        let c = &self.shared.cfg;
        let app = c.apps.first();
        let stream = c.logs.streams.keys().next().cloned().unwrap_or_default();
        let pairs = [
            ("AZURE_TENANT_ID", c.tenant_id.clone()),
            (
                "AZURE_CLIENT_ID",
                app.map(|a| a.client_id.clone()).unwrap_or_default(),
            ),
            (
                "AZURE_CLIENT_SECRET",
                app.map(|a| a.client_secret.clone()).unwrap_or_default(),
            ),
            ("AZURE_AUTHORITY_HOST", self.urls.authority_host.clone()),
            ("IDENTITY_ENDPOINT", self.urls.identity_endpoint.clone()),
            ("IDENTITY_HEADER", c.identity_header.clone()),
            ("DEFENDER_TENANT_IDS", c.defender_tenants.join(",")),
            ("GRAPH_ENDPOINT", self.urls.graph.clone()),
            ("ARM_ENDPOINT", self.urls.arm.clone()),
            ("SENTINEL_SUBSCRIPTION_ID", c.arm.subscription_id.clone()),
            ("SENTINEL_RESOURCE_GROUP", c.arm.resource_group.clone()),
            ("SENTINEL_WORKSPACE_NAME", c.arm.workspace_name.clone()),
            ("LOGS_INGESTION_ENDPOINT", self.urls.logs.clone()),
            ("LOGS_DCR_IMMUTABLE_ID", c.logs.dcr_immutable_id.clone()),
            ("LOGS_STREAM_NAME", stream),
            ("SSL_CERT_FILE", ca_file.to_owned()),
        ];
        let mut env: Vec<(String, String)> =
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        // A loopback ingestion endpoint names no cloud: outside the public one, say which.
        if c.cloud != Cloud::Public
            && let Some(audience) = c.cloud.logs_audiences().first()
        {
            env.push(("LOGS_INGESTION_AUDIENCE".into(), (*audience).to_owned()));
        }
        env
    }

    /// Stops every listener and open connection.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    // ---- knobs --------------------------------------------------------------------------

    /// Replaces the fault plan of one API (`FaultPlan::default()` clears it).
    pub fn set_faults(&self, api: Api, plan: FaultPlan) {
        lock(&self.shared.faults).set(api, plan);
    }

    /// Reseeds fault injection (replay).
    pub fn reseed_faults(&self, seed: u64) {
        lock(&self.shared.faults).reseed(seed);
    }

    /// Replaces the throttling limits and refills every bucket.
    pub fn set_throttle(&self, cfg: ThrottleConfig) {
        *write(&self.shared.throttle_cfg) = cfg;
        lock(&self.shared.buckets).clear();
    }

    /// Replaces the Graph quirks (e.g. turn on the `$expand=alerts` 500 fault).
    pub fn set_graph_config(&self, cfg: GraphConfig) {
        *write(&self.shared.graph_cfg) = cfg;
    }

    /// Turns the unified-platform mode on (`Some`) or off: from now on, ingested alert rows
    /// become platform alerts and incidents in the workspace tenant's Graph after the delay.
    pub fn set_unified(&self, cfg: Option<UnifiedConfig>) {
        write(&self.shared.graph_cfg).unified = cfg;
    }

    /// Applies the ingested rows whose delay has passed now (Graph requests do it too);
    /// returns how many platform alerts were raised.
    pub fn unified_materialize(&self) -> usize {
        unified::materialize(&self.shared)
    }

    /// The incident trigger body an automation rule's playbook posts for platform incident `id`
    /// of the workspace tenant (unified mode; `event` `"Create"` or `"Update"`).
    pub fn unified_trigger_body(&self, id: &str, event: &str) -> Option<serde_json::Value> {
        unified::trigger_body(&self.shared, id.parse().ok()?, event)
    }

    /// Unified mode with `simulated_clock`: moves the platform's clock on by `ms` and applies
    /// what became due; returns the platform time (ms).
    pub fn unified_advance(&self, ms: u64) -> u64 {
        unified::advance(&self.shared, ms)
    }

    /// The unified platform's time (ms): simulated, or real since the mode was first used.
    pub fn unified_now_ms(&self) -> u64 {
        unified::now_ms(&self.shared)
    }

    /// Ingested alert rows still waiting for the platform.
    pub fn unified_pending(&self) -> usize {
        lock(&self.shared.unified).pending()
    }

    /// Current Graph quirks.
    pub fn graph_config(&self) -> GraphConfig {
        read(&self.shared.graph_cfg).clone()
    }

    /// Mints a token (valid or bad) for direct use.
    pub fn mint_token(&self, spec: &TokenSpec) -> anyhow::Result<String> {
        entra::mint(&self.shared, spec)
    }

    /// A valid app token for `audience` in `tenant`, as the registered app.
    pub fn token_for(&self, audience: &str, tenant: &str) -> anyhow::Result<String> {
        let app = self
            .shared
            .cfg
            .apps
            .first()
            .ok_or_else(|| anyhow::anyhow!("no app registered"))?;
        let spec = TokenSpec {
            audience: audience.into(),
            tenant: tenant.into(),
            app_id: app.client_id.clone(),
            object_id: app.object_id.clone(),
            bad: None,
        };
        self.mint_token(&spec)
    }

    /// The next `count` tokens from the token and MSI endpoints are bad in this way.
    pub fn queue_bad_tokens(&self, kind: BadToken, count: usize) {
        lock(&self.shared.bad_tokens).extend(std::iter::repeat_n(kind, count));
    }

    /// Adds a signing key (new tokens use it); `retire_old` drops the others from the JWKS.
    /// Returns the new `kid`.
    pub fn rotate_keys(&self, retire_old: bool) -> anyhow::Result<String> {
        entra::rotate(&self.shared, retire_old)
    }
}
