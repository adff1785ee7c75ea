//! Test harness: a running simulator set and a reqwest client that trusts its CA.

use base64::Engine;
use dss_simulators::{SimConfig, Simulators, wellknown};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;

pub const T1: &str = wellknown::TENANT_ID;
pub const T2: &str = wellknown::TENANT_ID_2;
pub const GRAPH: &str = "https://graph.microsoft.com";
pub const ARM: &str = "https://management.azure.com";
pub const MONITOR: &str = "https://monitor.azure.com";

pub use dss_test_support::fixture;

pub struct Env {
    pub sims: Simulators,
    pub http: reqwest::Client,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

pub async fn start() -> Env {
    start_with(SimConfig::default().with_stream(
        wellknown::STREAM_NAME,
        &["Time", "Computer", "AdditionalContext"],
    ))
    .await
}

pub async fn start_with(cfg: SimConfig) -> Env {
    let sims = Simulators::start(cfg).await.unwrap();
    let ca = reqwest::Certificate::from_pem(sims.cert_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    Env { sims, http }
}

/// The claims of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

impl Env {
    pub fn token(&self, aud: &str, tenant: &str) -> String {
        self.sims.token_for(aud, tenant).unwrap()
    }

    pub async fn call(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self.http.request(method, url);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    /// GET on Graph as the app in `tenant`; `path` starts with `/v1.0/`.
    pub async fn graph(
        &self,
        method: Method,
        path: &str,
        tenant: &str,
        body: Option<&Value>,
    ) -> Resp {
        let url = format!("{}{path}", self.sims.urls().graph);
        self.call(method, &url, Some(&self.token(GRAPH, tenant)), body, &[])
            .await
    }

    pub fn incidents_url(&self) -> String {
        let c = &self.sims.config().arm;
        format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}/providers/Microsoft.SecurityInsights/incidents",
            self.sims.urls().arm,
            c.subscription_id,
            c.resource_group,
            c.workspace_name
        )
    }

    /// ARM call on `incidents{suffix}` with api-version 2024-03-01 appended.
    pub async fn arm(&self, method: Method, suffix: &str, body: Option<&Value>) -> Resp {
        let sep = if suffix.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{suffix}{sep}api-version=2024-03-01",
            self.incidents_url()
        );
        self.call(method, &url, Some(&self.token(ARM, T1)), body, &[])
            .await
    }

    pub fn logs_url(&self, stream: &str) -> String {
        format!(
            "{}/dataCollectionRules/{}/streams/{stream}?api-version=2023-01-01",
            self.sims.urls().logs,
            self.sims.config().logs.dcr_immutable_id
        )
    }
}

pub fn new_name() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn minimal_incident(title: &str) -> Value {
    serde_json::json!({"properties": {"title": title, "severity": "Medium", "status": "New"}})
}
