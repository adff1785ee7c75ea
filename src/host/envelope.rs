//! The invocation envelope the host POSTs (`{"Data","Metadata"}`) and the reply it expects
//! (`{"Outputs","Logs","ReturnValue"}`, always 200 with a JSON body: a non-2xx reply fails
//! the invocation and drops its logs, an empty body hangs it).

use super::plugins::HttpReply;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The host's request.
#[derive(Debug, Clone, Deserialize)]
pub struct InvocationRequest {
    /// Trigger and input binding values, by binding name.
    #[serde(rename = "Data", alias = "data", default)]
    pub data: Map<String, Value>,
    /// Trigger metadata (`sys`, and for an HTTP call its query, headers and the top-level
    /// properties of a JSON body again). Nothing reads it: it is checked to be JSON but not
    /// kept, which spares building a second copy of a webhook body on every call.
    #[serde(rename = "Metadata", alias = "metadata", default)]
    pub metadata: serde::de::IgnoredAny,
}

impl InvocationRequest {
    /// Parses the raw body.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body)
            .map_err(|e| format!("the invocation envelope does not parse: {e}"))
    }

    /// The value of one binding, deserialized.
    pub fn binding<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, String> {
        let v = self
            .data
            .get(name)
            .ok_or_else(|| format!("the invocation envelope has no Data.{name}"))?;
        T::deserialize(v).map_err(|e| format!("Data.{name} does not parse: {e}"))
    }
}

/// The reply to the host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InvocationReply {
    /// Output binding values; keys are exact-case binding names (`res`).
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    /// Logged by the host under the invocation.
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

/// The HTTP output binding's name in function.json.
pub const HTTP_OUTPUT: &str = "res";

impl InvocationReply {
    /// A reply with these log lines and return value, and no outputs.
    pub fn new(logs: Vec<String>, return_value: Value) -> Self {
        Self {
            outputs: Map::new(),
            logs: one_line_each(logs),
            return_value,
        }
    }

    /// A reply answering an HTTP caller through `Outputs.res`.
    pub fn http(reply: HttpReply) -> Self {
        let res = serde_json::json!({
            "statusCode": reply.status,
            "headers": reply.headers,
            "body": reply.body,
        });
        let mut outputs = Map::new();
        outputs.insert(HTTP_OUTPUT.to_owned(), res);
        Self {
            outputs,
            logs: one_line_each(reply.logs),
            return_value: Value::Null,
        }
    }
}

/// The host records each `Logs` entry as one log line: payload text in it (an incident title
/// quoted by an error) must not break it into forged lines (`crate::log_line`).
fn one_line_each(logs: Vec<String>) -> Vec<String> {
    logs.into_iter()
        .map(|l| crate::log_line::escape(&l).into_owned())
        .collect()
}

impl IntoResponse for InvocationReply {
    fn into_response(self) -> Response {
        axum::Json(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_reply_goes_into_outputs_res_with_string_headers() {
        let reply = InvocationReply::http(
            HttpReply::json(501, &serde_json::json!({"error":"x"})).with_log("l"),
        );
        let v = serde_json::to_value(&reply).unwrap();
        assert_eq!(v["Outputs"]["res"]["statusCode"], 501);
        assert_eq!(
            v["Outputs"]["res"]["headers"]["Content-Type"],
            "application/json"
        );
        assert_eq!(v["Outputs"]["res"]["body"], "{\"error\":\"x\"}");
        assert_eq!(v["Logs"][0], "l");
        assert!(v.as_object().unwrap().contains_key("ReturnValue"));
    }

    #[test]
    fn every_logs_entry_stays_one_line() {
        let reply = InvocationReply::new(
            vec!["error: incident 1: 'x\n2026-01-01T00:00:00Z forged\u{1b}[2J'".into()],
            Value::Null,
        );
        assert_eq!(
            reply.logs,
            vec!["error: incident 1: 'x\\n2026-01-01T00:00:00Z forged\\u001b[2J'"]
        );
        let reply = InvocationReply::http(HttpReply::json(200, &Value::Null).with_log("a\r\nb"));
        assert_eq!(reply.logs, vec!["a\\r\\nb"]);
    }

    #[test]
    fn a_missing_binding_is_an_error_naming_it() {
        let req = InvocationRequest::parse(br#"{"Data":{},"Metadata":{}}"#).unwrap();
        let err = req.binding::<serde_json::Value>("timer").unwrap_err();
        assert!(err.contains("Data.timer"));
        assert!(InvocationRequest::parse(b"{nope").is_err());
    }
}
