//! The whole system on this machine, for end-to-end tests: the simulators (in this process),
//! a real Azurite for the state, and the built handler driven by the fake Functions host.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::azurite::Azurite;
use defender_sentinel_sync::demo::setup::{handler_spec, sim_config};
use dss_fake_host::{FakeHost, HandlerSpec, HttpCall, HttpResponse, Reply, TimerCall};
use dss_simulators::{Simulators, wellknown};
use serde_json::Value;
use std::collections::BTreeMap;

/// How to set the world up.
#[derive(Debug, Default, Clone)]
pub struct WorldOptions {
    /// Extra or overriding handler settings.
    pub env: Vec<(String, String)>,
    /// Settings to remove from the simulators' defaults (e.g. the Logs Ingestion ones).
    pub unset: Vec<String>,
    /// The Azure cloud the simulators play (token audiences); `None` = public.
    pub cloud: Option<dss_simulators::Cloud>,
    /// A workspace tenant (`AZURE_TENANT_ID`) other than the Defender tenants (the unified
    /// target: customers' tenants are the sources, the workspace's holds the platform's incidents).
    pub workspace_tenant: Option<String>,
    /// How Azurite runs; `None` = in memory (a restart loses the state).
    pub azurite: Option<super::azurite::Options>,
}

/// A running system. Dropping it stops the handler and Azurite.
pub struct World {
    pub sims: Simulators,
    pub host: FakeHost,
    pub azurite: Azurite,
    pub app: tempfile::TempDir,
    pub dir: tempfile::TempDir,
    /// The handler's whole environment (for the `sync` subcommand or a second handler).
    pub env: BTreeMap<String, String>,
    /// The options Azurite was started with (for a restart).
    pub azurite_opts: super::azurite::Options,
}

impl World {
    /// Default settings: client secret of the multi-tenant app, both simulated Defender tenants,
    /// Logs Ingestion on, state in Azurite, webhook auth off.
    pub async fn start() -> Self {
        Self::start_with(WorldOptions::default()).await
    }

    pub async fn start_with(opts: WorldOptions) -> Self {
        let mut cfg = sim_config();
        if let Some(cloud) = opts.cloud {
            cfg.cloud = cloud;
        }
        if let Some(ws) = &opts.workspace_tenant {
            cfg.tenant_id = ws.clone();
            for app in &mut cfg.apps {
                app.tenants.push(ws.clone());
            }
        }
        let sims = Simulators::start(cfg).await.expect("simulators start");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("sim-ca.pem");
        std::fs::write(&ca, sims.cert_pem()).unwrap();
        let azurite_opts = opts.azurite.clone().unwrap_or_default();
        let azurite = Azurite::start_with(&azurite_opts);
        let app = super::staged_app();
        let storage = ("AzureWebJobsStorage", azurite.connection_string());
        let mut spec = handler_spec(super::handler_bin(), app.path(), &sims, &ca, storage);
        for k in &opts.unset {
            spec.env.remove(k);
        }
        for (k, v) in opts.env {
            spec.env.insert(k, v);
        }
        let env = spec.env.clone();
        let host = FakeHost::start(spec).await.expect("handler starts");
        World {
            sims,
            host,
            azurite,
            app,
            dir,
            env,
            azurite_opts,
        }
    }

    /// Restarts Azurite on the same port (graceful stop, then start): with a `location` and
    /// `all_services` the state survives, and the handler's connection string stays valid.
    pub fn restart_azurite(&mut self) {
        self.azurite
            .0
            .restart(&super::repo(), &self.azurite_opts)
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Another handler on the same simulators and Azurite, with settings changed (e.g. another
    /// `SYNC_STATE_TABLE`: a handler whose state was lost).
    pub async fn another_handler(&self, env: &[(&str, &str)]) -> FakeHost {
        let mut spec = HandlerSpec::new(super::handler_bin(), self.app.path(), self.app.path());
        spec.clear_env = true;
        spec.env = self.env.clone();
        for (k, v) in env {
            spec.env.insert((*k).to_owned(), (*v).to_owned());
        }
        FakeHost::start(spec).await.expect("second handler starts")
    }

    /// The `SyncHealth` JSON.
    pub async fn health(&self) -> Value {
        let res = self
            .host
            .invoke_http("SyncHealth", &HttpCall::new("GET"))
            .await
            .expect("a valid reply");
        assert_eq!(res.status, 200, "{}", res.body);
        serde_json::from_str(&res.body).expect("SyncHealth answers JSON")
    }

    /// POSTs a playbook body to `SentinelWebhook` as the host does.
    pub async fn webhook(&self, body: &str) -> HttpResponse {
        let call = HttpCall::new("POST")
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        self.host
            .invoke_http("SentinelWebhook", &call)
            .await
            .expect("a valid reply")
    }

    /// Writes (PUTs) to ARM counted by the simulator since its last counter reset.
    pub fn arm_writes(&self) -> u64 {
        let c = self.sims.counters();
        c.by_api
            .get("arm")
            .map(|ops| {
                ops.iter()
                    .filter(|(op, _)| !op.starts_with("GET "))
                    .map(|(_, n)| n.calls)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// One `DefenderSync` invocation, as the timer fires it.
    pub async fn sync(&self) -> Reply {
        self.host
            .invoke_timer("DefenderSync", &TimerCall::default())
            .await
            .expect("a valid reply")
    }

    /// One invocation that must complete.
    pub async fn sync_ok(&self) -> Reply {
        let reply = self.sync().await;
        assert_eq!(
            reply.return_value["completed"],
            Value::Bool(true),
            "cycle did not complete: {:?}",
            reply.logs
        );
        reply
    }
}

// ---- helpers for the robustness tests (e2e_faults) -------------------------------------------

impl World {
    /// The state store the handler writes (same Azurite account, default table), for checks.
    pub async fn state(&self) -> defender_sentinel_sync::state::table::TableStateStore {
        use defender_sentinel_sync::adapters::table::TableClientOptions;
        use defender_sentinel_sync::config::StorageConfig;
        use defender_sentinel_sync::domain::TenantId;
        let cfg =
            StorageConfig::parse_connection_string(&self.azurite.connection_string()).unwrap();
        let tokens = std::sync::Arc::new(super::NoTokens);
        defender_sentinel_sync::state::table::TableStateStore::connect(
            &cfg,
            "DefenderSentinelSync",
            tokens,
            TenantId::parse(wellknown::TENANT_ID).unwrap(),
            TableClientOptions::default(),
        )
        .unwrap()
    }

    /// Starts a `DefenderSync` invocation without waiting for it (to kill the handler while it
    /// runs). The task ends with the HTTP status, or an error when the handler died.
    pub fn spawn_sync(&self) -> tokio::task::JoinHandle<Result<u16, reqwest::Error>> {
        let port = self.host.port().expect("handler running");
        let envelope = self
            .host
            .timer_envelope("DefenderSync", &TimerCall::default())
            .unwrap();
        tokio::spawn(async move {
            let resp = reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/DefenderSync"))
                .header("Content-Type", "application/json")
                .header(
                    "X-Azure-Functions-InvocationId",
                    uuid::Uuid::new_v4().to_string(),
                )
                .body(envelope.to_string())
                .send()
                .await?;
            Ok(resp.status().as_u16())
        })
    }
}
