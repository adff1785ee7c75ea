//! Building and running the handler. `serve` binds first and answers the host's readiness poll
//! at once; everything slow (credentials, state store, engine) is built afterwards and handed
//! to the router through a [`SetupHandle`].

use crate::adapters::graph::GraphClient;
use crate::adapters::logs::LogsClient;
use crate::adapters::sentinel::SentinelClient;
use crate::adapters::unified::UnifiedClient;
use crate::config::SentinelTarget;
use crate::config::{Settings, WebhookAuth};
use crate::credentials::{AzureTokenSource, TokenSource};
use crate::host::plugins::Services;
use crate::host::{HandlerInfo, HostState, SetupHandle};
use crate::runner::EngineRunner;
use crate::state::StateStore;
use crate::state::memory::MemoryStateStore;
use crate::state::table::TableStateStore;
use crate::sync::{ForwardOptions, ForwardSync, MergePolicy, ReverseOptions};
use anyhow::Context;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The Tokio runtime of every subcommand (two workers: a Functions instance has few cores).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// A bound, not yet serving handler.
pub struct App {
    listener: tokio::net::TcpListener,
    state: HostState,
    setup: SetupHandle,
    settings: Settings,
}

impl App {
    /// Binds `127.0.0.1:port` (the host calls IPv4 loopback only); `0` picks a free port.
    pub async fn bind(settings: Settings, port: u16) -> anyhow::Result<App> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let (state, setup) = HostState::new(HandlerInfo::from_settings(&settings));
        Ok(App {
            listener,
            state,
            setup,
            settings,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until the process ends, building the services with [`build_services`].
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_with(build_services).await
    }

    /// Serves, building the services with `build` once the listener answers.
    pub async fn run_with<F, Fut>(self, build: F) -> anyhow::Result<()>
    where
        F: FnOnce(Settings) -> Fut,
        Fut: Future<Output = anyhow::Result<Services>>,
    {
        let App {
            listener,
            state,
            setup,
            settings,
        } = self;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let server = tokio::spawn(crate::host::serve(listener, state));
        tracing::info!(port, "Listening.");
        announce(&settings);
        match build(settings).await {
            Ok(services) => {
                tracing::info!(?services, "Startup complete.");
                setup.ready(services);
            }
            Err(e) => {
                tracing::error!(error.cause_chain = ?e, error.message = %e, "Startup failed; invocations will report it.");
                setup.failed(format!("{e:#}"));
            }
        }
        server
            .await
            .context("the server task failed")?
            .context("the server stopped")
    }
}

/// Says once what the settings switch off or weaken.
fn announce(settings: &Settings) {
    if settings.logs.is_none() {
        tracing::info!(
            "Alert ingestion is off (LOGS_INGESTION_ENDPOINT and LOGS_DCR_IMMUTABLE_ID are unset)."
        );
    }
    if matches!(settings.webhook_auth, WebhookAuth::Disabled) {
        tracing::warn!(
            "WEBHOOK_AUTH=none: SentinelWebhook callers are NOT authenticated. Local development only!"
        );
    }
    if settings.storage.is_none() {
        tracing::warn!(
            "SYNC_STATE_STORE=memory: sync state is kept in process memory and lost on restart."
        );
    }
    if settings.limits != crate::config::ClientLimits::default() {
        tracing::warn!(
            "SYNC_BENCH_UNLIMITED=true: client-side rate limits are off (benchmarks against simulators only)."
        );
    }
}

/// The services: credential, state store (Table Storage, or memory when configured so),
/// the upstream adapters and the sync engine (forward cycles, then the Sentinel poll of
/// reverse sync).
pub async fn build_services(settings: Settings) -> anyhow::Result<Services> {
    let runner = Arc::new(build_engine(&settings).await?);
    if settings.startup_check {
        // The permission self-check (`check`), once, in the background; logged.
        let settings = settings.clone();
        tokio::spawn(async move {
            match crate::check::run(&settings).await {
                Ok(report) => crate::check::log(&report),
                Err(e) => tracing::warn!(error = %e, message = "Self-check could not run."),
            }
        });
    }
    let store = Some(runner.sync.state());
    let webhook = build_webhook(&settings, &runner)?;
    Ok(Services {
        sync: Some(runner),
        webhook: Some(Arc::new(webhook)),
        store,
    })
}

/// SentinelWebhook on the engine's ports (same clients, budgets and state store).
pub fn build_webhook(
    settings: &Settings,
    runner: &EngineRunner,
) -> anyhow::Result<crate::webhook::WebhookService> {
    use crate::webhook::{Authenticator, WebhookPorts, WebhookService};
    let client = crate::adapters::http::build_client(std::time::Duration::from_secs(10))
        .context("cannot build the HTTP client for the authority's signing keys")?;
    let ports = WebhookPorts {
        defender: runner.graph.clone(),
        sentinel: runner.sentinel_side.clone(),
        store: runner.sync.state(),
    };
    let policy = MergePolicy {
        conflict: settings.conflict_policy.clone(),
        severity_to_defender: settings.severity_to_defender,
    };
    let service = WebhookService::new(
        ports,
        policy,
        settings.defender_tenants.clone(),
        settings.workspace.clone(),
        Authenticator::from_settings(settings, client),
    );
    Ok(match &runner.unified {
        Some(u) => service.with_unified(u.clone()),
        None => service,
    })
}

/// The 429s met so far by the Graph, ARM and Logs clients together.
fn throttle_probe(
    graph: &Arc<GraphClient>,
    sentinel: &Arc<SentinelClient>,
    logs: Option<&Arc<LogsClient>>,
) -> crate::sync::ThrottleProbe {
    let (graph, sentinel, logs) = (graph.clone(), sentinel.clone(), logs.cloned());
    Arc::new(move || {
        graph.counts().throttled
            + sentinel.counts().throttled
            + logs.as_ref().map_or(0, |l| l.counts().throttled)
    })
}

/// Everything a forward cycle needs, built from the settings (also used by `sync`).
pub async fn build_engine(settings: &Settings) -> anyhow::Result<EngineRunner> {
    let tokens: Arc<dyn TokenSource> = Arc::new(
        AzureTokenSource::new(
            &settings.credential,
            &settings.azure_tenant_id,
            &settings.authority_host,
        )
        .context("cannot build the Entra ID credential")?,
    );
    let store: Arc<dyn StateStore> = match &settings.storage {
        None => Arc::new(MemoryStateStore::default()),
        Some(_) => Arc::new(
            TableStateStore::from_settings(settings, tokens.clone())
                .context("cannot reach the state table")?,
        ),
    };
    store
        .ensure_ready()
        .await
        .context("cannot prepare the state table")?;
    let graph = Arc::new(
        GraphClient::from_settings(settings, tokens.clone(), settings.call_timeout)
            .context("cannot build the Graph client")?,
    );
    let sentinel = Arc::new(
        SentinelClient::from_settings(settings, tokens.clone(), settings.call_timeout)
            .context("cannot build the Sentinel client")?,
    );
    let logs = LogsClient::from_settings(settings, tokens, settings.call_timeout)
        .context("cannot build the Logs Ingestion client")?
        .map(Arc::new);
    let policy = MergePolicy {
        conflict: settings.conflict_policy.clone(),
        severity_to_defender: settings.severity_to_defender,
    };
    let unified = match settings.sentinel_target {
        SentinelTarget::Arm => None,
        SentinelTarget::Unified => Some(Arc::new(UnifiedClient::new(
            graph.clone(),
            settings.azure_tenant_id.clone(),
        ))),
    };
    let sentinel_side: Arc<dyn crate::ports::SentinelApi> = match &unified {
        None => sentinel.clone(),
        Some(u) => u.clone(),
    };
    tracing::info!(
        message = "Sentinel side chosen.",
        target = settings.sentinel_target.as_str()
    );
    let sync = ForwardSync::new(
        graph.clone(),
        sentinel_side.clone(),
        logs.clone().map(|l| l as Arc<dyn crate::ports::LogsIngest>),
        store,
        settings.defender_tenants.clone(),
        policy,
        ForwardOptions {
            lookback: settings.lookback,
            park_backoff: settings.retry_backoff,
            ..ForwardOptions::default()
        },
        settings.limits.clone(),
    )
    .with_throttle_probe(throttle_probe(&graph, &sentinel, logs.as_ref()))
    .with_reverse_poll(ReverseOptions {
        lookback: settings.lookback,
        park_backoff: settings.retry_backoff,
        ..ReverseOptions::default()
    });
    Ok(EngineRunner {
        sync,
        graph,
        sentinel,
        logs,
        sentinel_side,
        unified,
    })
}
