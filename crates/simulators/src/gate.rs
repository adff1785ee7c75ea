//! The middleware in front of every simulated API, in the order a request meets them:
//! counting, injected faults and latency, the bearer token, the throttling buckets; after the
//! handler, faults that strike once the request was applied.

use crate::entra::keys::{self, Claims, TokenRejection};
use crate::faults::{Api, Fault};
use crate::server::ConnKill;
use crate::state::{Shared, lock, read};
use crate::throttle::Take;
use crate::util::{arm_error, azure_core_error, graph_error};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Instant;

/// State of the gate for one API.
#[derive(Clone)]
pub struct Gate {
    pub shared: Arc<Shared>,
    pub api: Api,
}

/// The middleware function (`axum::middleware::from_fn_with_state`).
pub async fn gate(State(g): State<Gate>, req: Request, next: Next) -> Response {
    // Graph's correlation header: the caller's `client-request-id` comes back on the response,
    // next to the service's own `request-id` (Microsoft Graph REST API, "Headers").
    let echo = (g.api == Api::Graph)
        .then(|| req.headers().get("client-request-id").cloned())
        .flatten();
    let mut resp = gate_inner(g.clone(), req, next).await;
    if let Some(id) = echo {
        resp.headers_mut().insert("client-request-id", id);
    }
    if g.api == Api::Graph
        && let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
    {
        resp.headers_mut().insert("request-id", v);
    }
    resp
}

async fn gate_inner(g: Gate, mut req: Request, next: Next) -> Response {
    let op = classify(g.api, req.method(), req.uri().path());
    let is_write = req.method() != Method::GET;
    let kill = req.extensions().get::<ConnKill>().cloned();
    let (fault, latency, slow) =
        lock(&g.shared.faults).decide_slow(g.api, is_write, req.uri().path());
    if slow {
        lock(&g.shared.counters).record_slowed(g.api.name(), &op);
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(resp) = pre_fault(g.api, fault) {
        return finish(&g, &op, resp);
    }
    if fault == Fault::Reset {
        return reset(&g, &op, kill).await;
    }
    let mut remaining = None;
    if g.api != Api::Entra {
        match authenticate(&g, &req) {
            Ok(claims) => match throttle(&g, &claims, &req) {
                Ok(h) => {
                    remaining = h;
                    req.extensions_mut().insert(claims);
                }
                Err(resp) => return finish(&g, &op, resp),
            },
            Err(resp) => return finish(&g, &op, resp),
        }
    }
    let mut resp = next.run(req).await;
    if let Some((name, left)) = remaining {
        resp.headers_mut().insert(name, HeaderValue::from(left));
    }
    match fault {
        Fault::InternalErrorAfterApply => finish(
            &g,
            &op,
            server_error(g.api, StatusCode::INTERNAL_SERVER_ERROR),
        ),
        Fault::ResetAfterApply => reset(&g, &op, kill).await,
        _ => finish(&g, &op, resp),
    }
}

fn finish(g: &Gate, op: &str, resp: Response) -> Response {
    lock(&g.shared.counters).record(g.api.name(), op, resp.status().as_u16());
    resp
}

async fn reset(g: &Gate, op: &str, kill: Option<ConnKill>) -> Response {
    lock(&g.shared.counters).record(g.api.name(), op, 0);
    if let Some(k) = kill {
        k.0.notify_one();
        // The connection task drops this future together with the connection.
        std::future::pending::<()>().await;
    }
    server_error(g.api, StatusCode::INTERNAL_SERVER_ERROR)
}

fn pre_fault(api: Api, fault: Fault) -> Option<Response> {
    match fault {
        Fault::TooManyRequests { retry_after } => Some(too_many(api, retry_after)),
        Fault::InternalError => Some(server_error(api, StatusCode::INTERNAL_SERVER_ERROR)),
        Fault::ServiceUnavailable => Some(server_error(api, StatusCode::SERVICE_UNAVAILABLE)),
        Fault::BadRequest => Some(bad_request(api)),
        Fault::Forbidden => Some(forbidden(api)),
        _ => None,
    }
}

/// The service's 400 body for a request it refuses.
fn bad_request(api: Api) -> Response {
    let msg = "The request is invalid (injected fault).";
    match api {
        Api::Graph => graph_error(StatusCode::BAD_REQUEST, "BadRequest", msg),
        Api::Arm => arm_error(StatusCode::BAD_REQUEST, "BadRequest", msg),
        _ => azure_core_error(StatusCode::BAD_REQUEST, "BadRequest", msg),
    }
}

/// The service's 403 body for a caller without the permission or role.
fn forbidden(api: Api) -> Response {
    match api {
        Api::Graph => graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ),
        Api::Arm => arm_error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            "The client does not have authorization to perform action \
             'Microsoft.SecurityInsights/incidents/read' over scope '…' (injected fault).",
        ),
        _ => azure_core_error(
            StatusCode::FORBIDDEN,
            "OperationFailed",
            "The authentication token provided does not have access to ingest data for the data collection rule (injected fault).",
        ),
    }
}

/// The service's 5xx body.
pub fn server_error(api: Api, status: StatusCode) -> Response {
    let (code, msg) = if status == StatusCode::SERVICE_UNAVAILABLE {
        (
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry later.",
        )
    } else {
        ("InternalServerError", "An internal server error occurred.")
    };
    match api {
        Api::Graph => graph_error(status, code, msg),
        Api::Arm => arm_error(status, code, msg),
        _ => azure_core_error(status, code, msg),
    }
}

/// 429 with `Retry-After` (fractional seconds on Graph, whole seconds elsewhere).
pub fn too_many(api: Api, retry_after: f64) -> Response {
    let (mut resp, value) = match api {
        Api::Graph => (
            graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Please retry again later.",
            ),
            format!("{:.3}", retry_after.max(0.001)),
        ),
        Api::Arm => (
            arm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "SubscriptionRequestsThrottled",
                "Number of requests for subscription exceeded the limit. Please try again later.",
            ),
            format!("{}", retry_after.ceil().max(1.0) as u64),
        ),
        _ => (
            azure_core_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests. Please retry later.",
            ),
            format!("{}", retry_after.ceil().max(1.0) as u64),
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

/// Audiences an API accepts: its own in the configured cloud, and its served origin.
fn audiences(g: &Gate) -> Vec<String> {
    let urls = g.shared.urls();
    let cloud = g.shared.cfg.cloud;
    let (public, served): (&[&str], String) = match g.api {
        Api::Graph => (cloud.graph_audiences(), urls.graph),
        Api::Arm => (cloud.arm_audiences(), urls.arm),
        Api::Logs => (cloud.logs_audiences(), urls.logs),
        Api::Entra => (&[], String::new()),
    };
    let mut v: Vec<String> = public.iter().map(|a| (*a).to_owned()).collect();
    v.push(served);
    v.retain(|a| !a.is_empty());
    v
}

fn authenticate(g: &Gate, req: &Request) -> Result<Claims, Response> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let result = match token {
        None | Some("") => Err(TokenRejection::Missing),
        Some(t) => keys::verify_cached(
            t,
            &read(&g.shared.keys),
            &audiences(g),
            &g.shared.verified_tokens,
        ),
    };
    let claims = result.map_err(|r| unauthorized(g.api, &r, g.shared.cfg.cloud))?;
    let home = &g.shared.cfg.tenant_id;
    if matches!(g.api, Api::Arm | Api::Logs) && claims.tid != *home {
        return Err(wrong_tenant(g.api, &claims.tid, home));
    }
    Ok(claims)
}

/// ARM and Logs live in the home tenant: a token from another tenant is refused.
fn wrong_tenant(api: Api, tid: &str, home: &str) -> Response {
    let msg = format!(
        "The access token is from the wrong issuer 'https://sts.windows.net/{tid}/'. It must match the tenant 'https://sts.windows.net/{home}/' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/{home}' to get the token."
    );
    match api {
        Api::Arm => arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenTenant",
            &msg,
        ),
        _ => azure_core_error(StatusCode::UNAUTHORIZED, "InvalidToken", &msg),
    }
}

fn unauthorized(api: Api, r: &TokenRejection, cloud: crate::config::Cloud) -> Response {
    let mut resp = match (api, r) {
        (Api::Graph, TokenRejection::Missing) => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ),
        (Api::Graph, TokenRejection::Audience(_)) => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        ),
        (Api::Graph, TokenRejection::Expired) => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        ),
        (Api::Graph, _) => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure.",
        ),
        (Api::Arm, TokenRejection::Missing) => arm_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ),
        (Api::Arm, TokenRejection::Audience(aud)) => arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenAudience",
            &format!(
                "The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match with one of the allowed audiences {}.",
                cloud
                    .arm_audiences()
                    .iter()
                    .rev()
                    .flat_map(|a| [format!("'{a}/'"), format!("'{a}'")])
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        (Api::Arm, TokenRejection::Expired) => arm_error(
            StatusCode::UNAUTHORIZED,
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
        ),
        (Api::Arm, _) => arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        ),
        (_, r) => azure_core_error(
            StatusCode::UNAUTHORIZED,
            "InvalidToken",
            &format!("The provided access token is invalid: {r}."),
        ),
    };
    resp.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    resp
}

/// Takes a token from the caller's bucket: `Err(429)` when empty; on ARM, the remaining-quota
/// header to add to the answer.
fn throttle(
    g: &Gate,
    claims: &Claims,
    req: &Request,
) -> Result<Option<(&'static str, u64)>, Response> {
    let cfg = read(&g.shared.throttle_cfg).clone();
    let is_read = req.method() == Method::GET;
    let (bucket, spec, key, header) = match g.api {
        // The 150/min budget is the /security service's; other Graph workloads have their own.
        Api::Graph if !req.uri().path().starts_with("/v1.0/security/") => return Ok(None),
        Api::Graph => (
            "graph",
            cfg.graph,
            format!("{}/{}", claims.appid, claims.tid),
            None,
        ),
        Api::Arm if is_read => (
            "arm_reads",
            cfg.arm_reads,
            claims.oid.clone(),
            Some("x-ms-ratelimit-remaining-subscription-reads"),
        ),
        Api::Arm => (
            "arm_writes",
            cfg.arm_writes,
            claims.oid.clone(),
            Some("x-ms-ratelimit-remaining-subscription-writes"),
        ),
        Api::Logs => ("logs", cfg.logs, req.uri().path().to_owned(), None),
        Api::Entra => return Ok(None),
    };
    let Some(spec) = spec else { return Ok(None) };
    let take = lock(&g.shared.buckets)
        .entry(bucket)
        .or_default()
        .take(&key, spec, Instant::now());
    match take {
        Take::Ok { remaining } => Ok(header.map(|h| (h, remaining))),
        Take::Throttled { retry_after } => Err(too_many(g.api, retry_after)),
    }
}

/// Operation name for counters: method plus the route with ids replaced.
pub fn classify(api: Api, method: &Method, path: &str) -> String {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let route = match api {
        Api::Graph => graph_route(&segs),
        Api::Arm => arm_route(&segs),
        Api::Logs => "dataCollectionRules/{id}/streams/{stream}".to_owned(),
        Api::Entra => {
            if path.contains("/oauth2/") {
                "token".into()
            } else if path.starts_with("/msi/") {
                "msi token".into()
            } else {
                "discovery".into()
            }
        }
    };
    format!("{method} {route}")
}

fn graph_route(segs: &[&str]) -> String {
    match segs {
        ["v1.0", "security", "incidents"] => "incidents".into(),
        ["v1.0", "security", "incidents", _] => "incidents/{id}".into(),
        ["v1.0", "security", "incidents", _, "comments"] => "incidents/{id}/comments".into(),
        ["v1.0", "security", "alerts_v2"] => "alerts_v2".into(),
        ["v1.0", "security", "alerts_v2", _] => "alerts_v2/{id}".into(),
        ["v1.0", "users", _] => "users/{id}".into(),
        _ => segs.join("/"),
    }
}

fn arm_route(segs: &[&str]) -> String {
    let pos = segs
        .iter()
        .position(|s| s.eq_ignore_ascii_case("incidents"));
    match pos.map(|p| &segs[p..]) {
        Some([_]) => "incidents".into(),
        Some([_, _]) => "incidents/{id}".into(),
        Some([_, _, "comments"]) => "incidents/{id}/comments".into(),
        Some([_, _, _, _]) => "incidents/{id}/comments/{commentId}".into(),
        _ => "other".into(),
    }
}
