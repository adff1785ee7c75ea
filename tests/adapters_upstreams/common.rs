//! Shared test doubles: a recording mock HTTP server on 127.0.0.1:0 and a static TokenSource.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use azure_core::credentials::Secret;
use defender_sentinel_sync::adapters::http::RetryPolicy;
use defender_sentinel_sync::credentials::{CredentialError, TokenSource};
use defender_sentinel_sync::domain::TenantId;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    /// A decoded query parameter.
    pub fn query(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.raw_query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the mock answers.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Waited before answering (an answer slower than the client's timeout).
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

type Responder = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

#[derive(Clone)]
struct MockState {
    log: Arc<Mutex<Vec<Recorded>>>,
    responder: Arc<Responder>,
}

/// A running mock: its base URL and everything it received.
pub struct Mock {
    pub base: Url,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Mock {
    /// Starts a server answering every request with `responder(request, index)`.
    pub async fn start(
        responder: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> Mock {
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = MockState {
            log: log.clone(),
            responder: Arc::new(responder),
        };
        let app = axum::Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Mock {
            base: Url::parse(&format!("http://{addr}")).unwrap(),
            log,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

async fn handle(
    State(s): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rec = Recorded {
        method,
        path: uri.path().to_owned(),
        raw_query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body: body.to_vec(),
    };
    let index = {
        let mut log = s.log.lock().unwrap();
        log.push(rec.clone());
        log.len() - 1
    };
    let reply = (s.responder)(&rec, index);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

/// Tokens `token:{tenant}:{scope}`, recording every ask.
#[derive(Debug, Default)]
pub struct StaticTokens {
    pub asked: Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl TokenSource for StaticTokens {
    async fn token(&self, tenant: &TenantId, scope: &str) -> Result<Secret, CredentialError> {
        self.asked
            .lock()
            .unwrap()
            .push((tenant.to_string(), scope.to_owned()));
        Ok(Secret::new(format!("token:{tenant}:{scope}")))
    }
}

pub fn bearer(tenant: &str, scope: &str) -> String {
    format!("Bearer token:{tenant}:{scope}")
}

/// Short delays so retry tests stay fast.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_wait: Duration::from_secs(5),
    }
}

pub use dss_test_support::fixture;

pub fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

/// Links to places other than `mock`'s origin, served by `foreign` (another port) or borrowing
/// the mock's address as userinfo: none may be requested (each would carry our bearer token).
pub fn foreign_links(mock: &Mock, foreign: &Mock, path: &str) -> Vec<String> {
    let own = mock.base.authority().to_owned();
    let other = foreign.base.authority().to_owned();
    let port = foreign.base.port().unwrap_or(80);
    vec![
        format!("http://{other}{path}"),
        format!("http://{own}@{other}{path}"),
        format!("http://localhost:{port}{path}"),
        format!("https://{own}{path}"),
        format!("//{other}{path}"),
    ]
}

/// A server that records what reaches it and answers 200 `{}`: the "other host".
pub async fn foreign_host() -> Mock {
    Mock::start(|_, _| Reply::json(200, serde_json::json!({"value": []}))).await
}
