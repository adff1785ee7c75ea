//! `SentinelClient`: the HTTP side of [`SentinelApi`] (ARM, `Microsoft.SecurityInsights`).

use super::SentinelError;
use super::wire::{CommentDto, IncidentDto, ListDto, PutDto};
use crate::adapters::http::{
    self, BucketLimiter, Call, CallCounts, HttpClient, Limit, RetryPolicy,
};
use crate::config::{ClientLimits, SentinelWorkspace};
use crate::credentials::{TokenSource, scopes};
use crate::domain::*;
use crate::ports::{SentinelApi, SentinelPage};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

const API_VERSION: &str = "2024-03-01";
/// The most `Incidents_List` returns per page.
const LIST_TOP: &str = "1000";

/// Sentinel incidents and comments of one workspace, with ARM writes paced by a token bucket.
#[derive(Debug)]
pub struct SentinelClient {
    endpoint: Url,
    /// `{ARM_ENDPOINT origin}/.default`: ARM's audience in its cloud.
    scope: String,
    workspace: SentinelWorkspace,
    tenant: TenantId,
    http: HttpClient,
    writes: Arc<BucketLimiter>,
    /// ARM reads of the subscription (burst 250, refill 25/s): list pages, GETs, comment lists.
    reads: Arc<BucketLimiter>,
}

impl SentinelClient {
    /// `endpoint` is the ARM root (`https://management.azure.com`, `https://management.usgovcloudapi.net`,
    /// … or a simulator's URL); tokens for its own audience (`{endpoint}/.default`) are asked in `tenant` (the workspace's, `AZURE_TENANT_ID`). Writes are paced at
    /// `limits.arm_write_burst` / `limits.arm_writes_per_second`, reads at `limits.arm_read_burst` /
    /// `limits.arm_reads_per_second`.
    pub fn new(
        endpoint: Url,
        workspace: SentinelWorkspace,
        tenant: TenantId,
        tokens: Arc<dyn TokenSource>,
        limits: &ClientLimits,
        timeout: Duration,
    ) -> Result<Self, SentinelError> {
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(SentinelError::Rejected {
                status: 0,
                message: format!("ARM endpoint {endpoint} is not http(s)"),
            });
        }
        let http = HttpClient::new(tokens, timeout, RetryPolicy::default())
            .map_err(|e| SentinelError::Transient(format!("cannot build the HTTP client: {e}")))?;
        let writes = Arc::new(http::token_bucket(
            limits.arm_write_burst,
            limits.arm_writes_per_second,
        ));
        let reads = Arc::new(http::token_bucket(
            limits.arm_read_burst,
            limits.arm_reads_per_second,
        ));
        Ok(Self {
            scope: scopes::of(&endpoint),
            endpoint,
            workspace,
            tenant,
            http,
            writes,
            reads,
        })
    }

    /// From the handler's settings: `ARM_ENDPOINT`, the workspace, tokens in `AZURE_TENANT_ID`, `limits`.
    pub fn from_settings(
        settings: &crate::config::Settings,
        tokens: Arc<dyn TokenSource>,
        timeout: Duration,
    ) -> Result<Self, SentinelError> {
        Self::new(
            settings.arm_endpoint.clone(),
            settings.workspace.clone(),
            settings.azure_tenant_id.clone(),
            tokens,
            &settings.limits,
            timeout,
        )
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.http = self.http.with_policy(policy);
        self
    }

    /// Requests sent, retried and throttled so far.
    pub fn counts(&self) -> CallCounts {
        self.http.counts()
    }

    /// `…/workspaces/{ws}/providers/Microsoft.SecurityInsights/incidents[/…]?api-version=…`.
    fn url(&self, tail: &[&str]) -> Url {
        let w = &self.workspace;
        let mut segments = vec![
            "subscriptions",
            &w.subscription_id,
            "resourceGroups",
            &w.resource_group,
            "providers",
            "Microsoft.OperationalInsights",
            "workspaces",
            &w.workspace_name,
            "providers",
            "Microsoft.SecurityInsights",
            "incidents",
        ];
        segments.extend_from_slice(tail);
        http::with_query(
            http::join(&self.endpoint, &segments),
            &[("api-version", API_VERSION)],
        )
    }

    async fn call<T: DeserializeOwned>(
        &self,
        op: &'static str,
        write: bool,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<T, SentinelError> {
        let limit = if write {
            Limit::Bucket(&self.writes)
        } else {
            Limit::Bucket(&self.reads)
        };
        // GET and PUT (with a client-chosen name) are idempotent.
        let call = Call {
            tenant: &self.tenant,
            scope: &self.scope,
            idempotent: true,
            limit,
            op,
        };
        let resp = self.http.execute(call, make).await?;
        if !resp.status().is_success() {
            return Err(http::error_info(resp).await.into());
        }
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| SentinelError::Transient(format!("reading the ARM answer: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| SentinelError::Rejected {
            status,
            message: format!("{op}: the answer does not parse: {e}"),
        })
    }

    fn checked_link(&self, link: &str) -> Result<Url, SentinelError> {
        let url = Url::parse(link).map_err(|e| SentinelError::Rejected {
            status: 200,
            message: format!("nextLink '{link}' is not a URL: {e}"),
        })?;
        if !http::same_origin(&self.endpoint, &url) {
            return Err(SentinelError::Rejected {
                status: 200,
                message: format!(
                    "refusing to follow nextLink to {} (not the configured ARM host)",
                    url.origin().ascii_serialization()
                ),
            });
        }
        Ok(url)
    }

    fn map(dto: IncidentDto) -> Result<SentinelIncident, SentinelError> {
        SentinelIncident::try_from(dto).map_err(|message| SentinelError::Rejected {
            status: 200,
            message,
        })
    }
}

#[async_trait::async_trait]
impl SentinelApi for SentinelClient {
    async fn get_incident(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Option<SentinelIncident>, SentinelError> {
        let url = self.url(&[&name.to_string()]);
        match self
            .call::<IncidentDto>("arm.get_incident", false, |c| c.get(url.clone()))
            .await
        {
            Ok(dto) => Self::map(dto).map(Some),
            Err(SentinelError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put_incident(
        &self,
        incident: &SentinelIncident,
    ) -> Result<SentinelIncident, SentinelError> {
        let body = PutDto::try_from(incident)
            .map_err(|message| SentinelError::Rejected { status: 0, message })?;
        let url = self.url(&[&incident.name.to_string()]);
        let dto: IncidentDto = self
            .call("arm.put_incident", true, |c| c.put(url.clone()).json(&body))
            .await?;
        Self::map(dto)
    }

    async fn list_modified_since(
        &self,
        since: OffsetDateTime,
        next_link: Option<&str>,
    ) -> Result<SentinelPage, SentinelError> {
        let url = match next_link {
            Some(link) => self.checked_link(link)?,
            None => {
                let since = since
                    .to_offset(time::UtcOffset::UTC)
                    .format(&Rfc3339)
                    .unwrap_or_default();
                let filter = format!("properties/lastModifiedTimeUtc ge {since}");
                // Oldest change first, so a poll cut short has read the earliest changes.
                http::with_query(
                    self.url(&[]),
                    &[
                        ("$filter", &filter),
                        ("$orderby", "properties/lastModifiedTimeUtc asc"),
                        ("$top", LIST_TOP),
                    ],
                )
            }
        };
        // Items stay raw until mapped one by one, so one that does not even parse (a lone
        // surrogate, a wrong type) is skipped like one that does not map, not the whole page.
        let page: ListDto<Box<serde_json::value::RawValue>> = self
            .call("arm.list_incidents", false, |c| c.get(url.clone()))
            .await?;
        let next_link = match page.next_link {
            Some(link) => Some(self.checked_link(&link)?.to_string()),
            None => None,
        };
        let mut incidents = Vec::with_capacity(page.value.len());
        for raw in page.value {
            let dto = serde_json::from_str::<IncidentDto>(raw.get())
                .map_err(|e| format!("incident does not parse: {e}"));
            match dto.and_then(SentinelIncident::try_from) {
                Ok(i) => incidents.push(i),
                // Not ours to fix and never a reason to stall the reverse sync: said, then skipped.
                Err(error) => {
                    tracing::warn!(message = "Sentinel incident cannot be mapped; skipped.", %error)
                }
            }
        }
        Ok(SentinelPage {
            incidents,
            next_link,
        })
    }

    async fn list_comments(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Vec<SentinelComment>, SentinelError> {
        let mut url = self.url(&[&name.to_string(), "comments"]);
        let mut comments = Vec::new();
        loop {
            let page: ListDto<CommentDto> = self
                .call("arm.list_comments", false, |c| c.get(url.clone()))
                .await?;
            comments.extend(page.value.into_iter().map(SentinelComment::from));
            match page.next_link {
                Some(link) => url = self.checked_link(&link)?,
                None => return Ok(comments),
            }
        }
    }

    async fn put_comment(
        &self,
        name: &SentinelIncidentName,
        comment_id: uuid::Uuid,
        message: &str,
    ) -> Result<SentinelComment, SentinelError> {
        let url = self.url(&[&name.to_string(), "comments", &comment_id.to_string()]);
        let body = serde_json::json!({"properties": {"message": message}});
        let dto: CommentDto = self
            .call("arm.put_comment", true, |c| c.put(url.clone()).json(&body))
            .await?;
        Ok(dto.into())
    }
}
