//! `SentinelWebhook`: a Sentinel automation rule's playbook posts the incident trigger body here
//! and the analyst's change reaches Defender at once, through the same one-incident path as the
//! timer ([`ReverseApply`]).
//!
//! Each call, in order, stopping at the first refusal (one log line with the reason, never the
//! secret or the token, and no upstream write): a body over 1 MiB → 413; no or bad credentials →
//! 401; a body that is not a trigger → 400; another workspace → 403; an incident the sync does
//! not manage → 404. Then, serialised per incident in this process (and across processes through
//! the state's ETags): the current Sentinel incident is read (the body is only a hint), and
//! [`ReverseApply`] merges, PATCHes Defender and writes the state. A replay, an out-of-order
//! call or the echo of our own forward write finds both sides agreeing and writes nothing (200).
//! Throttling upstream → 429 with the upstream's `Retry-After`; other transient failures → 503.
//!
//! The pure parts are separate modules: [`trigger`] (the body), [`auth`] (secret and token
//! decisions), [`decide`] (authorisation and replies); [`keys`] caches the authority's keys.

pub mod auth;
pub mod decide;
pub mod keys;
pub mod trigger;
pub mod unified;

use crate::call_clock;
use crate::config::{SentinelWorkspace, Settings, WebhookAuth};
use crate::domain::{SentinelIncidentName, TenantId};
use crate::host::payload::HttpRequestData;
use crate::host::plugins::{HttpReply, WebhookHandler};
use crate::ports::{DefenderApi, SentinelApi};
use crate::state::StateStore;
use crate::sync::{MergePolicy, ReverseApply, ReverseError, ReverseOutcome};
use auth::{AuthError, ExpectedSecret, TokenRules};
use keys::{KeyCache, KeySource, OpenIdSource};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::Instrument;

/// The header carrying the shared secret (matched case-insensitively).
pub const SECRET_HEADER: &str = "X-Sync-Secret";

/// Past this many per-incident locks, unused ones (left by a call that gave up waiting) are
/// dropped when the next one is made.
const LOCKS_SWEPT_PAST: usize = 1024;

/// How callers authenticate.
pub struct Authenticator {
    secret: Option<ExpectedSecret>,
    token: Option<TokenAuth>,
}

struct TokenAuth {
    rules: TokenRules,
    keys: KeyCache,
}

impl Authenticator {
    /// `WEBHOOK_AUTH=none`: every caller is accepted.
    pub fn disabled() -> Self {
        Self {
            secret: None,
            token: None,
        }
    }

    /// Callers must send this secret in `X-Sync-Secret`.
    pub fn secret(secret: &str) -> Self {
        Self {
            secret: Some(ExpectedSecret::new(secret)),
            token: None,
        }
    }

    /// Also (or only) accepts bearer tokens per `rules`, signed by keys from `source`.
    pub fn with_token(mut self, rules: TokenRules, source: Box<dyn KeySource>) -> Self {
        self.token = Some(TokenAuth {
            rules,
            keys: KeyCache::new(source),
        });
        self
    }

    fn is_disabled(&self) -> bool {
        self.secret.is_none() && self.token.is_none()
    }

    /// From the settings: the secret and/or the authority of `AZURE_TENANT_ID` (its OpenID
    /// configuration at `AZURE_AUTHORITY_HOST`), accepting its v1 and v2 issuers.
    pub fn from_settings(s: &Settings, client: reqwest::Client) -> Self {
        let (secret, audience) = match &s.webhook_auth {
            WebhookAuth::Disabled => return Self::disabled(),
            WebhookAuth::SharedSecret(secret) => (Some(secret), None),
            WebhookAuth::EntraToken { audience } => (None, Some(audience)),
            WebhookAuth::Either { secret, audience } => (Some(secret), Some(audience)),
        };
        let mut me = Self {
            secret: secret.map(|x| ExpectedSecret::new(x.secret())),
            token: None,
        };
        if let Some(audience) = audience {
            let tenant = s.azure_tenant_id.as_str();
            let host = s.authority_host.as_str().trim_end_matches('/');
            let rules = TokenRules {
                audience: audience.clone(),
                issuers: vec![
                    format!("https://sts.windows.net/{tenant}/"),
                    format!("{host}/{tenant}/v2.0"),
                ],
                allowed_app_ids: s.webhook_allowed_app_ids.clone(),
            };
            let source = OpenIdSource::new(client, &s.authority_host, tenant);
            me = me.with_token(rules, Box::new(source));
        }
        me
    }

    /// Checks the caller's credentials: the secret when it sends `X-Sync-Secret` and a secret
    /// is configured, else its bearer token when tokens are accepted.
    pub async fn check(&self, req: &HttpRequestData) -> Result<(), AuthError> {
        if self.is_disabled() {
            return Ok(());
        }
        if let (Some(expected), Some(presented)) = (&self.secret, req.header(SECRET_HEADER)) {
            return auth::check_secret(expected, Some(presented));
        }
        if let (Some(t), Some(header)) = (&self.token, req.header("Authorization")) {
            let token = auth::bearer(header)?;
            let kid = auth::token_key_id(token)?;
            let published = t
                .keys
                .keys_for(&kid)
                .await
                .map_err(AuthError::KeysUnavailable)?;
            let mut rules = t.rules.clone();
            if let Some(issuer) = &published.issuer {
                rules.issuers.push(issuer.clone());
            }
            let now = OffsetDateTime::now_utc().unix_timestamp();
            auth::validate_token(token, &published.keys, &rules, now)?;
            return Ok(());
        }
        if self.secret.is_some() && req.header(SECRET_HEADER).is_some() {
            return Err(AuthError::EmptySecret);
        }
        Err(AuthError::Missing)
    }
}

/// The ports the webhook applies through (the engine's, shared).
pub struct WebhookPorts {
    pub defender: Arc<dyn DefenderApi>,
    pub sentinel: Arc<dyn SentinelApi>,
    pub store: Arc<dyn StateStore>,
}

/// The SentinelWebhook handler.
pub struct WebhookService {
    ports: WebhookPorts,
    policy: MergePolicy,
    tenants: Vec<TenantId>,
    workspace: SentinelWorkspace,
    auth: Authenticator,
    /// One lock per incident with a call in flight: calls for one incident run one after the
    /// other, calls for different incidents never wait for each other (a striped lock made one
    /// call in a few wait for another incident's whole round trip at 50 concurrent calls).
    locks: IncidentLocks,
    /// `SENTINEL_TARGET=unified`: bodies name platform incidents, routed to their source here.
    unified: Option<Arc<dyn unified::PlatformRoutes>>,
}

/// Per-incident locks, made on first use and removed when their last user is done.
#[derive(Default)]
struct IncidentLocks(std::sync::Mutex<HashMap<SentinelIncidentName, Arc<tokio::sync::Mutex<()>>>>);

/// The turn of one call for its incident (see [`IncidentLocks::turn`]).
struct Turn<'a> {
    locks: &'a IncidentLocks,
    name: SentinelIncidentName,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl IncidentLocks {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<SentinelIncidentName, Arc<tokio::sync::Mutex<()>>>> {
        // Nothing panics while holding it; a poisoned map is still consistent.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until no other call of this process is working on `name`.
    async fn turn(&self, name: &SentinelIncidentName) -> Turn<'_> {
        let lock = {
            let mut map = self.map();
            if map.len() >= LOCKS_SWEPT_PAST {
                map.retain(|_, l| Arc::strong_count(l) > 1);
            }
            map.entry(*name).or_default().clone()
        };
        Turn {
            locks: self,
            name: *name,
            guard: Some(lock.lock_owned().await),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.map();
        // Only the map holds it: no call waits or works on the incident.
        if map
            .get(&self.name)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.name);
        }
    }
}

impl WebhookService {
    pub fn new(
        ports: WebhookPorts,
        policy: MergePolicy,
        tenants: Vec<TenantId>,
        workspace: SentinelWorkspace,
        auth: Authenticator,
    ) -> Self {
        Self {
            ports,
            policy,
            tenants,
            workspace,
            auth,
            locks: IncidentLocks::default(),
            unified: None,
        }
    }

    /// With `SENTINEL_TARGET=unified`: bodies are routed by the platform incident they name
    /// ([`unified::route`]) instead of by their ARM incident name.
    pub fn with_unified(mut self, routes: Arc<dyn unified::PlatformRoutes>) -> Self {
        self.unified = Some(routes);
        self
    }

    /// The source incident a body is about: its ARM name, or with the unified target the
    /// source whose pair is the platform incident it names.
    async fn incident_of(&self, t: &trigger::Trigger) -> Result<SentinelIncidentName, HttpReply> {
        let Some(routes) = &self.unified else {
            return decide::authorise(&t.incident, &self.workspace)
                .map_err(|r| reject(r.status(), &r.to_string()));
        };
        unified::route(t, &self.workspace, routes.as_ref())
            .await
            .map_err(|e| match e {
                unified::RouteError::Refused(status, reason) => reject(status, &reason),
                unified::RouteError::Upstream(e) => {
                    let reason = format!("platform incident not read: {e}");
                    let (status, wait) = decide::error_status(&ReverseError::Sentinel(e));
                    reject_with(status, &reason, wait)
                }
            })
    }

    /// One call, answered by [`HttpReply`] (its `logs` hold the one line saying what happened).
    /// The protocol layer adds where the call's time went (`crate::call_clock`).
    pub async fn call(&self, req: &HttpRequestData, deadline: Instant) -> HttpReply {
        self.checked_call(req, deadline).await
    }

    async fn checked_call(&self, req: &HttpRequestData, deadline: Instant) -> HttpReply {
        let body = req.body.as_deref().unwrap_or("");
        if body.len() > trigger::MAX_BODY_BYTES {
            return reject(
                413,
                &trigger::TriggerError::TooLarge(body.len()).to_string(),
            );
        }
        if let Err(e) = self.auth.check(req).await {
            let (status, wait) = match e {
                AuthError::KeysUnavailable(_) => (503, Some(decide::TRANSIENT_WAIT)),
                _ => (401, None),
            };
            let mut reply = reject_with(status, &e.to_string(), wait);
            if status == 401 && self.auth.token.is_some() {
                reply
                    .headers
                    .insert("WWW-Authenticate".into(), "Bearer".into());
            }
            return reply;
        }
        let trigger = match trigger::parse_trigger(body.as_bytes()) {
            Ok(t) => t,
            Err(e @ trigger::TriggerError::TooLarge(_)) => return reject(413, &e.to_string()),
            Err(e) => return reject(400, &e.to_string()),
        };
        let name = match self.incident_of(&trigger).await {
            Ok(n) => n,
            Err(reply) => return reply,
        };
        let span = tracing::info_span!("incident", sentinel = %name);
        let work = async {
            let queued = call_clock::wait(call_clock::Wait::Lock);
            let _turn = self.locks.turn(&name).await;
            drop(queued);
            self.apply(&name, &trigger).await
        };
        let result = tokio::time::timeout_at(deadline, work.instrument(span)).await;
        match result {
            Ok(reply) => reply,
            Err(_) => reject_with(
                503,
                "the call did not finish before the function's deadline; nothing more is written for it",
                Some(decide::TRANSIENT_WAIT),
            ),
        }
    }

    async fn apply(&self, name: &SentinelIncidentName, trigger: &trigger::Trigger) -> HttpReply {
        let p = &self.ports;
        // Ours only if the sync keeps a state for it: checked before anything is read upstream.
        let state = match p.store.incident(name).await {
            Ok(Some(v)) => v,
            Ok(None) => return reject(404, &decide::Refusal::NotManaged.to_string()),
            Err(e) => return failed(name, &ReverseError::State(e)),
        };
        if !self.tenants.contains(&state.value.tenant) {
            return reject(
                403,
                "the incident belongs to a Defender tenant this sync does not serve",
            );
        }
        let incident = match p.sentinel.get_incident(name).await {
            Ok(Some(i)) => i,
            Ok(None) => return reject(404, "the incident no longer exists in Sentinel"),
            Err(e) => return failed(name, &ReverseError::Sentinel(e)),
        };
        let stale = matches!((trigger.last_modified, incident.last_modified), (Some(hint), Some(now)) if hint < now);
        let apply = ReverseApply {
            defender: p.defender.as_ref(),
            sentinel: p.sentinel.as_ref(),
            store: p.store.as_ref(),
            policy: &self.policy,
            tenants: &self.tenants,
        };
        // The state just read goes along (a conflict on writing it reads it again).
        match apply.apply_read(&incident, Some(Some(state))).await {
            Ok(outcome) => answered(name, &outcome, stale, trigger),
            Err(e) => failed(name, &e),
        }
    }
}

fn reject(status: u16, reason: &str) -> HttpReply {
    reject_with(status, reason, None)
}

/// A refusal: one log line with the reason (callers never put a secret or token in it). The
/// protocol layer logs the reply's lines, in the invocation's span.
fn reject_with(status: u16, reason: &str, wait: Option<Duration>) -> HttpReply {
    decide::error_reply(status, reason, wait).with_log(format!(
        "SentinelWebhook call rejected ({status}): {reason}"
    ))
}

fn failed(name: &SentinelIncidentName, e: &ReverseError) -> HttpReply {
    let (status, wait) = decide::error_status(e);
    decide::error_reply(status, &e.to_string(), wait).with_log(format!(
        "SentinelWebhook: incident {name} not applied ({status}): {e}"
    ))
}

fn answered(
    name: &SentinelIncidentName,
    o: &ReverseOutcome,
    stale: bool,
    trigger: &trigger::Trigger,
) -> HttpReply {
    let (status, result) = decide::outcome_status(o);
    let mut body = json!({ "result": result, "incident": name.to_string() });
    let detail = match o {
        ReverseOutcome::Applied(a) => {
            body["patched"] = json!(a.patched);
            body["comments"] = json!(a.comments);
            body["conflicts"] = json!(a.conflicts);
            format!(
                "applied ({}, {} comment(s), {} conflict(s))",
                if a.patched { "PATCH" } else { "no PATCH" },
                a.comments,
                a.conflicts
            )
        }
        ReverseOutcome::Parked(reason) => {
            body["error"] = json!(reason);
            format!("parked: {reason}")
        }
        _ => result.to_owned(),
    };
    if stale {
        body["stale_body"] = json!(true);
    }
    // What the body said about itself (caller-chosen text: shortened, printable only).
    let short = |s: &Option<String>| -> String {
        s.as_deref()
            .unwrap_or("?")
            .chars()
            .filter(char::is_ascii_graphic)
            .take(24)
            .collect()
    };
    let line = format!(
        "SentinelWebhook: incident {name} ({} by {}): {detail}{}",
        short(&trigger.event),
        short(&trigger.updated_by_source),
        if stale {
            " (the body was older than the incident)"
        } else {
            ""
        }
    );
    let mut reply = HttpReply::json(status, &body).with_log(line);
    if status == 503 {
        let secs = decide::TRANSIENT_WAIT.as_secs().to_string();
        reply.headers.insert("Retry-After".into(), secs);
    }
    reply
}

#[async_trait::async_trait]
impl WebhookHandler for WebhookService {
    async fn handle(&self, request: HttpRequestData, deadline: Instant) -> HttpReply {
        self.call(&request, deadline).await
    }

    fn reports_timing(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
