//! The Azure Functions custom-handler protocol: the only code that knows the host
//! (`docs/host-protocol.md`). `GET /` answers the host's readiness poll;
//! every invocation is `POST /{FunctionName}` with the `{"Data","Metadata"}` envelope and is
//! answered 200 with `{"Outputs","Logs","ReturnValue"}`.

pub mod envelope;
mod functions;
mod memory;
pub use functions::FIGURES_PREFIX;
mod health;
pub mod payload;
pub mod plugins;

/// The function timeout and deadlines (parsed with the settings; re-exported for the host).
pub use crate::config::timeout;
use crate::config::{SentinelWorkspace, Settings};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use plugins::{Services, Setup};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::Instrument;

/// The function names of the README (folder names under `function-defs/`).
pub const FUNCTIONS: [&str; 3] = ["DefenderSync", "SentinelWebhook", "SyncHealth"];

/// The header carrying the host's invocation id.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// The host may POST up to 100 MB (its HTTP request limit); axum's default is 2 MB.
const BODY_LIMIT: usize = 100 * 1024 * 1024;

/// A `SentinelWebhook` envelope larger than this is not kept. The caller's body (at most 1 MiB
/// is accepted) is in it twice: as an escaped JSON string (`Data.req.Body`) and, for a JSON
/// object body, as its top-level properties in `Metadata`; this leaves room for both and for
/// escaping. The rest of a larger envelope is read and dropped, never buffered.
pub const WEBHOOK_ENVELOPE_LIMIT: usize = 4 * 1024 * 1024;

/// Envelopes up to this size are read without asking the budget below.
const SMALL_ENVELOPE: usize = 256 * 1024;

/// Memory all webhook envelopes larger than [`SMALL_ENVELOPE`] may hold at once, in KiB: such an
/// envelope takes its worst case ([`WEBHOOK_ENVELOPE_LIMIT`]) from it before it grows, so a flood
/// of large calls waits instead of growing the process (8 at a time).
const LARGE_ENVELOPE_BUDGET_KIB: usize = 8 * WEBHOOK_ENVELOPE_LIMIT / 1024;

/// Static facts about this handler, shown by SyncHealth (no secrets).
#[derive(Debug, Clone)]
pub struct HandlerInfo {
    pub version: &'static str,
    pub started_at: OffsetDateTime,
    pub tenants: Vec<String>,
    pub workspace: SentinelWorkspace,
    pub alert_ingestion: bool,
    /// `SENTINEL_TARGET`: `arm` or `unified`.
    pub sentinel_target: &'static str,
    pub function_timeout: Duration,
    pub schedule: Option<String>,
}

impl HandlerInfo {
    /// The facts of these settings, started now.
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            started_at: OffsetDateTime::now_utc(),
            tenants: s.defender_tenants.iter().map(|t| t.to_string()).collect(),
            workspace: s.workspace.clone(),
            alert_ingestion: s.logs.is_some(),
            sentinel_target: s.sentinel_target.as_str(),
            function_timeout: s.function_timeout,
            schedule: s.schedule.clone(),
        }
    }
}

/// The router's state: static facts plus the services the slow part of startup provides.
#[derive(Clone)]
pub struct HostState {
    info: Arc<HandlerInfo>,
    setup: watch::Receiver<Setup>,
    /// The memory budget of large webhook envelopes, in KiB.
    large_envelopes: Arc<tokio::sync::Semaphore>,
}

/// Completes startup: hands the built services (or the failure) to the router.
#[derive(Debug)]
pub struct SetupHandle(watch::Sender<Setup>);

impl SetupHandle {
    /// The services are ready.
    pub fn ready(&self, services: Services) {
        self.0.send_replace(Setup::Ready(Arc::new(services)));
    }

    /// Setup failed; invocations report `message`.
    pub fn failed(&self, message: impl Into<String>) {
        self.0.send_replace(Setup::Failed(message.into().into()));
    }
}

impl HostState {
    /// A state whose services arrive later through the returned handle.
    pub fn new(info: HandlerInfo) -> (Self, SetupHandle) {
        let (tx, rx) = watch::channel(Setup::Pending);
        (
            Self {
                info: Arc::new(info),
                setup: rx,
                large_envelopes: Arc::new(tokio::sync::Semaphore::new(LARGE_ENVELOPE_BUDGET_KIB)),
            },
            SetupHandle(tx),
        )
    }

    /// The services, waiting for setup until `deadline`.
    async fn services(&self, deadline: tokio::time::Instant) -> Result<Arc<Services>, String> {
        let mut rx = self.setup.clone();
        let wait = rx.wait_for(|s| !matches!(s, Setup::Pending));
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(s)) => match &*s {
                Setup::Ready(services) => Ok(services.clone()),
                Setup::Failed(m) => Err(format!("startup failed: {m}")),
                Setup::Pending => Err("startup has not finished".into()),
            },
            Ok(Err(_)) => Err("startup was abandoned".into()),
            Err(_) => Err("startup did not finish before the invocation's deadline".into()),
        }
    }
}

/// The handler's HTTP surface.
pub fn router(state: HostState) -> Router {
    Router::new()
        .route("/", get(readiness))
        .route("/{function}", post(invoke))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Bound of each connection's read buffer. hyper's default (about 400 KiB) is reached by every
/// connection that carries a large envelope and is then kept for the connection's life: with
/// the host's 50 connections, 20 MB that a flood of 5 MB calls left resident. Large envelopes
/// stream through in more, smaller reads instead.
const READ_BUFFER_MAX: usize = 64 * 1024;

/// Serves the handler's HTTP surface on `listener` (HTTP/1.1, as the host speaks) until the
/// process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: HostState) -> std::io::Result<()> {
    let app = router(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(READ_BUFFER_MAX);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Too many open files and the like: wait, as axum::serve does.
                tracing::warn!(error = %e, "Accepting a connection failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "A connection ended with an error.");
            }
        });
    }
}

/// The host polls `GET /` until any answer; it must come at once.
async fn readiness() -> &'static str {
    "defender-sentinel-sync"
}

async fn invoke(
    State(state): State<HostState>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let invocation_id = headers
        .get(INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span =
        tracing::info_span!("invocation", function = %function, invocation_id = %invocation_id);
    async move {
        let started = tokio::time::Instant::now();
        let timeout = state.info.function_timeout;
        let (limit, budget) = if function == "SentinelWebhook" {
            (WEBHOOK_ENVELOPE_LIMIT, Some(state.large_envelopes.clone()))
        } else {
            (BODY_LIMIT, None)
        };
        // `_permit` holds the envelope's share of the budget until the reply is sent.
        let read = read_bounded(body, limit, budget.clone()).await;
        let large = matches!(read, Bounded::Whole(_, Some(_)) | Bounded::TooLarge(_));
        // Declared before `_permit`, so dropped after it: the envelope's share is back first.
        let _give_back = budget.filter(|_| large).map(GiveBack);
        let (body, _permit) = match read {
            Bounded::Whole(b, permit) => (b, permit),
            Bounded::TooLarge(n) if function == "SentinelWebhook" => {
                return functions::webhook_too_large(n).into_response();
            }
            Bounded::TooLarge(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
            Bounded::Failed(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
        };
        let reply = match function.as_str() {
            "DefenderSync" => {
                functions::defender_sync(&state, &body, timeout::deadline(started, timeout)).await
            }
            "SentinelWebhook" => {
                functions::sentinel_webhook(&state, &body, timeout::http_deadline(started, timeout))
                    .await
            }
            "SyncHealth" => functions::sync_health(&state, &body).await,
            _ => return unknown_function(&function),
        };
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Invocation answered."
        );
        reply.into_response()
    }
    .instrument(span)
    .await
}

/// Made for a call that read a large envelope. On drop (after the reply, or the refusal): when
/// no large envelope is held any more, gives the memory back to the OS ([`memory::give_back`]).
struct GiveBack(Arc<tokio::sync::Semaphore>);

impl Drop for GiveBack {
    fn drop(&mut self) {
        if self.0.available_permits() == LARGE_ENVELOPE_BUDGET_KIB {
            memory::give_back();
        }
    }
}

/// A request body read with a bound.
enum Bounded {
    /// The body, with its share of the budget when it took one.
    Whole(bytes::Bytes, Option<tokio::sync::OwnedSemaphorePermit>),
    /// Over the bound: this many bytes were read (and dropped).
    TooLarge(usize),
    Failed(String),
}

/// Reads `body` as it streams in, keeping at most `limit` bytes; the whole envelope is never
/// buffered. With a `budget` (KiB), a body growing past [`SMALL_ENVELOPE`] first takes `limit`
/// from it, all at once (so no reader holds part of the budget while waiting for more), and its
/// buffer is then allocated once at `limit` (no doubling past the budget's figure). Past the
/// bound the kept bytes and the budget are given back at once and the rest is read and
/// dropped a chunk at a time, up to the host's own limit, where reading stops: the host sends
/// the envelope chunked and reads the answer only after the last chunk, so answering before
/// the body is read would make hyper close the connection with unread bytes, which resets it
/// and loses the 413 (the host would fail the invocation with a 500).
async fn read_bounded(
    body: axum::body::Body,
    limit: usize,
    budget: Option<Arc<tokio::sync::Semaphore>>,
) -> Bounded {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    let mut permit = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return Bounded::Failed(format!("cannot read the request body: {e}")),
        };
        seen = seen.saturating_add(chunk.len());
        if seen > BODY_LIMIT {
            return Bounded::TooLarge(seen);
        }
        if seen > limit {
            if kept.capacity() > 0 {
                kept = bytes::BytesMut::new();
                permit = None;
            }
            continue;
        }
        if seen > SMALL_ENVELOPE
            && permit.is_none()
            && let Some(b) = &budget
        {
            let kib = u32::try_from(limit.div_ceil(1024)).unwrap_or(u32::MAX);
            permit = b.clone().acquire_many_owned(kib).await.ok();
            let mut whole = bytes::BytesMut::with_capacity(limit);
            whole.extend_from_slice(&kept);
            kept = whole;
        }
        kept.extend_from_slice(&chunk);
    }
    if seen > limit {
        Bounded::TooLarge(seen)
    } else {
        Bounded::Whole(kept.freeze(), permit)
    }
}

/// The host never calls a function it does not know; a caller that does gets a JSON 404.
fn unknown_function(name: &str) -> Response {
    tracing::warn!(function = %name, "Unknown function called.");
    let body = serde_json::json!({ "error": format!("unknown function '{name}'"), "function": name, "functions": FUNCTIONS });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
