//! Faithful in-process simulators of Entra ID, Microsoft Graph security (Defender XDR),
//! Microsoft Sentinel (ARM) and the Azure Monitor Logs Ingestion API, built from
//! `shared/docs/api-contracts.md` and the real payloads in `shared/fixtures/`.
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
pub mod logs;
pub mod odata;
mod server;
pub mod state;
mod throttle;
pub mod util;

pub use config::{AppRegistration, BucketSpec, DirectoryUser, GraphConfig, SimConfig, ThrottleConfig, wellknown};
pub use control::{ActionError, DefenderAction, SentinelAction};
pub use counters::{Counters, OpCount};
pub use entra::{BadToken, TokenSpec};
pub use faults::{Api, Fault, FaultPlan, FaultScope};
pub use state::Urls;

use axum::Router;
use faults::Faults;
use gate::Gate;
use serde_json::Value;
use state::{Directory, Shared, lock, read, write};
use std::collections::{BTreeMap, VecDeque};
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
    let g = Gate { shared: shared.clone(), api };
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
            bad_tokens: Mutex::new(VecDeque::new()),
            graph: Mutex::default(),
            arm: Mutex::default(),
            logs: Mutex::default(),
            directory: RwLock::new(Directory::new(cfg.users.clone())),
            counters: Mutex::default(),
            faults: Mutex::new(Faults::new(cfg.fault_seed)),
            buckets: Mutex::default(),
            urls: OnceLock::new(),
            cfg,
        });
        let (stop, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut bind = async |router: Router, tls: Option<tokio_rustls::TlsAcceptor>| -> anyhow::Result<String> {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let (addr, task) = server::spawn(router, tls, rx.clone()).await?;
            tasks.push(task);
            Ok(format!("{scheme}://{addr}"))
        };
        let graph = bind(gated(graph::router(shared.clone()), &shared, Api::Graph), None).await?;
        let arm = bind(gated(arm::router(shared.clone()), &shared, Api::Arm), None).await?;
        let logs = bind(gated(logs::router(shared.clone()), &shared, Api::Logs), None).await?;
        let msi = bind(gated(entra::msi_router(shared.clone()), &shared, Api::Entra), None).await?;
        let authority = bind(gated(entra::authority_router(shared.clone()), &shared, Api::Entra), Some(tls.acceptor)).await?;
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
        Ok(Self { shared, urls, cert_pem: tls.ca_pem, stop, tasks })
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

    /// Environment for the handler (contract.md names), client-secret credential, all Defender
    /// tenants; `ca_file` is where the caller wrote [`Self::cert_pem`]. Storage settings are not
    /// included.
    pub fn handler_env(&self, ca_file: &str) -> Vec<(String, String)> {
        let c = &self.shared.cfg;
        let app = c.apps.first();
        let stream = c.logs.streams.keys().next().cloned().unwrap_or_default();
        let pairs = [
            ("AZURE_TENANT_ID", c.tenant_id.clone()),
            ("AZURE_CLIENT_ID", app.map(|a| a.client_id.clone()).unwrap_or_default()),
            ("AZURE_CLIENT_SECRET", app.map(|a| a.client_secret.clone()).unwrap_or_default()),
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
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// Stops every listener and open connection.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    // ---- data -------------------------------------------------------------------------

    /// Adds `n` generated incidents (seeded) to a Defender tenant; returns their ids.
    pub fn seed(&self, tenant: &str, n: usize, seed: u64) -> Vec<String> {
        self.seed_capped(tenant, n, seed, 200)
    }

    /// As [`Self::seed`] with at most `max_alerts` alerts per incident (benchmarks).
    pub fn seed_capped(&self, tenant: &str, n: usize, seed: u64, max_alerts: usize) -> Vec<String> {
        let mut g = lock(&self.shared.graph);
        let first = g.allocate_id();
        let incidents = generator::incidents_capped(n, seed, tenant, first, util::now(), max_alerts);
        incidents
            .into_iter()
            .filter_map(graph::store::GraphIncident::from_json)
            .map(|i| g.upsert(tenant, i).to_string())
            .collect()
    }

    /// Inserts (or replaces) one Graph incident given as Graph JSON (alerts included or not).
    pub fn insert_defender_incident(&self, tenant: &str, incident: Value) -> Result<String, ActionError> {
        let inc = graph::store::GraphIncident::from_json(incident).ok_or_else(|| ActionError::Invalid("incident needs a numeric string id".into()))?;
        Ok(lock(&self.shared.graph).upsert(tenant, inc).to_string())
    }

    /// Loads a Graph list response (`{"value": [...]}`, e.g. the fixture) into a tenant.
    pub fn load_graph_list(&self, tenant: &str, list: &Value) -> Result<Vec<String>, ActionError> {
        let items = list.get("value").and_then(Value::as_array).ok_or_else(|| ActionError::Invalid("no value array".into()))?;
        items.iter().map(|i| self.insert_defender_incident(tenant, i.clone())).collect()
    }

    /// Stores a Sentinel incident given as an ARM resource (e.g. the get fixture) as it is.
    pub fn insert_sentinel_incident(&self, resource: &Value) -> Result<String, ActionError> {
        let name = resource.get("name").and_then(Value::as_str).ok_or_else(|| ActionError::Invalid("no name".into()))?;
        let props = resource.get("properties").and_then(Value::as_object).cloned().ok_or_else(|| ActionError::Invalid("no properties".into()))?;
        let base = arm::incidents_base(&self.shared);
        let mut arm = lock(&self.shared.arm);
        let writable = props.iter().filter(|(k, _)| arm::store::WRITABLE.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        arm.write(name, writable, &base);
        if let Some(inc) = arm.get_mut(name) {
            for (k, v) in props {
                inc.props.insert(k, v);
            }
            if let Some(e) = resource.get("etag").and_then(Value::as_str) {
                inc.etag = e.to_owned();
            }
        }
        Ok(name.to_owned())
    }

    /// Adds a user to the directory.
    pub fn add_user(&self, user: DirectoryUser) {
        write(&self.shared.directory).add(user);
    }

    // ---- analyst actions ----------------------------------------------------------------

    /// A Defender-side analyst action; returns the incident as Graph JSON with alerts.
    pub fn defender_action(&self, tenant: &str, id: &str, action: DefenderAction) -> Result<Value, ActionError> {
        control::defender(&self.shared, tenant, id, action)
    }

    /// A Sentinel-side analyst action; returns the playbook trigger body of this update.
    pub fn sentinel_action(&self, name: &str, action: SentinelAction) -> Result<Value, ActionError> {
        control::sentinel(&self.shared, name, action)
    }

    /// The playbook trigger body for an incident as it is now (`event`: `"Create"`/`"Update"`).
    pub fn trigger_body(&self, name: &str, updated_fields: &[&str], event: &str) -> Result<Value, ActionError> {
        control::trigger_body(&self.shared, name, updated_fields, event)
    }

    // ---- inspection ---------------------------------------------------------------------

    /// Every incident of a Defender tenant as Graph JSON with alerts, by id.
    pub fn defender_incidents(&self, tenant: &str) -> Vec<Value> {
        lock(&self.shared.graph).list(tenant).map(graph::store::GraphIncident::to_json).collect()
    }

    /// One Defender incident as Graph JSON with alerts.
    pub fn defender_incident(&self, tenant: &str, id: &str) -> Option<Value> {
        let id = id.parse().ok()?;
        lock(&self.shared.graph).get(tenant, id).map(graph::store::GraphIncident::to_json)
    }

    /// Every Sentinel incident as ARM resources, sorted by incident number.
    pub fn sentinel_incidents(&self) -> Vec<Value> {
        let base = arm::incidents_base(&self.shared);
        let arm = lock(&self.shared.arm);
        let mut v: Vec<&arm::store::SentinelIncident> = arm.incidents.values().collect();
        v.sort_by_key(|i| i.props.get("incidentNumber").and_then(Value::as_u64));
        v.into_iter().map(|i| i.render(&base)).collect()
    }

    /// One Sentinel incident as an ARM resource.
    pub fn sentinel_incident(&self, name: &str) -> Option<Value> {
        let base = arm::incidents_base(&self.shared);
        lock(&self.shared.arm).get(name).map(|i| i.render(&base))
    }

    /// Comments of a Sentinel incident as ARM resources, oldest first.
    pub fn sentinel_comments(&self, name: &str) -> Vec<Value> {
        let url = format!("{}/{name}", arm::incidents_base(&self.shared));
        let arm = lock(&self.shared.arm);
        let Some(inc) = arm.get(name) else { return Vec::new() };
        let mut v: Vec<&arm::store::SentinelComment> = inc.comments.values().collect();
        v.sort_by_key(|c| c.created);
        v.into_iter().map(|c| c.render(&url)).collect()
    }

    /// Rows received on a Logs Ingestion stream.
    pub fn ingested_rows(&self, stream: &str) -> Vec<Value> {
        lock(&self.shared.logs).rows.get(stream).cloned().unwrap_or_default()
    }

    /// Accepted uploads per stream.
    pub fn ingestion_uploads(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.logs).uploads.clone()
    }

    /// Call counters per API and operation.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.counters).clone()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        *lock(&self.shared.counters) = Counters::default();
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
        let app = self.shared.cfg.apps.first().ok_or_else(|| anyhow::anyhow!("no app registered"))?;
        let spec = TokenSpec { audience: audience.into(), tenant: tenant.into(), app_id: app.client_id.clone(), object_id: app.object_id.clone(), bad: None };
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
