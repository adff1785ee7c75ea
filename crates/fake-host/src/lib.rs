//! A fake Azure Functions host for tests and the demo: it starts a custom handler the way the
//! real host does (free port in `FUNCTIONS_CUSTOMHANDLER_PORT`, working directory = app root,
//! polls `GET /` every 25 ms), posts invocation envelopes exactly as the host does (chunked,
//! `application/json; charset=utf-8`, `X-Azure-Functions-InvocationId`), validates replies as
//! strictly as the host parses them, and can SIGKILL and restart the handler (what the host
//! does on `functionTimeout`). See `docs/host-protocol.md`.
//!
//! The real host cannot run here (Core Tools downloads it from a CDN), hence this crate.

pub mod azurite;
pub mod bench_proc;
pub mod defs;
pub mod envelope;
mod process;
pub mod reply;

pub use defs::{FunctionDef, stage_app_root};
pub use envelope::{FirstRun, HttpCall, QueryForm, TimerCall};
pub use process::Output;
pub use reply::{HttpResponse, Reply};

use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The host version the fake host claims in its headers.
pub const HOST_VERSION: &str = "4.1040.300.25317";

/// What went wrong, from the host's point of view.
#[derive(Debug, thiserror::Error)]
pub enum FakeHostError {
    #[error("cannot start the handler: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("the handler exited ({status}) before answering GET /; stderr:\n{stderr}")]
    Exited { status: String, stderr: String },
    #[error("the handler did not answer GET / within {0:?}")]
    NotReady(Duration),
    #[error("HTTP transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("the invocation failed: handler answered {status}: {body}")]
    InvocationFailed { status: u16, body: String },
    #[error("invalid reply: {0}")]
    InvalidReply(String),
    #[error("function definitions: {0}")]
    Definition(String),
    #[error("the handler is not running")]
    NotRunning,
    #[error("no reply within functionTimeout ({0:?}): the handler was killed and restarted")]
    TimedOut(Duration),
}

/// How to start the handler.
#[derive(Debug, Clone)]
pub struct HandlerSpec {
    /// The executable (for a packaged app: what `host.json` names).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Working directory = the app root (`host.json` is read from here).
    pub app_root: PathBuf,
    /// Where the `<Name>/function.json` folders are (the app root in a package).
    pub functions_dir: PathBuf,
    /// App settings given to the handler (on top of the inherited environment unless
    /// `clear_env`).
    pub env: BTreeMap<String, String>,
    pub clear_env: bool,
    /// How long to poll `GET /` (the host's `initializationTimeout`, 30 s).
    pub ready_timeout: Duration,
    /// HTTP timeout of one invocation (the host uses functionTimeout + 1 min).
    pub invocation_timeout: Duration,
}

impl HandlerSpec {
    /// Starts `program` in `app_root`, reading functions from `functions_dir`.
    pub fn new(
        program: impl Into<PathBuf>,
        app_root: impl Into<PathBuf>,
        functions_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            app_root: app_root.into(),
            functions_dir: functions_dir.into(),
            env: BTreeMap::new(),
            clear_env: false,
            ready_timeout: Duration::from_secs(30),
            invocation_timeout: Duration::from_secs(90),
        }
    }

    /// A packaged app folder: the executable and arguments come from its `host.json`.
    pub fn from_app_root(app_root: impl Into<PathBuf>) -> Result<Self, FakeHostError> {
        let root = app_root.into();
        let (program, args) = defs::executable_from_host_json(&root)?;
        let mut spec = Self::new(program, root.clone(), root);
        spec.args = args;
        Ok(spec)
    }

    /// Adds an app setting.
    pub fn setting(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.to_owned(), v.to_owned());
        self
    }
}

/// A running handler driven like the Functions host drives it.
pub struct FakeHost {
    spec: HandlerSpec,
    functions: BTreeMap<String, FunctionDef>,
    handler: Option<process::Handler>,
    client: reqwest::Client,
}

impl FakeHost {
    /// Starts the handler and waits until it answers `GET /`.
    pub async fn start(spec: HandlerSpec) -> Result<Self, FakeHostError> {
        let functions = defs::load_functions(&spec.functions_dir)?;
        let client = reqwest::Client::builder()
            .timeout(spec.invocation_timeout)
            .build()?;
        let mut host = Self {
            spec,
            functions,
            handler: None,
            client,
        };
        host.launch().await?;
        Ok(host)
    }

    async fn launch(&mut self) -> Result<(), FakeHostError> {
        let handler = process::Handler::spawn(&self.spec)?;
        let handler = handler
            .wait_ready(&self.client, self.spec.ready_timeout)
            .await?;
        self.handler = Some(handler);
        Ok(())
    }

    fn running(&self) -> Result<&process::Handler, FakeHostError> {
        self.handler.as_ref().ok_or(FakeHostError::NotRunning)
    }

    /// The handler's port.
    pub fn port(&self) -> Option<u16> {
        self.handler.as_ref().map(|h| h.port)
    }

    /// The handler's process id.
    pub fn pid(&self) -> Option<u32> {
        self.handler.as_ref().and_then(|h| h.pid())
    }

    /// Everything the handler wrote so far (stdout and stderr lines).
    pub fn output(&self) -> Output {
        self.handler
            .as_ref()
            .map(|h| h.output.snapshot())
            .unwrap_or_default()
    }

    /// The function definitions read from `function.json`.
    pub fn functions(&self) -> &BTreeMap<String, FunctionDef> {
        &self.functions
    }

    fn def(&self, function: &str) -> Result<&FunctionDef, FakeHostError> {
        self.functions
            .get(function)
            .ok_or_else(|| FakeHostError::Definition(format!("no function named {function}")))
    }

    /// Fires a timer function.
    pub async fn invoke_timer(
        &self,
        function: &str,
        call: &TimerCall,
    ) -> Result<Reply, FakeHostError> {
        let def = self.def(function)?;
        if def.trigger_type != "timerTrigger" {
            return Err(FakeHostError::Definition(format!(
                "{function} is not timer-triggered"
            )));
        }
        let envelope = envelope::timer_envelope(function, &def.trigger_name, call);
        self.invoke(function, &envelope).await
    }

    /// Calls an HTTP function as a caller would; returns what the caller receives.
    pub async fn invoke_http(
        &self,
        function: &str,
        call: &HttpCall,
    ) -> Result<HttpResponse, FakeHostError> {
        let def = self.def(function)?;
        if !def.is_http() {
            return Err(FakeHostError::Definition(format!(
                "{function} is not HTTP-triggered"
            )));
        }
        if !def.methods.is_empty() && !def.methods.contains(&call.method.to_ascii_lowercase()) {
            return Err(FakeHostError::Definition(format!(
                "{function} does not accept {}",
                call.method
            )));
        }
        let envelope = envelope::http_envelope(function, &def.trigger_name, &def.route, call);
        let out =
            def.outputs.first().cloned().ok_or_else(|| {
                FakeHostError::Definition(format!("{function} has no http output"))
            })?;
        let reply = self.invoke(function, &envelope).await?;
        reply::http_response(reply, &out)
    }

    /// Posts an envelope to `/<function>` and validates the reply against its definition.
    pub async fn invoke(&self, function: &str, envelope: &Value) -> Result<Reply, FakeHostError> {
        let def = self.def(function)?;
        let raw = self
            .post_raw(function, envelope.to_string().into_bytes())
            .await?;
        reply::validate(
            def,
            &raw.invocation_id,
            raw.status,
            raw.content_type.as_deref(),
            &raw.body,
        )
    }

    /// Posts bytes to `/<function>` exactly as the host does, without validating the reply.
    pub async fn post_raw(&self, function: &str, body: Vec<u8>) -> Result<RawReply, FakeHostError> {
        let port = self.running()?.port;
        let invocation_id = uuid::Uuid::new_v4().to_string();
        // The host's ObjectContent has no length: the body goes out chunked.
        let half = body.len() / 2;
        let body = Bytes::from(body);
        let chunks = vec![
            Ok::<_, std::io::Error>(body.slice(..half)),
            Ok(body.slice(half..)),
        ];
        let res = self
            .client
            .post(format!("http://127.0.0.1:{port}/{function}"))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header("X-Azure-Functions-InvocationId", &invocation_id)
            .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
            .header(
                "traceparent",
                "00-bb2bd5eef54cb15a1506d0326d2489e7-d3f54c84c7034d76-00",
            )
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await?;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.bytes().await?.to_vec();
        Ok(RawReply {
            invocation_id,
            status,
            content_type,
            body,
        })
    }

    /// Like [`FakeHost::invoke`], but enforcing `function_timeout` as the host does: with no
    /// reply in time the handler is SIGKILLed (failing everything in flight), a new one is
    /// started, and the result is [`FakeHostError::TimedOut`].
    pub async fn invoke_enforcing_timeout(
        &mut self,
        function: &str,
        envelope: &Value,
        function_timeout: Duration,
    ) -> Result<Reply, FakeHostError> {
        match tokio::time::timeout(function_timeout, self.invoke(function, envelope)).await {
            Ok(result) => result,
            Err(_) => {
                self.restart().await?;
                Err(FakeHostError::TimedOut(function_timeout))
            }
        }
    }

    /// The envelope of a timer invocation of `function` (for [`FakeHost::invoke`] and
    /// [`FakeHost::invoke_enforcing_timeout`]).
    pub fn timer_envelope(&self, function: &str, call: &TimerCall) -> Result<Value, FakeHostError> {
        let def = self.def(function)?;
        Ok(envelope::timer_envelope(function, &def.trigger_name, call))
    }

    /// SIGKILLs the handler, as the host does when `functionTimeout` expires.
    pub async fn kill(&mut self) -> Result<(), FakeHostError> {
        if let Some(mut h) = self.handler.take() {
            h.kill().await?;
        }
        Ok(())
    }

    /// Kills the handler if running and starts a new one on a new port.
    pub async fn restart(&mut self) -> Result<(), FakeHostError> {
        self.kill().await?;
        self.launch().await
    }
}

/// A reply as it came back, unvalidated.
#[derive(Debug, Clone)]
pub struct RawReply {
    pub invocation_id: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Starts a handler that is expected to fail at startup; returns its exit status text and
/// output (for "a missing setting stops startup" tests).
pub async fn expect_startup_failure(spec: HandlerSpec) -> Result<(String, Output), FakeHostError> {
    let client = reqwest::Client::new();
    let handler = process::Handler::spawn(&spec)?;
    let output = handler.output.clone();
    match handler.wait_ready(&client, spec.ready_timeout).await {
        Err(FakeHostError::Exited { status, .. }) => Ok((status, output.snapshot())),
        Err(e) => Err(e),
        Ok(mut h) => {
            h.kill().await?;
            Err(FakeHostError::InvalidReply(
                "the handler started although startup should have failed".into(),
            ))
        }
    }
}
