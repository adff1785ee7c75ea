//! The Table service client: table creation, single-entity operations and queries.
//! Entity-group transactions are in `batch.rs`.

use super::auth::{Auth, decode_key, http_date};
use super::entity::{Entity, IfMatch, encode, entity_path};
use super::error::error_body;
use super::{TableError, batch};
use crate::config::StorageConfig;
use crate::credentials::TokenSource;
use crate::domain::TenantId;
use reqwest::{Method, RequestBuilder, Response, header::HeaderMap};
use std::sync::Arc;
use std::time::Duration;

/// The REST version we speak (the current Tables version; Azurite needs `--skipApiVersionCheck`
/// only for newer ones).
const API_VERSION: &str = "2019-02-02";
const ACCEPT: &str = "application/json;odata=minimalmetadata";

/// Connection options beyond the [`StorageConfig`].
#[derive(Debug, Clone)]
pub struct TableClientOptions {
    /// Extra trusted root certificates (tests against an HTTPS emulator with its own CA).
    pub root_certificates: Vec<reqwest::Certificate>,
    /// Timeout of each request.
    pub timeout: Duration,
}

impl Default for TableClientOptions {
    fn default() -> Self {
        Self {
            root_certificates: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A query: OData `$filter`, `$select`, `$top` (page size, at most 1,000).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub filter: Option<String>,
    pub select: Option<Vec<String>>,
    pub top: Option<u32>,
}

/// Where the next page of a query starts (`x-ms-continuation-Next*` headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    pub next_partition_key: String,
    pub next_row_key: Option<String>,
}

/// One page of query results.
#[derive(Debug, Clone)]
pub struct Page {
    pub entities: Vec<Entity>,
    pub continuation: Option<Continuation>,
}

/// A client for one table of one account.
#[derive(Debug, Clone)]
pub struct TableClient {
    http: reqwest::Client,
    /// Table endpoint without a trailing `/` (path-style for the emulator).
    base: String,
    table: String,
    auth: Auth,
}

impl TableClient {
    /// A client for `table`. SharedKey configs sign with the account key; identity configs get
    /// tokens for `https://storage.azure.com/.default` in `tenant` from `tokens`.
    pub fn new(
        storage: &StorageConfig,
        table: &str,
        tokens: Arc<dyn TokenSource>,
        tenant: TenantId,
        options: TableClientOptions,
    ) -> Result<Self, TableError> {
        validate_table_name(table)?;
        let auth = match storage {
            StorageConfig::SharedKey { account, key, .. } => Auth::SharedKey {
                account: account.clone(),
                key: decode_key(key.secret())?,
            },
            StorageConfig::Identity { .. } => Auth::Token {
                source: tokens,
                tenant,
            },
        };
        // Never follow a redirect (see `adapters::http::build_client`).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .tls_certs_merge(options.root_certificates)
            .build()
            .map_err(|e| TableError::Rejected(format!("cannot build the HTTP client: {e}")))?;
        let base = storage
            .table_endpoint()
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            http,
            base,
            table: table.to_owned(),
            auth,
        })
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table; an existing table is fine.
    pub async fn create_table_if_missing(&self) -> Result<(), TableError> {
        let body = serde_json::json!({ "TableName": self.table });
        let req = self
            .request(
                Method::POST,
                "Tables",
                Some(("application/json", body.to_string())),
            )
            .await?;
        match send(req.header("Prefer", "return-no-content")).await {
            Ok(_) | Err(TableError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads one entity; `None` when absent.
    pub async fn get(&self, pk: &str, rk: &str) -> Result<Option<Entity>, TableError> {
        let req = self
            .request(Method::GET, &entity_path(&self.table, pk, rk)?, None)
            .await?;
        match send(req).await {
            Ok(resp) => {
                let etag = etag_of(resp.headers());
                let json: serde_json::Value = resp.json().await?;
                Entity::from_json(json, etag).map(Some)
            }
            // A missing table is an error, not a missing entity.
            Err(TableError::NotFound(m)) if !m.contains("TableNotFound") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Inserts a new entity (409 [`TableError::Conflict`] when the key exists); returns its ETag.
    pub async fn insert(&self, e: &Entity) -> Result<String, TableError> {
        super::entity::validate_key("PartitionKey", &e.partition_key)?;
        super::entity::validate_key("RowKey", &e.row_key)?;
        let req = self
            .request(
                Method::POST,
                &self.table,
                Some(("application/json", e.to_json().to_string())),
            )
            .await?;
        written_etag(send(req.header("Prefer", "return-no-content")).await?)
    }

    /// Replaces an existing entity if it matches (412 [`TableError::PreconditionFailed`] when not).
    pub async fn replace(&self, e: &Entity, if_match: &IfMatch) -> Result<String, TableError> {
        self.write(Method::PUT, e, Some(if_match)).await
    }

    /// Merges properties into an existing entity if it matches.
    pub async fn merge(&self, e: &Entity, if_match: &IfMatch) -> Result<String, TableError> {
        self.write(merge_method(), e, Some(if_match)).await
    }

    /// Inserts or replaces, whatever is there (no `If-Match`).
    pub async fn upsert(&self, e: &Entity) -> Result<String, TableError> {
        self.write(Method::PUT, e, None).await
    }

    /// Deletes an entity if it matches.
    pub async fn delete(&self, pk: &str, rk: &str, if_match: &IfMatch) -> Result<(), TableError> {
        let req = self
            .request(Method::DELETE, &entity_path(&self.table, pk, rk)?, None)
            .await?;
        send(req.header("If-Match", if_match.header()))
            .await
            .map(drop)
    }

    async fn write(
        &self,
        method: Method,
        e: &Entity,
        if_match: Option<&IfMatch>,
    ) -> Result<String, TableError> {
        let path = entity_path(&self.table, &e.partition_key, &e.row_key)?;
        let mut req = self
            .request(
                method,
                &path,
                Some(("application/json", e.to_json().to_string())),
            )
            .await?;
        if let Some(m) = if_match {
            req = req.header("If-Match", m.header());
        }
        written_etag(send(req).await?)
    }

    /// One page of a query, starting at `from` (or the beginning).
    pub async fn query(&self, q: &Query, from: Option<&Continuation>) -> Result<Page, TableError> {
        let mut params = Vec::new();
        if let Some(f) = &q.filter {
            params.push(format!("$filter={}", encode(f)));
        }
        if let Some(s) = &q.select {
            params.push(format!("$select={}", encode(&s.join(","))));
        }
        if let Some(t) = q.top {
            params.push(format!("$top={}", t.clamp(1, 1000)));
        }
        if let Some(c) = from {
            params.push(format!(
                "NextPartitionKey={}",
                encode(&c.next_partition_key)
            ));
            if let Some(rk) = &c.next_row_key {
                params.push(format!("NextRowKey={}", encode(rk)));
            }
        }
        let path = if params.is_empty() {
            format!("{}()", self.table)
        } else {
            format!("{}()?{}", self.table, params.join("&"))
        };
        let resp = send(self.request(Method::GET, &path, None).await?).await?;
        let continuation = continuation_of(resp.headers());
        let body: QueryBody = resp.json().await?;
        let entities = body
            .value
            .into_iter()
            .map(|v| Entity::from_json(v, None))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            entities,
            continuation,
        })
    }

    /// All results of a query, following continuation tokens.
    pub async fn query_all(&self, q: &Query) -> Result<Vec<Entity>, TableError> {
        let mut out = Vec::new();
        let mut from = None;
        loop {
            let page = self.query(q, from.as_ref()).await?;
            out.extend(page.entities);
            match page.continuation {
                Some(c) => from = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Runs an entity-group transaction (1–100 operations on one partition, all or nothing).
    /// Returns each operation's new ETag (`None` for deletes).
    pub async fn batch(&self, ops: &[batch::BatchOp]) -> Result<Vec<Option<String>>, TableError> {
        let boundary = format!("batch_{}", uuid::Uuid::new_v4());
        let body = batch::build(&self.base, &self.table, &boundary, ops)?;
        let content_type = format!("multipart/mixed; boundary={boundary}");
        let resp = send(
            self.request(Method::POST, "$batch", Some((&content_type, body)))
                .await?,
        )
        .await?;
        let text = resp.text().await?;
        batch::parse_response(&text, ops.len())
    }

    /// A signed request for `{endpoint}/{resource}` with the common headers.
    async fn request(
        &self,
        method: Method,
        resource: &str,
        body: Option<(&str, String)>,
    ) -> Result<RequestBuilder, TableError> {
        let url = reqwest::Url::parse(&format!("{}/{resource}", self.base))
            .map_err(|e| TableError::Rejected(format!("bad request URL for {resource}: {e}")))?;
        let date = http_date(time::OffsetDateTime::now_utc());
        let content_type = body.as_ref().map_or("", |(ct, _)| *ct);
        let authorization = self
            .auth
            .header(method.as_str(), content_type, &date, url.path())
            .await?;
        let mut req = self
            .http
            .request(method, url)
            .header("x-ms-date", date)
            .header("x-ms-version", API_VERSION)
            .header("DataServiceVersion", "3.0;NetFx")
            .header("MaxDataServiceVersion", "3.0;NetFx")
            .header("Accept", ACCEPT)
            .header("Authorization", authorization);
        if let Some((ct, body)) = body {
            req = req.header("Content-Type", ct).body(body);
        }
        Ok(req)
    }
}

#[derive(serde::Deserialize)]
struct QueryBody {
    #[serde(default)]
    value: Vec<serde_json::Value>,
}

fn merge_method() -> Method {
    // MERGE is a valid token; from_bytes only fails on invalid characters.
    Method::from_bytes(b"MERGE").unwrap_or(Method::PATCH)
}

/// Table names: 3–63 letters and digits, starting with a letter.
fn validate_table_name(t: &str) -> Result<(), TableError> {
    let ok = (3..=63).contains(&t.len())
        && t.starts_with(|c: char| c.is_ascii_alphabetic())
        && t.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(TableError::Rejected(format!(
            "'{t}' is not a table name (3-63 letters and digits, starting with a letter)"
        )))
    }
}

/// Sends a request and turns any non-2xx status into a typed error.
async fn send(req: RequestBuilder) -> Result<Response, TableError> {
    let waiting = crate::call_clock::wait(crate::call_clock::Wait::Upstream);
    let resp = req.send().await;
    drop(waiting);
    let resp = resp?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(crate::adapters::http::seconds);
    let header_code = resp
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.unwrap_or_default();
    let (code, message) = error_body(&text);
    let code = if header_code.is_empty() {
        code
    } else {
        header_code
    };
    Err(TableError::from_status(
        status,
        &code,
        &message,
        retry_after,
    ))
}

fn etag_of(h: &HeaderMap) -> Option<String> {
    h.get("ETag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn written_etag(resp: Response) -> Result<String, TableError> {
    etag_of(resp.headers()).ok_or_else(|| {
        TableError::Rejected("the write succeeded but the response has no ETag".into())
    })
}

fn continuation_of(h: &HeaderMap) -> Option<Continuation> {
    let get = |k: &str| {
        h.get(k)
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Some(Continuation {
        next_partition_key: get("x-ms-continuation-NextPartitionKey")?,
        next_row_key: get("x-ms-continuation-NextRowKey"),
    })
}
