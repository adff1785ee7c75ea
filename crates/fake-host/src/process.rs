//! The handler process: spawned with the host's variables, its output captured line by line,
//! readiness polled, SIGKILLed on demand.

use crate::{FakeHostError, HandlerSpec};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// The host's readiness poll interval.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The handler's output so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

/// Shared sink the reader tasks append to.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutputSink(Arc<Mutex<Output>>);

impl OutputSink {
    pub(crate) fn snapshot(&self) -> Output {
        self.0.lock().map(|o| o.clone()).unwrap_or_default()
    }

    fn reader<R: AsyncRead + Unpin + Send + 'static>(
        &self,
        stream: R,
        stderr: bool,
    ) -> JoinHandle<()> {
        let sink = self.0.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut o) = sink.lock() {
                    if stderr {
                        o.stderr.push(line)
                    } else {
                        o.stdout.push(line)
                    }
                }
            }
        })
    }
}

pub(crate) struct Handler {
    child: Child,
    pub(crate) port: u16,
    pub(crate) output: OutputSink,
    readers: Vec<JoinHandle<()>>,
}

/// A free loopback port, found as the host does (bind :0, read, release).
fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

impl Handler {
    pub(crate) fn spawn(spec: &HandlerSpec) -> Result<Self, FakeHostError> {
        let port = free_port()?;
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args).current_dir(&spec.app_root);
        if spec.clear_env {
            cmd.env_clear();
        }
        let worker_id = uuid::Uuid::new_v4().to_string();
        cmd.envs(&spec.env)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
            .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", &worker_id)
            .env("FUNCTIONS_HTTPWORKER_ID", &worker_id)
            .env("FUNCTIONS_APP_ROOT_PATH", &spec.app_root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let output = OutputSink::default();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(output.reader(out, false));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(output.reader(err, true));
        }
        Ok(Self {
            child,
            port,
            output,
            readers,
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Polls `GET /` until any HTTP answer (even an error status counts, as for the host).
    pub(crate) async fn wait_ready(
        mut self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<Self, FakeHostError> {
        let url = format!("http://127.0.0.1:{}/", self.port);
        let until = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.drain().await;
                let stderr = self.output.snapshot().stderr.join("\n");
                return Err(FakeHostError::Exited {
                    status: status.to_string(),
                    stderr,
                });
            }
            let probe = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if probe.is_ok() {
                return Ok(self);
            }
            if tokio::time::Instant::now() >= until {
                let _ = self.kill().await;
                return Err(FakeHostError::NotReady(timeout));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits (briefly) until the output pipes are read to the end.
    async fn drain(&mut self) {
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
        }
    }

    /// SIGKILL (tokio's `start_kill`), then reap.
    pub(crate) async fn kill(&mut self) -> Result<(), FakeHostError> {
        if self.child.try_wait()?.is_none() {
            self.child.start_kill()?;
        }
        self.child.wait().await?;
        self.drain().await;
        Ok(())
    }
}
