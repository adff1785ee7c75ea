//! `LogsClient`: the HTTP side of [`LogsIngest`] (Azure Monitor Logs Ingestion API).

use super::LogsError;
use super::{batch, rows};
use crate::adapters::http::{self, Call, CallCounts, HttpClient, Limit, RetryPolicy};
use crate::config::LogsSettings;
use crate::credentials::{TokenSource, scopes};
use crate::domain::TenantId;
use crate::ports::{AlertRecord, LogsIngest};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use url::Url;

const API_VERSION: &str = "2023-01-01";
/// The service's limit per call, counted on the compressed and the uncompressed body alike.
pub const MAX_CALL_BYTES: usize = 1_000_000;

/// Uploads alert and evidence rows to one DCR stream.
#[derive(Debug)]
pub struct LogsClient {
    url: Url,
    /// `{LOGS_INGESTION_AUDIENCE}/.default`.
    scope: String,
    tenant: TenantId,
    http: HttpClient,
    max_bytes: usize,
}

impl LogsClient {
    /// `settings` name the endpoint (DCR or DCE ingestion URL), the DCR immutable id and the
    /// stream; tokens for its audience (`https://monitor.azure.com/.default` in the public cloud,
    /// `https://monitor.azure.us/.default` in Azure Government, …) are asked in `tenant`.
    pub fn new(
        settings: &LogsSettings,
        tenant: TenantId,
        tokens: Arc<dyn TokenSource>,
        timeout: Duration,
    ) -> Result<Self, LogsError> {
        if !matches!(settings.endpoint.scheme(), "http" | "https") {
            return Err(LogsError::Rejected {
                status: 0,
                message: format!("Logs endpoint {} is not http(s)", settings.endpoint),
            });
        }
        let url = http::with_query(
            http::join(
                &settings.endpoint,
                &[
                    "dataCollectionRules",
                    &settings.dcr_immutable_id,
                    "streams",
                    &settings.stream_name,
                ],
            ),
            &[("api-version", API_VERSION)],
        );
        let http = HttpClient::new(tokens, timeout, RetryPolicy::default())
            .map_err(|e| LogsError::Transient(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            url,
            scope: scopes::of(&settings.audience),
            tenant,
            http,
            max_bytes: MAX_CALL_BYTES,
        })
    }

    /// From the handler's settings; `Ok(None)` when alert ingestion is off (no `LOGS_*` settings).
    pub fn from_settings(
        settings: &crate::config::Settings,
        tokens: Arc<dyn TokenSource>,
        timeout: Duration,
    ) -> Result<Option<Self>, LogsError> {
        settings
            .logs
            .as_ref()
            .map(|l| Self::new(l, settings.azure_tenant_id.clone(), tokens, timeout))
            .transpose()
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.http = self.http.with_policy(policy);
        self
    }

    /// Lowers the per-call limit (tests exercise batching with small payloads).
    pub fn with_max_call_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.clamp(1024, MAX_CALL_BYTES);
        self
    }

    /// Requests sent, retried and throttled so far.
    pub fn counts(&self) -> CallCounts {
        self.http.counts()
    }

    /// A row serialized, cut to fit one call with room for the array brackets.
    fn serialized(&self, row: rows::Row<'_>) -> Result<Vec<u8>, LogsError> {
        rows::serialize_within(row, self.max_bytes - 2).map_err(|e| LogsError::Rejected {
            status: 0,
            message: format!("a row does not serialize: {e}"),
        })
    }

    /// Uploads rows that fit one call; a range the service finds too large (413) is halved.
    /// Returns the calls made.
    async fn upload_all(&self, rows: &[Vec<u8>]) -> Result<usize, LogsError> {
        let mut pending: Vec<std::ops::Range<usize>> = batch::split(rows, self.max_bytes)
            .into_iter()
            .rev()
            .collect();
        let mut calls = 0usize;
        while let Some(range) = pending.pop() {
            calls += 1;
            if self.upload(&rows[range.clone()]).await? {
                continue;
            }
            if range.len() < 2 {
                return Err(LogsError::Rejected {
                    status: 413,
                    message: "one row is larger than the service accepts".into(),
                });
            }
            let mid = range.start + range.len() / 2;
            tracing::warn!(
                message = "Logs Ingestion batch too large; splitting.",
                rows = range.len()
            );
            pending.push(mid..range.end);
            pending.push(range.start..mid);
        }
        Ok(calls)
    }

    /// Sends an empty batch (`[]`, no rows): the permission probe of `check`.
    pub async fn probe(&self) -> Result<(), LogsError> {
        self.upload(&[]).await.map(|_| ())
    }

    /// One call; `Ok(false)` when the service answered 413 (too large) so the caller splits.
    async fn upload(&self, rows: &[Vec<u8>]) -> Result<bool, LogsError> {
        let body = batch::json_array(rows);
        let gz = batch::gzip(&body).map_err(|e| LogsError::Transient(format!("gzip: {e}")))?;
        if gz.len() > self.max_bytes {
            return Ok(false);
        }
        let gz = bytes::Bytes::from(gz);
        let call = Call {
            tenant: &self.tenant,
            scope: &self.scope,
            idempotent: true,
            limit: Limit::None,
            op: "logs.upload",
        };
        let resp = self
            .http
            .execute(call, |c| {
                c.post(self.url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(reqwest::header::CONTENT_ENCODING, "gzip")
                    .body(gz.clone())
            })
            .await?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            413 => Ok(false),
            _ => Err(http::error_info(resp).await.into()),
        }
    }
}

#[async_trait::async_trait]
impl LogsIngest for LogsClient {
    /// Rows are serialized as they are sent, one call's worth at a time (a batch of a few
    /// hundred incidents makes megabytes of rows). A row that cannot be serialized fails the
    /// call after the calls before it went through; rows carry stable ids, so sending them
    /// again is harmless.
    async fn ship_alerts(&self, alerts: &[AlertRecord]) -> Result<(), LogsError> {
        let now = OffsetDateTime::now_utc();
        let mut chunker = batch::Chunker::new(self.max_bytes);
        let (mut rows, mut calls) = (0usize, 0usize);
        for record in alerts {
            for row in rows::rows_for(record, now) {
                rows += 1;
                if let Some(full) = chunker.push(self.serialized(row)?) {
                    calls += self.upload_all(&full).await?;
                }
            }
        }
        if let Some(last) = chunker.finish() {
            calls += self.upload_all(&last).await?;
        }
        tracing::debug!(
            message = "Alerts shipped.",
            alerts = alerts.len(),
            rows,
            calls
        );
        Ok(())
    }
}
