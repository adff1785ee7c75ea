//! Small shared pieces: Microsoft's timestamp format, error envelopes, query parsing.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `2021-08-13T08:43:35.5533333Z`: 7 fractional digits and `Z`, as Graph and ARM write them.
pub fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}

/// Parses an ISO-8601 / RFC 3339 timestamp (any number of fractional digits).
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).ok()
}

/// Now, truncated to the 100 ns resolution the services store.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    let ns = t.nanosecond() / 100 * 100;
    t.replace_nanosecond(ns).unwrap_or(t)
}

/// Graph's error envelope with `innerError`.
pub fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": fmt_time(now()).trim_end_matches('Z').split('.').next().unwrap_or_default(),
            "request-id": uuid::Uuid::new_v4().to_string(),
            "client-request-id": uuid::Uuid::new_v4().to_string(),
        }
    }});
    (status, axum::Json(body)).into_response()
}

/// ARM's CloudError envelope.
pub fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(code) {
        r.headers_mut().insert("x-ms-failure-cause", v);
    }
    r
}

/// Azure.Core error (Logs Ingestion): envelope plus `x-ms-error-code`.
pub fn azure_core_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(code) {
        r.headers_mut().insert("x-ms-error-code", v);
    }
    r
}

/// Query string decoded into a map (last value wins), keeping `$` names.
pub fn query_map(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// JSON response with status.
pub fn json_response(status: StatusCode, v: &Value) -> Response {
    (status, axum::Json(v)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_seven_digits() {
        let t = parse_time("2021-08-13T08:43:35.5533333Z").unwrap();
        assert_eq!(fmt_time(t), "2021-08-13T08:43:35.5533333Z");
        let t = parse_time("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(fmt_time(t), "2024-05-01T10:00:00.0000000Z");
    }
}
