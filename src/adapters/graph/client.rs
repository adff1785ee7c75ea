//! `GraphClient`: the HTTP side of [`DefenderApi`].

use super::users::UserCache;
use super::wire::{CommentsDto, PageDto, UserDto};
use super::{DefenderError, mapping, request};
use crate::adapters::http::{
    self, Call, CallCounts, HttpClient, Limit, RetryPolicy, TenantLimiter,
};
use crate::config::ClientLimits;
use crate::credentials::{TokenSource, scopes};
use crate::domain::*;
use crate::ports::{DefenderApi, DefenderPatch, IncidentPage, IncidentWindow};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// Incidents per page: the most `/security/incidents` accepts.
const PAGE_SIZE: &str = "50";
/// Makes Graph send evolvable enum members (`awaitingAction`, newer sources) instead of `unknownFutureValue`.
const PREFER: &str = "include-unknown-enum-members";

/// Microsoft Graph security client for many Defender tenants (one token per tenant) plus user
/// look-ups in the Sentinel tenant.
#[derive(Debug)]
pub struct GraphClient {
    endpoint: Url,
    /// `{GRAPH_ENDPOINT origin}/.default`: Graph's audience in its cloud.
    scope: String,
    http: HttpClient,
    limiter: Arc<TenantLimiter>,
    users_tenant: TenantId,
    users: UserCache,
    /// Twice the call timeout: see [`DefenderApi::write_settle`].
    settle: Duration,
}

impl GraphClient {
    /// `endpoint` is the Graph root (`https://graph.microsoft.com`, `https://graph.microsoft.us`,
    /// … or a simulator's URL); tokens are asked for its own audience (`{endpoint}/.default`);
    /// `users_tenant` is where owners are resolved (the Sentinel tenant, `AZURE_TENANT_ID`).
    /// `/security` calls are paced at `limits.graph_per_minute` per tenant.
    pub fn new(
        endpoint: Url,
        tokens: Arc<dyn TokenSource>,
        users_tenant: TenantId,
        limits: &ClientLimits,
        timeout: Duration,
    ) -> Result<Self, DefenderError> {
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(DefenderError::Rejected {
                status: 0,
                message: format!("Graph endpoint {endpoint} is not http(s)"),
            });
        }
        let http = HttpClient::new(tokens, timeout, RetryPolicy::default())
            .map_err(|e| DefenderError::Transient(format!("cannot build the HTTP client: {e}")))?
            .with_request_id_header(http::GRAPH_REQUEST_ID);
        Ok(Self {
            scope: scopes::of(&endpoint),
            endpoint,
            http,
            limiter: Arc::new(http::per_tenant_per_minute(limits.graph_per_minute)),
            users_tenant,
            users: UserCache::new(Duration::from_secs(3600), Duration::from_secs(900)),
            // A request cut off by the timeout may still reach the service and be applied
            // late; twice the timeout outlasts a request that was still being sent or queued.
            settle: timeout.saturating_mul(2),
        })
    }

    /// From the handler's settings: `GRAPH_ENDPOINT`, users resolved in `AZURE_TENANT_ID`, `limits`.
    pub fn from_settings(
        settings: &crate::config::Settings,
        tokens: Arc<dyn TokenSource>,
        timeout: Duration,
    ) -> Result<Self, DefenderError> {
        Self::new(
            settings.graph_endpoint.clone(),
            tokens,
            settings.azure_tenant_id.clone(),
            &settings.limits,
            timeout,
        )
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.http = self.http.with_policy(policy);
        self
    }

    /// Sets how long a resolved user (`positive`) and a "no such user" (`negative`) are cached.
    pub fn with_user_cache_ttl(mut self, positive: Duration, negative: Duration) -> Self {
        self.users = UserCache::new(positive, negative);
        self
    }

    /// Requests sent, retried and throttled so far.
    pub fn counts(&self) -> CallCounts {
        self.http.counts()
    }

    fn security_url(&self, segments: &[&str]) -> Url {
        let mut all = vec!["v1.0", "security"];
        all.extend_from_slice(segments);
        http::join(&self.endpoint, &all)
    }

    /// Sends a `/security` request (paced per tenant) and returns the parsed 2xx body.
    async fn call<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        op: &'static str,
        idempotent: bool,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<T, DefenderError> {
        let call = Call {
            tenant,
            scope: &self.scope,
            idempotent,
            limit: Limit::Tenant(&self.limiter, tenant),
            op,
        };
        let resp = self
            .http
            .execute(call, |c| make(c).header("Prefer", PREFER))
            .await?;
        if !resp.status().is_success() {
            return Err(http::error_info(resp).await.into());
        }
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| DefenderError::Transient(format!("reading the Graph answer: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| DefenderError::Rejected {
            status,
            message: format!("{op}: the answer does not parse: {e}"),
        })
    }

    async fn get_page(
        &self,
        tenant: &TenantId,
        url: Url,
        op: &'static str,
    ) -> Result<PageDto, DefenderError> {
        self.call(tenant, op, true, |c| c.get(url.clone())).await
    }

    /// Refuses a next link off the configured Graph host: it would receive our bearer token.
    fn checked_link(&self, link: &str) -> Result<Url, DefenderError> {
        let url = Url::parse(link).map_err(|e| DefenderError::Rejected {
            status: 200,
            message: format!("@odata.nextLink '{link}' is not a URL: {e}"),
        })?;
        if !http::same_origin(&self.endpoint, &url) {
            return Err(DefenderError::Rejected {
                status: 200,
                message: format!(
                    "refusing to follow @odata.nextLink to {} (not the configured Graph host {})",
                    url.origin().ascii_serialization(),
                    self.endpoint.origin().ascii_serialization()
                ),
            });
        }
        Ok(url)
    }

    /// Maps a page item by item; unmappable items are reported, not fatal.
    fn incident_page(
        &self,
        tenant: &TenantId,
        page: PageDto,
    ) -> Result<IncidentPage, DefenderError> {
        let next_link = match page.next_link {
            Some(link) => Some(self.checked_link(&link)?.to_string()),
            None => None,
        };
        let mut incidents = Vec::with_capacity(page.value.len());
        let mut unmappable = Vec::new();
        for raw in page.value {
            match mapping::incident(tenant, &raw) {
                Ok(i) => incidents.push(i),
                Err(error) => {
                    let id = mapping::id_hint(&raw);
                    tracing::warn!(message = "Defender incident cannot be mapped.", %tenant, incident_id = %id, %error);
                    unmappable.push((id, error));
                }
            }
        }
        Ok(IncidentPage {
            incidents,
            next_link,
            unmappable,
        })
    }

    /// `GET /v1.0/security/{segments}?{query}` in `tenant`, paced and retried like every
    /// `/security` call, parsed as `T` (for the unified target's own wire types).
    pub(crate) async fn get_security<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        segments: &[&str],
        query: &[(&str, &str)],
        op: &'static str,
    ) -> Result<T, DefenderError> {
        let url = http::with_query(self.security_url(segments), query);
        self.call(tenant, op, true, |c| c.get(url.clone())).await
    }

    /// `GET` of an `@odata.nextLink` (only on the configured Graph host), parsed as `T`.
    pub(crate) async fn get_next<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        link: &str,
        op: &'static str,
    ) -> Result<T, DefenderError> {
        let url = self.checked_link(link)?;
        self.call(tenant, op, true, |c| c.get(url.clone())).await
    }

    /// `GET /security/incidents/{id}?$expand=alerts` under operation name `op` (the unified
    /// target names its calls in the workspace tenant apart from the Defender tenants' ones).
    pub(crate) async fn get_incident_as(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        op: &'static str,
    ) -> Result<Option<DefenderIncident>, DefenderError> {
        let url = http::with_query(
            self.security_url(&["incidents", id.as_str()]),
            &[("$expand", "alerts")],
        );
        let raw: Box<serde_json::value::RawValue> =
            match self.call(tenant, op, true, |c| c.get(url.clone())).await {
                Err(DefenderError::NotFound) => return Ok(None),
                other => other?,
            };
        mapping::incident(tenant, &raw)
            .map(Some)
            .map_err(|message| DefenderError::Rejected {
                status: 200,
                message,
            })
    }

    /// `PATCH /security/incidents/{id}` under operation name `op`.
    pub(crate) async fn update_incident_as(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        patch: &DefenderPatch,
        op: &'static str,
    ) -> Result<DefenderIncident, DefenderError> {
        let body = request::patch_body(patch)
            .map_err(|message| DefenderError::Rejected { status: 0, message })?;
        let url = self.security_url(&["incidents", id.as_str()]);
        let raw: Box<serde_json::value::RawValue> = self
            .call(tenant, op, true, |c| c.patch(url.clone()).json(&body))
            .await?;
        mapping::incident(tenant, &raw).map_err(|message| DefenderError::Rejected {
            status: 200,
            message,
        })
    }

    /// `POST /security/incidents/{id}/comments` under operation name `op`.
    pub(crate) async fn add_comment_as(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        text: &str,
        op: &'static str,
    ) -> Result<Vec<DefenderComment>, DefenderError> {
        let body = request::comment_body(text);
        let url = self.security_url(&["incidents", id.as_str(), "comments"]);
        // Not idempotent: a repeat would add the comment twice, so only 429 / no-connection are retried.
        let answer: CommentsDto = self
            .call(tenant, op, false, |c| c.post(url.clone()).json(&body))
            .await?;
        Ok(answer.value.into_iter().map(mapping::comment).collect())
    }

    fn window_url(&self, window: &IncidentWindow, extra: &[(&str, &str)]) -> Url {
        let filter = request::window_filter(window);
        let mut pairs = vec![("$filter", filter.as_str())];
        pairs.extend_from_slice(extra);
        http::with_query(self.security_url(&["incidents"]), &pairs)
    }
}

#[async_trait::async_trait]
impl DefenderApi for GraphClient {
    async fn count_incidents(
        &self,
        tenant: &TenantId,
        window: &IncidentWindow,
    ) -> Result<Option<u64>, DefenderError> {
        let url = self.window_url(window, &[("$count", "true"), ("$top", "1")]);
        let page = self.get_page(tenant, url, "graph.count_incidents").await?;
        Ok(page.count)
    }

    async fn list_incidents(
        &self,
        tenant: &TenantId,
        window: &IncidentWindow,
        expand_alerts: bool,
    ) -> Result<IncidentPage, DefenderError> {
        let mut extra = vec![("$top", PAGE_SIZE)];
        if expand_alerts {
            extra.push(("$expand", "alerts"));
        }
        let url = self.window_url(window, &extra);
        let page = self.get_page(tenant, url, "graph.list_incidents").await?;
        self.incident_page(tenant, page)
    }

    async fn next_page(
        &self,
        tenant: &TenantId,
        next_link: &str,
    ) -> Result<IncidentPage, DefenderError> {
        let url = self.checked_link(next_link)?;
        let page = self.get_page(tenant, url, "graph.next_page").await?;
        self.incident_page(tenant, page)
    }

    async fn get_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<Option<DefenderIncident>, DefenderError> {
        self.get_incident_as(tenant, id, "graph.get_incident").await
    }

    /// `GET /security/incidents/{id}?$expand=alerts`: the documented way to one incident's
    /// alerts (`alerts_v2` cannot be filtered by incident: its filterable properties are
    /// assignedTo, classification, determination, createdDateTime, lastUpdateDateTime, severity,
    /// serviceSource and status). An incident gone meanwhile has no alerts to ship.
    async fn alerts_for_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<Vec<Alert>, DefenderError> {
        let url = http::with_query(
            self.security_url(&["incidents", id.as_str()]),
            &[("$expand", "alerts")],
        );
        let raw: Box<serde_json::value::RawValue> = match self
            .call(tenant, "graph.alerts_for_incident", true, |c| {
                c.get(url.clone())
            })
            .await
        {
            Err(DefenderError::NotFound) => return Ok(Vec::new()),
            other => other?,
        };
        let incident =
            mapping::incident(tenant, &raw).map_err(|message| DefenderError::Rejected {
                status: 200,
                message,
            })?;
        Ok(incident.alerts.unwrap_or_default())
    }

    async fn update_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        patch: &DefenderPatch,
    ) -> Result<DefenderIncident, DefenderError> {
        self.update_incident_as(tenant, id, patch, "graph.update_incident")
            .await
    }

    async fn add_comment(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        text: &str,
    ) -> Result<Vec<DefenderComment>, DefenderError> {
        self.add_comment_as(tenant, id, text, "graph.add_comment")
            .await
    }

    fn write_settle(&self) -> Duration {
        self.settle
    }

    async fn resolve_user(&self, upn: &str) -> Result<Option<UserRef>, DefenderError> {
        let upn = upn.trim();
        if upn.is_empty() {
            return Ok(None);
        }
        if let Some(hit) = self.users.get(upn, Instant::now()) {
            return Ok(hit);
        }
        let url = http::with_query(
            http::join(&self.endpoint, &["v1.0", "users", upn]),
            &[("$select", "id,userPrincipalName,mail,displayName")],
        );
        let call = Call {
            tenant: &self.users_tenant,
            scope: &self.scope,
            idempotent: true,
            limit: Limit::None,
            op: "graph.resolve_user",
        };
        let resp = self.http.execute(call, |c| c.get(url.clone())).await?;
        let user = match resp.status().as_u16() {
            200 => {
                let dto: UserDto = resp
                    .json()
                    .await
                    .map_err(|e| DefenderError::Transient(format!("user answer: {e}")))?;
                mapping::user(dto, upn)
            }
            // 400 is what Graph says for a UPN it cannot even look up (bad characters): no such user.
            404 | 400 => None,
            _ => {
                return Err(match DefenderError::from(http::error_info(resp).await) {
                    DefenderError::Auth { status, message } => {
                        DefenderError::UserLookupDenied { status, message }
                    }
                    other => other,
                });
            }
        };
        self.users.put(upn, user.clone(), Instant::now());
        Ok(user)
    }
}
