//! Minimal local Entra ID token endpoints: the client-credentials endpoint
//! (`POST /{tenant}/oauth2/v2.0/token`, served over TLS because azure_identity refuses a
//! non-https authority) and the App Service managed-identity endpoint (`GET /msi/token`, plain
//! http as in Azure). They record every request so tests can check caching.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub const CLIENT_ID: &str = "test-client-id";
pub const CLIENT_SECRET: &str = "test-client-secret";
pub const IDENTITY_HEADER: &str = "test-identity-header";

/// One token request as the endpoint saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub fields: HashMap<String, String>,
    pub identity_header: Option<String>,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

/// A running endpoint.
pub struct TokenEndpoint {
    pub addr: SocketAddr,
    log: Log,
    /// PEM of the self-signed certificate (TLS endpoints only).
    pub cert_pem: Option<String>,
}

impl TokenEndpoint {
    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.0.lock().expect("log").clone()
    }
}

fn router(log: Log) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(client_credentials))
        .route("/msi/token", get(managed_identity))
        .with_state(log)
}

async fn client_credentials(
    State(log): State<Log>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let n = {
        let mut l = log.0.lock().expect("log");
        l.push(Seen {
            path: format!("/{tenant}/oauth2/v2.0/token"),
            fields: form.clone(),
            identity_header: None,
        });
        l.len()
    };
    let ok = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        && form.get("grant_type").map(String::as_str) == Some("client_credentials");
    if !ok {
        let body = json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."});
        return (StatusCode::UNAUTHORIZED, Json(body));
    }
    (
        StatusCode::OK,
        Json(
            json!({"token_type": "Bearer", "expires_in": 3599, "access_token": format!("cs-{tenant}-{n}")}),
        ),
    )
}

async fn managed_identity(
    State(log): State<Log>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let header = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let n = {
        let mut l = log.0.lock().expect("log");
        l.push(Seen {
            path: "/msi/token".into(),
            fields: q.clone(),
            identity_header: header.clone(),
        });
        l.len()
    };
    if header.as_deref() != Some(IDENTITY_HEADER) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad identity header"})),
        );
    }
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let resource = q.get("resource").cloned().unwrap_or_default();
    let body = json!({"access_token": format!("mi-{n}"), "expires_on": expires.to_string(), "token_type": "Bearer", "resource": resource});
    (StatusCode::OK, Json(body))
}

/// Starts the endpoints over plain http (managed identity).
pub async fn start_http() -> TokenEndpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = Log::default();
    let app = router(log.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    TokenEndpoint {
        addr,
        log,
        cert_pem: None,
    }
}

/// A TLS listener for axum: handshakes inline (fine for tests), skipping failed handshakes.
struct TlsListener {
    inner: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.inner.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Starts the endpoints over https with a certificate generated now for 127.0.0.1/localhost.
pub async fn start_https() -> TokenEndpoint {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("cert");
    let cert_pem = ck.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .expect("server config");
    let inner = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = inner.local_addr().expect("addr");
    let log = Log::default();
    let app = router(log.clone());
    let listener = TlsListener {
        inner,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move { axum::serve(listener, app).await });
    TokenEndpoint {
        addr,
        log,
        cert_pem: Some(cert_pem),
    }
}
