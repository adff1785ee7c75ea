//! Strict checks of the handler's reply, as the host reads it (`docs/host-protocol.md`,
//! Invocation response): 2xx, JSON content type, a non-empty JSON object with only `Outputs`/`Logs`/
//! `ReturnValue`, `Logs` strings, `Outputs` keys equal to output binding names (exact case),
//! and for HTTP functions an `Outputs.res` with a status code and string header values.

use crate::FakeHostError;
use crate::defs::FunctionDef;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A validated invocation reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub invocation_id: String,
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: Value,
}

/// What an HTTP caller receives (built from `Outputs.res`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub reply: Reply,
}

impl HttpResponse {
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, FakeHostError> {
        serde_json::from_str(&self.body)
            .map_err(|e| FakeHostError::InvalidReply(format!("res.body is not JSON: {e}")))
    }
}

fn invalid(m: impl Into<String>) -> FakeHostError {
    FakeHostError::InvalidReply(m.into())
}

/// Validates a raw reply of `def`.
pub fn validate(
    def: &FunctionDef,
    invocation_id: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Reply, FakeHostError> {
    if !(200..300).contains(&status) {
        return Err(FakeHostError::InvocationFailed {
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        });
    }
    let ct = content_type.unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return Err(invalid(format!(
            "Content-Type is '{ct}', not application/json"
        )));
    }
    if body.is_empty() {
        return Err(invalid(
            "empty body (the host would hang until functionTimeout)",
        ));
    }
    let Value::Object(top) =
        serde_json::from_slice(body).map_err(|e| invalid(format!("body is not JSON: {e}")))?
    else {
        return Err(invalid("body is not a JSON object"));
    };
    let (mut outputs, mut logs, mut return_value) = (Map::new(), Vec::new(), Value::Null);
    for (key, value) in top {
        match key.as_str() {
            "Outputs" => outputs = check_outputs(def, value)?,
            "Logs" => logs = check_logs(value)?,
            "ReturnValue" => return_value = value,
            other => return Err(invalid(format!("unexpected top-level key '{other}'"))),
        }
    }
    Ok(Reply {
        invocation_id: invocation_id.to_owned(),
        outputs,
        logs,
        return_value,
    })
}

fn check_outputs(def: &FunctionDef, value: Value) -> Result<Map<String, Value>, FakeHostError> {
    let outputs = match value {
        Value::Null => Map::new(),
        Value::Object(m) => m,
        _ => return Err(invalid("Outputs is not an object")),
    };
    if let Some(k) = outputs.keys().find(|k| !def.outputs.contains(k)) {
        return Err(invalid(format!(
            "Outputs.{k} is not an output binding of {} ({:?})",
            def.name, def.outputs
        )));
    }
    Ok(outputs)
}

fn check_logs(value: Value) -> Result<Vec<String>, FakeHostError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(invalid(format!("Logs holds a non-string {other}"))),
            })
            .collect(),
        _ => Err(invalid("Logs is not an array")),
    }
}

/// Turns `Outputs.res` into what the caller receives.
pub fn http_response(reply: Reply, binding: &str) -> Result<HttpResponse, FakeHostError> {
    let res = reply
        .outputs
        .get(binding)
        .ok_or_else(|| invalid(format!("Outputs.{binding} is missing")))?;
    let res = res
        .as_object()
        .ok_or_else(|| invalid(format!("Outputs.{binding} is not an object")))?;
    let field = |name: &str| {
        res.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let status = match field("statusCode") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        _ => {
            return Err(invalid(
                "res.statusCode is missing (the host ignores 'status')",
            ));
        }
    }
    .filter(|s| (100..600).contains(s))
    .ok_or_else(|| invalid("res.statusCode is not an HTTP status"))?;
    let mut headers = BTreeMap::new();
    match field("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (k, v) in h {
                let v = v
                    .as_str()
                    .ok_or_else(|| invalid(format!("res.headers.{k} is not a string")))?;
                headers.insert(k.clone(), v.to_owned());
            }
        }
        Some(_) => return Err(invalid("res.headers is not an object")),
    }
    let body = match field("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(invalid(
                "res.body is not a string (send pre-serialized JSON)",
            ));
        }
    };
    Ok(HttpResponse {
        status: status as u16,
        headers,
        body,
        reply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::FunctionDef;

    fn http_def() -> FunctionDef {
        let text = r#"{"bindings":[{"name":"req","type":"httpTrigger","direction":"in","methods":["post"]},{"name":"res","type":"http","direction":"out"}]}"#;
        FunctionDef::parse("Hook", text).unwrap()
    }

    fn check(status: u16, ct: Option<&str>, body: &str) -> Result<Reply, FakeHostError> {
        validate(&http_def(), "id", status, ct, body.as_bytes())
    }

    #[test]
    fn replies_the_host_would_reject_are_rejected() {
        let json = Some("application/json; charset=utf-8");
        assert!(matches!(
            check(500, json, "{}"),
            Err(FakeHostError::InvocationFailed { status: 500, .. })
        ));
        assert!(check(200, None, "{}").is_err(), "no content type");
        assert!(check(200, json, "").is_err(), "empty body");
        assert!(check(200, json, "[]").is_err(), "not an object");
        assert!(
            check(200, json, r#"{"Outputs":{},"Extra":1}"#).is_err(),
            "unknown key"
        );
        assert!(
            check(200, json, r#"{"Logs":[1]}"#).is_err(),
            "non-string log"
        );
        assert!(
            check(200, json, r#"{"Outputs":{"Res":{}}}"#).is_err(),
            "output keys are exact-case"
        );
        assert!(
            check(
                200,
                json,
                r#"{"Outputs":{"res":{"statusCode":200}},"Logs":["a"],"ReturnValue":null}"#
            )
            .is_ok()
        );
        assert_eq!(
            http_def().route,
            "Hook",
            "the route defaults to the function name"
        );
    }

    #[test]
    fn res_needs_a_status_code_string_headers_and_a_string_body() {
        let reply = |res: &str| {
            check(
                200,
                Some("application/json"),
                &format!(r#"{{"Outputs":{{"res":{res}}}}}"#),
            )
            .and_then(|r| http_response(r, "res"))
        };
        assert!(
            reply(r#"{"status":200}"#).is_err(),
            "the host ignores 'status'"
        );
        assert!(reply(r#"{"statusCode":200,"headers":{"a":["b"]}}"#).is_err());
        assert!(reply(r#"{"statusCode":200,"body":{"a":1}}"#).is_err());
        let ok = reply(r#"{"statusCode":"201","headers":{"a":"b"},"body":"x"}"#).unwrap();
        assert_eq!(
            (
                ok.status,
                ok.body.as_str(),
                ok.headers.get("a").map(String::as_str)
            ),
            (201, "x", Some("b"))
        );
    }
}
