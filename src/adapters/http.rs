//! Shared HTTP plumbing for the upstream adapters: one reqwest client builder, bearer tokens from
//! an `Arc<dyn TokenSource>`, a pure retry policy, client-side rate limiters and call counters.
//!
//! The retry decision is a pure function of the status and headers ([`classify`]) plus a pure
//! delay computation ([`RetryPolicy::delay`]); only [`HttpClient::execute`] does I/O. Defaults
//! follow azure-sdk-for-rust (`DEFAULT_RETRY_STATUS_CODES`, `retry-after-ms`,
//! `x-ms-retry-after-ms`, `Retry-After` in seconds or as an HTTP-date).

use crate::credentials::{CredentialError, TokenSource};
use crate::domain::TenantId;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use url::Url;

/// Builds the one reqwest client an adapter uses (rustls, gzip responses, request timeout).
/// Redirects are never followed: none of the APIs redirects these calls, and a redirect to
/// another host would make its answer pass for the service's (reqwest drops the token on a
/// cross-origin redirect, but still reads the other host). A 3xx is an error like any other.
pub fn build_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!(
            "defender-sentinel-sync/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
}

/// When the server asked us to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// A relative delay (`Retry-After: 2.128`, `retry-after-ms: 500`).
    After(Duration),
    /// An absolute time (`Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`).
    At(SystemTime),
}

impl RetryAfter {
    /// The delay left at `now` (zero for a date in the past).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        match self {
            Self::After(d) => *d,
            Self::At(t) => t.duration_since(now).unwrap_or(Duration::ZERO),
        }
    }
}

/// Reads the server's retry hint: `retry-after-ms`, then `x-ms-retry-after-ms`, then
/// `Retry-After` (seconds, possibly fractional, or an HTTP-date).
pub fn parse_retry_after(headers: &HeaderMap) -> Option<RetryAfter> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = text(name)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
        {
            return Some(RetryAfter::After(seconds(ms / 1000.0)));
        }
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| RetryAfter::After(seconds(secs)));
    }
    httpdate::parse_http_date(value).ok().map(RetryAfter::At)
}

/// A server's delay in seconds (finite, not negative) as a `Duration`; one too long to represent
/// (`Retry-After: 1e300`, found by fuzzing: it panicked) is `Duration::MAX`, longer than any
/// `max_wait`, so the caller holds its work and comes back later.
pub fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAction {
    /// 2xx: hand the response to the caller.
    Success,
    /// A transient failure (408, 429, 500, 502, 503, 504): try again after at least `retry_after`.
    Retry { retry_after: Option<RetryAfter> },
    /// Any other status: retrying would not help; the caller maps the error.
    DontRetry,
}

/// The retry decision for a status and its headers. Pure: no clock, no I/O.
pub fn classify(status: StatusCode, headers: &HeaderMap) -> RetryAction {
    match status.as_u16() {
        200..=299 => RetryAction::Success,
        408 | 429 | 500 | 502 | 503 | 504 => RetryAction::Retry {
            retry_after: parse_retry_after(headers),
        },
        _ => RetryAction::DontRetry,
    }
}

/// Whether a transport error may be retried. A connection that was never established never
/// reached the server, so even a non-idempotent request is safe to resend; anything else
/// (timeout, reset mid-response) only for idempotent requests.
pub fn transport_retryable(connect_failed: bool, idempotent: bool) -> bool {
    connect_failed || idempotent
}

/// Bounded retries with exponential backoff and full jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (first try included).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A server hint longer than this is not waited out in-process: the error goes to the caller
    /// (as `Throttled { retry_after }`), which holds its checkpoint and comes back later.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `failed + 1`: `max(retry_after, backoff × jitter)` where backoff
    /// doubles from `base_delay` up to `max_delay` and `jitter` is drawn from `[0, 1)`.
    pub fn delay(&self, failed: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exp = failed.saturating_sub(1).min(20);
        let backoff = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let jittered = backoff.mul_f64(jitter.clamp(0.0, 1.0));
        retry_after.map_or(jittered, |ra| ra.max(jittered))
    }

    /// Whether another attempt is allowed after `failed` failures with this server hint.
    pub fn may_retry(&self, failed: u32, retry_after: Option<Duration>) -> bool {
        failed < self.max_attempts && retry_after.is_none_or(|ra| ra <= self.max_wait)
    }
}

/// Per-tenant limiter (Graph: 150 requests per minute per app per tenant).
pub type TenantLimiter = DefaultKeyedRateLimiter<TenantId>;
/// Single-bucket limiter (ARM writes: burst 200, refill 10/s).
pub type BucketLimiter = DefaultDirectRateLimiter;

/// A limiter of `per_minute` requests per tenant (burst = one minute's worth).
pub fn per_tenant_per_minute(per_minute: u32) -> TenantLimiter {
    let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    TenantLimiter::keyed(Quota::per_minute(n))
}

/// A token bucket of `burst` cells refilled at `per_second`.
pub fn token_bucket(burst: u32, per_second: f64) -> BucketLimiter {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    let rate = if per_second.is_finite() && per_second > 0.0 {
        per_second
    } else {
        1.0
    };
    let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rate))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    BucketLimiter::direct(quota)
}

/// Which limiter a call waits on before each attempt (retries count against the budget too).
#[derive(Clone, Copy)]
pub enum Limit<'a> {
    None,
    Tenant(&'a TenantLimiter, &'a TenantId),
    Bucket(&'a BucketLimiter),
}

impl Limit<'_> {
    async fn wait(&self) {
        match self {
            Self::None => {}
            Self::Tenant(l, t) => l.until_key_ready(*t).await,
            Self::Bucket(l) => l.until_ready().await,
        }
    }

    /// The budget this limit draws on, as a key of [`Holds`] (None: no shared budget).
    fn budget(&self) -> Option<BudgetKey> {
        match self {
            Self::None => None,
            Self::Tenant(l, t) => Some((std::ptr::from_ref(*l) as usize, Some((*t).clone()))),
            Self::Bucket(l) => Some((std::ptr::from_ref(*l) as usize, None)),
        }
    }
}

/// A budget: the address of its limiter (limiters live as long as their adapter) and, for a
/// per-tenant limiter, the tenant.
type BudgetKey = (usize, Option<TenantId>);

/// Until when each budget is held after a 429: the service throttles the budget (ARM per
/// subscription, Graph per tenant), not the one request, so every call drawing on it waits out
/// the `Retry-After`, not only the call that met it. Without this, concurrent calls each find
/// out for themselves and meet about one 429 per success under a tight service bucket.
#[derive(Debug, Default)]
struct Holds(std::sync::Mutex<std::collections::HashMap<BudgetKey, tokio::time::Instant>>);

impl Holds {
    /// Holds `key` for at least `d` from now.
    fn hold(&self, key: BudgetKey, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = m.entry(key).or_insert(until);
        *e = (*e).max(until);
    }

    /// Waits until `key` is no longer held.
    async fn wait(&self, key: &BudgetKey) {
        loop {
            let until = {
                let mut m = self
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match m.get(key) {
                    Some(u) if *u > tokio::time::Instant::now() => *u,
                    Some(_) => {
                        m.remove(key);
                        return;
                    }
                    None => return,
                }
            };
            tokio::time::sleep_until(until).await;
        }
    }
}

/// Counters an adapter exposes for health and benchmarks.
#[derive(Debug, Default)]
pub struct CallStats {
    calls: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
}

/// A snapshot of [`CallStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallCounts {
    /// Requests sent (every attempt).
    pub calls: u64,
    /// Attempts that were retried.
    pub retries: u64,
    /// 429 responses seen.
    pub throttled: u64,
}

impl CallStats {
    /// The counters now.
    pub fn snapshot(&self) -> CallCounts {
        CallCounts {
            calls: self.calls.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

/// A request could not get a usable response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// Connection refused/reset, timeout, after the retries allowed.
    #[error("{0}")]
    Transport(String),
}

/// How one logical call is made.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    /// Tenant and scope of the bearer token.
    pub tenant: &'a TenantId,
    pub scope: &'a str,
    /// A repeat has the same effect (GET, PUT, PATCH, Logs upload with row ids). A POST of a
    /// Graph comment is not: it is only retried when the server surely did not act (429, no connection).
    pub idempotent: bool,
    pub limit: Limit<'a>,
    /// For logs: what the call does (`"graph.list_incidents"`).
    pub op: &'static str,
}

/// The client, token source, policy and counters of one upstream.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    policy: RetryPolicy,
    stats: Arc<CallStats>,
    holds: Arc<Holds>,
    /// The correlation header each request carries a fresh UUID in.
    request_id_header: &'static str,
}

/// Azure's correlation header (ARM, Logs Ingestion).
pub const AZURE_REQUEST_ID: &str = "x-ms-client-request-id";
/// Microsoft Graph's correlation header.
pub const GRAPH_REQUEST_ID: &str = "client-request-id";

impl HttpClient {
    /// A client with its own connection pool and `timeout` per request.
    pub fn new(
        tokens: Arc<dyn TokenSource>,
        timeout: Duration,
        policy: RetryPolicy,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: build_client(timeout)?,
            tokens,
            policy,
            stats: Arc::default(),
            holds: Arc::default(),
            request_id_header: AZURE_REQUEST_ID,
        })
    }

    /// Names the correlation header ([`GRAPH_REQUEST_ID`] for Graph).
    pub fn with_request_id_header(mut self, name: &'static str) -> Self {
        self.request_id_header = name;
        self
    }

    /// Replaces the retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Counters of this client.
    pub fn counts(&self) -> CallCounts {
        self.stats.snapshot()
    }

    /// Sends the request `make` builds (rebuilt for every attempt), with a bearer token, waiting on
    /// the call's limiter and retrying per the policy. Returns the last response, whatever its
    /// status: the adapter maps non-2xx into its own error.
    pub async fn execute<F>(&self, call: Call<'_>, make: F) -> Result<reqwest::Response, SendError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let _waiting = crate::call_clock::wait(crate::call_clock::Wait::Upstream);
        self.attempts(call, make).await
    }

    async fn attempts<F>(&self, call: Call<'_>, make: F) -> Result<reqwest::Response, SendError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let mut failed = 0u32;
        let budget = call.limit.budget();
        loop {
            call.limit.wait().await;
            if let Some(b) = &budget {
                self.holds.wait(b).await;
            }
            let token = self.tokens.token(call.tenant, call.scope).await?;
            let request = make(&self.client)
                .bearer_auth(token.secret())
                .header(self.request_id_header, uuid::Uuid::new_v4().to_string());
            self.stats.calls.fetch_add(1, Ordering::Relaxed);
            failed += 1;
            let (reason, hint) = match self.step(&call, failed, request.send().await)? {
                Step::Done(resp) => return Ok(resp),
                Step::Again {
                    reason,
                    hint,
                    throttled,
                } => {
                    if let (true, Some(b), Some(d)) = (throttled, &budget, hint) {
                        self.holds.hold(b.clone(), d);
                    }
                    (reason, hint)
                }
            };
            let delay = self.policy.delay(failed, hint, rand::random::<f64>());
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                message = "Retrying upstream call.",
                op = call.op,
                tenant = %call.tenant,
                attempt = failed,
                reason = %reason,
                retry_after_ms = hint.map(|d| d.as_millis() as u64),
                delay_ms = delay.as_millis() as u64,
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Decides on one attempt's outcome: hand it back, or go again (and why, and the server's hint).
    fn step(
        &self,
        call: &Call<'_>,
        failed: u32,
        outcome: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Step, SendError> {
        match outcome {
            Ok(resp) => {
                let RetryAction::Retry { retry_after } = classify(resp.status(), resp.headers())
                else {
                    return Ok(Step::Done(resp));
                };
                let throttled = resp.status() == StatusCode::TOO_MANY_REQUESTS;
                if throttled {
                    self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                }
                let hint = retry_after.map(|r| r.remaining(SystemTime::now()));
                // A 429 was not acted on; another failure of a non-idempotent call may have been.
                let safe = call.idempotent || throttled;
                if !safe || !self.policy.may_retry(failed, hint) {
                    return Ok(Step::Done(resp));
                }
                Ok(Step::Again {
                    reason: format!("status {}", resp.status().as_u16()),
                    hint,
                    throttled,
                })
            }
            Err(e) => {
                if !transport_retryable(e.is_connect(), call.idempotent)
                    || !self.policy.may_retry(failed, None)
                {
                    return Err(SendError::Transport(transport_message(&e)));
                }
                Ok(Step::Again {
                    reason: transport_message(&e),
                    hint: None,
                    throttled: false,
                })
            }
        }
    }
}

/// The outcome of one attempt.
enum Step {
    Done(reqwest::Response),
    Again {
        reason: String,
        hint: Option<Duration>,
        /// A 429: its hint holds the whole budget.
        throttled: bool,
    },
}

/// A transport error without the URL (which may carry query values we do not want in logs twice).
fn transport_message(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "transport error"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

/// A failed call, classified once for every adapter; each maps it into its own error enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 401/403, or the token endpoint refused us.
    Auth {
        status: u16,
        message: String,
    },
    NotFound {
        message: String,
    },
    /// 409/412: optimistic concurrency lost.
    Conflict {
        status: u16,
        message: String,
    },
    Throttled {
        retry_after: Option<Duration>,
    },
    /// 408, 5xx, transport or token-endpoint trouble.
    Transient(String),
    /// Any other 4xx.
    Rejected {
        status: u16,
        message: String,
    },
}

impl From<ErrorInfo> for Failure {
    fn from(e: ErrorInfo) -> Self {
        let message = match e.code {
            Some(code) => format!("{code}: {}", e.message),
            None => e.message,
        };
        match e.status {
            401 | 403 => Self::Auth {
                status: e.status,
                message,
            },
            404 => Self::NotFound { message },
            409 | 412 => Self::Conflict {
                status: e.status,
                message,
            },
            429 => Self::Throttled {
                retry_after: e.retry_after,
            },
            408 | 500..=599 => Self::Transient(format!("{} {message}", e.status)),
            status => Self::Rejected { status, message },
        }
    }
}

impl From<SendError> for Failure {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Credential(CredentialError::Refused { message, .. }) => Self::Auth {
                status: 401,
                message,
            },
            SendError::Credential(CredentialError::Transient(m)) => {
                Self::Transient(format!("token: {m}"))
            }
            SendError::Transport(m) => Self::Transient(m),
        }
    }
}

/// What an error response said: status, the envelope's code/message, the server's retry hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    pub status: u16,
    pub code: Option<String>,
    pub message: String,
    pub retry_after: Option<Duration>,
}

/// Reads an error response (`{"error":{"code","message"}}` for Graph, ARM and Logs Ingestion;
/// else the start of the body).
pub async fn error_info(resp: reqwest::Response) -> ErrorInfo {
    let status = resp.status().as_u16();
    let retry_after = parse_retry_after(resp.headers()).map(|r| r.remaining(SystemTime::now()));
    let header_code = resp
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.text().await.unwrap_or_default();
    let (code, message) = parse_error_envelope(&body);
    ErrorInfo {
        status,
        code: code.or(header_code),
        message,
        retry_after,
    }
}

/// `(code, message)` of an error body; the message falls back to the body's first 300 characters.
pub fn parse_error_envelope(body: &str) -> (Option<String>, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    let err = &v["error"];
    let code = err["code"].as_str().map(str::to_owned);
    let message = match err["message"].as_str() {
        Some(m) => m.to_owned(),
        None => body.chars().take(300).collect(),
    };
    (code, message)
}

/// `base` with `segments` appended to its path (each percent-encoded), keeping any base path
/// (so a simulator mounted under a prefix works).
pub fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

/// Appends `key=value` pairs to a URL's query, encoding spaces as `%20` (OData servers read `+`
/// literally in some places) and leaving the `$` of OData option names as is.
pub fn with_query(mut url: Url, pairs: &[(&str, &str)]) -> Url {
    let encode = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    let mut query = url.query().map(str::to_owned).unwrap_or_default();
    for (k, v) in pairs {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&encode(k).replace("%24", "$"));
        query.push('=');
        query.push_str(&encode(v));
    }
    url.set_query(Some(&query));
    url
}

/// True when `link` has the same scheme, host and port as `base`: a next link anywhere else is
/// never followed (it would receive our bearer token).
pub fn same_origin(base: &Url, link: &Url) -> bool {
    base.scheme() == link.scheme()
        && base.host_str().map(str::to_ascii_lowercase)
            == link.host_str().map(str::to_ascii_lowercase)
        && base.port_or_known_default() == link.port_or_known_default()
}

#[cfg(test)]
mod tests;
