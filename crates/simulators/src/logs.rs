//! Azure Monitor Logs Ingestion API: `POST /dataCollectionRules/{id}/streams/{stream}`.

use crate::state::{Shared, lock};
use crate::util::{azure_core_error, query_map};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

/// Rows received, per stream, in arrival order.
#[derive(Debug, Default)]
pub struct LogsStore {
    pub rows: BTreeMap<String, Vec<Value>>,
    /// Number of accepted uploads per stream.
    pub uploads: BTreeMap<String, u64>,
}

/// Routes of the Logs Ingestion simulator (behind the gate).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/dataCollectionRules/{dcr}/streams/{stream}", post(upload))
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(shared)
}

fn bad(code: &str, msg: &str) -> Response {
    azure_core_error(StatusCode::BAD_REQUEST, code, msg)
}

fn too_large(limit: usize) -> Response {
    azure_core_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "ContentLengthLimitExceeded",
        &format!(
            "Maximum allowed content length: {limit} bytes (1 MB). Provided content length exceeds the limit."
        ),
    )
}

async fn upload(
    State(s): State<Arc<Shared>>,
    Path((dcr, stream)): Path<(String, String)>,
    RawQuery(rq): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = query_map(rq.as_deref());
    if q.get("api-version").map(String::as_str) != Some("2023-01-01") {
        return bad(
            "InvalidApiVersion",
            "The api-version query parameter must be '2023-01-01'.",
        );
    }
    let cfg = &s.cfg.logs;
    if dcr != cfg.dcr_immutable_id {
        return azure_core_error(
            StatusCode::NOT_FOUND,
            "DcrNotFound",
            &format!("Data collection rule with immutable Id '{dcr}' not found."),
        );
    }
    let Some(columns) = cfg.streams.get(&stream) else {
        return bad(
            "InvalidStream",
            &format!("Stream '{stream}' is not declared in data collection rule '{dcr}'."),
        );
    };
    let limit = cfg.max_body_bytes;
    if body.len() > limit {
        return too_large(limit);
    }
    let gz = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let raw: std::borrow::Cow<'_, [u8]> = if gz {
        // Sized from the gzip trailer (ISIZE, the uncompressed length; only a hint, capped by
        // the limit) so the buffer is not regrown and copied by doubling up to a megabyte.
        let hint = body
            .len()
            .checked_sub(4)
            .and_then(|i| body.get(i..))
            .and_then(|t| <[u8; 4]>::try_from(t).ok())
            .map_or(0, |t| u32::from_le_bytes(t) as usize);
        let mut out = Vec::with_capacity(hint.min(limit + 1));
        let read = flate2::read::GzDecoder::new(&body[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out);
        if read.is_err() {
            return bad(
                "InvalidContentEncoding",
                "The request body could not be decompressed as gzip.",
            );
        }
        if out.len() > limit {
            return too_large(limit);
        }
        out.into()
    } else {
        body[..].into()
    };
    let rows = match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Array(rows)) => rows,
        Ok(_) => {
            return bad(
                "InvalidPayload",
                "The request body must be a JSON array of objects.",
            );
        }
        Err(e) => return bad("InvalidPayload", &format!("Malformed JSON: {e}")),
    };
    if let Err(m) = check_columns(&rows, columns) {
        return bad("InvalidPayload", &m);
    }
    let mut st = lock(&s.logs);
    *st.uploads.entry(stream.clone()).or_default() += 1;
    st.rows.entry(stream).or_default().extend(rows);
    StatusCode::NO_CONTENT.into_response()
}

/// Every row an object whose keys are declared columns (an empty declaration accepts any).
fn check_columns(rows: &[Value], columns: &[String]) -> Result<(), String> {
    for (i, r) in rows.iter().enumerate() {
        let Some(o) = r.as_object() else {
            return Err(format!("Item {i} of the array is not a JSON object."));
        };
        if columns.is_empty() {
            continue;
        }
        if let Some(k) = o.keys().find(|k| !columns.iter().any(|c| c == *k)) {
            return Err(format!(
                "Item {i}: column '{k}' is not declared in the stream."
            ));
        }
    }
    Ok(())
}
