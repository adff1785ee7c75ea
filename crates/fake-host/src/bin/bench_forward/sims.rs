//! The `dss-simulators` bin in its own process, driven through its HTTP control API.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running simulators process; it exits when its stdin closes (on drop).
pub struct SimsProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    control: String,
    http: reqwest::Client,
    /// The handler settings it prints (AZURE_*, GRAPH_ENDPOINT, ARM_*, LOGS_*, SSL_CERT_FILE, …).
    pub env: BTreeMap<String, String>,
}

impl SimsProcess {
    /// Starts `bin` with no data and the given `--throttle`, writing its CA to `ca`.
    pub fn start(bin: &Path, ca: &Path, throttle: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .args([
                "--incidents",
                "0",
                "--throttle",
                throttle,
                "--json",
                "--stdin-lifetime",
                "--ca-file",
            ])
            .arg(ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let info: Value = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("simulators printed {line:?}: {e}"))?;
        let env = info["env"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
            .collect();
        let control = info["control"]
            .as_str()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            child,
            stdin,
            control,
            http: reqwest::Client::new(),
            env,
        })
    }

    /// The process id (for CPU figures).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.control))
            .send()
            .await?
            .error_for_status()?;
        Ok(r.json().await?)
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.control))
            .json(body)
            .send()
            .await?
            .error_for_status()?;
        Ok(r.json().await?)
    }

    pub async fn reset_counters(&self) -> anyhow::Result<()> {
        self.http
            .delete(format!("{}/control/counters", self.control))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    pub async fn counters(&self) -> anyhow::Result<Counters> {
        Ok(Counters(self.get("/control/counters").await?))
    }
}

impl Drop for SimsProcess {
    fn drop(&mut self) {
        drop(self.stdin.take()); // --stdin-lifetime: it exits
        let _ = self.child.wait();
    }
}

/// The simulators' call counters (`by_api → "METHOD route" → {calls, ok, throttled, …}`).
pub struct Counters(Value);

impl Counters {
    fn ops(&self, api: &str) -> impl Iterator<Item = (&String, &Value)> {
        self.0["by_api"][api].as_object().into_iter().flatten()
    }

    fn sum(&self, api: &str, pred: impl Fn(&str) -> bool, field: &str) -> u64 {
        self.ops(api)
            .filter(|(op, _)| pred(op))
            .map(|(_, c)| c[field].as_u64().unwrap_or(0))
            .sum()
    }

    /// Every call to one API (`entra`, `graph`, `arm`, `logs`).
    pub fn total(&self, api: &str) -> u64 {
        self.sum(api, |_| true, "calls")
    }

    /// Calls of the operations whose name contains `part`.
    pub fn matching(&self, api: &str, part: &str) -> u64 {
        self.sum(api, |op| op.contains(part), "calls")
    }

    /// Calls of exactly the operation `op` (`"METHOD route"`, as the simulators name it).
    pub fn op(&self, api: &str, op: &str) -> u64 {
        self.sum(api, |o| o == op, "calls")
    }

    /// 429s of one API.
    pub fn throttled(&self, api: &str) -> u64 {
        self.sum(api, |_| true, "throttled")
    }

    fn is_write(op: &str) -> bool {
        op.starts_with("PUT")
            || op.starts_with("DELETE")
            || op.starts_with("POST")
            || op.starts_with("PATCH")
    }

    /// ARM write calls (every outcome).
    pub fn arm_writes(&self) -> u64 {
        self.sum("arm", Self::is_write, "calls")
    }

    /// Write calls of an API (every outcome).
    pub fn writes(&self, api: &str) -> u64 {
        self.sum(api, Self::is_write, "calls")
    }

    /// ARM write calls that succeeded.
    pub fn arm_writes_ok(&self) -> u64 {
        self.sum("arm", Self::is_write, "ok")
    }

    /// `api op=calls` for every operation called.
    pub fn ops_line(&self) -> String {
        let mut parts = Vec::new();
        for api in ["entra", "graph", "arm", "logs"] {
            for (op, c) in self.ops(api) {
                parts.push(format!("{api} {op}={}", c["calls"].as_u64().unwrap_or(0)));
            }
        }
        parts.join(", ")
    }
}
