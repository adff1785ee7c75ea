//! The envelopes the host POSTs, shaped as in `docs/host-protocol.md` (Invocation request).

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A timer invocation.
#[derive(Debug, Clone, Default)]
pub struct TimerCall {
    pub is_past_due: bool,
    /// `None` sends `ScheduleStatus: null` (monitor off); `Some` sends a first-run status whose
    /// `Last` has no offset, as the host does.
    pub schedule_status: Option<FirstRun>,
}

/// Marker for a first-run schedule status (`Last` = `0001-01-01T00:00:00`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstRun;

/// How `Data.req.Query` is sent: current hosts send an object, older ones a JSON string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueryForm {
    #[default]
    Object,
    JsonString,
}

/// An HTTP call of a caller, before the host turns it into an envelope.
#[derive(Debug, Clone, Default)]
pub struct HttpCall {
    pub method: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub query_form: QueryForm,
    /// The caller sent its body chunked (no Content-Length): the host then drops `Body`.
    pub caller_chunked: bool,
}

impl HttpCall {
    /// A call with this method and nothing else.
    pub fn new(method: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            ..Default::default()
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, k: &str, v: &str) -> Self {
        self.query.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, b: impl Into<String>) -> Self {
        self.body = Some(b.into());
        self
    }

    /// Sends `Query` in the given form.
    pub fn query_form(mut self, f: QueryForm) -> Self {
        self.query_form = f;
        self
    }
}

fn sys(function: &str) -> Value {
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    json!({ "MethodName": function, "UtcNow": now, "RandGuid": uuid::Uuid::new_v4().to_string() })
}

/// `{"Data":{binding: TimerInfo},"Metadata":{"sys":…}}`.
pub fn timer_envelope(function: &str, binding: &str, call: &TimerCall) -> Value {
    let status = call.schedule_status.map(|_| {
        let next = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        json!({ "Last": "0001-01-01T00:00:00", "Next": next, "LastUpdated": "0001-01-01T00:00:00" })
    });
    let mut data = Map::new();
    data.insert(binding.to_owned(), json!({ "Schedule": { "AdjustForDST": true }, "ScheduleStatus": status, "IsPastDue": call.is_past_due }));
    json!({ "Data": data, "Metadata": { "sys": sys(function) } })
}

/// `{"Data":{binding: request},"Metadata":{Query, Headers, sys, body properties}}`.
pub fn http_envelope(function: &str, binding: &str, route: &str, call: &HttpCall) -> Value {
    let mut query = Map::new();
    for (k, v) in &call.query {
        // Repeated keys are comma-joined by the host.
        let joined = match query.get(k).and_then(Value::as_str) {
            Some(prev) => format!("{prev},{v}"),
            None => v.clone(),
        };
        query.insert(k.clone(), Value::String(joined));
    }
    let mut headers: Map<String, Value> = Map::new();
    for (k, v) in &call.headers {
        let entry = headers.entry(k.clone()).or_insert_with(|| json!([]));
        if let Value::Array(a) = entry {
            a.push(Value::String(v.clone()));
        }
    }
    let qs: Vec<String> = call.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let url = format!(
        "http://localhost:7071/api/{route}{}{}",
        if qs.is_empty() { "" } else { "?" },
        qs.join("&")
    );
    let query_value = match call.query_form {
        QueryForm::Object => Value::Object(query.clone()),
        QueryForm::JsonString => Value::String(Value::Object(query.clone()).to_string()),
    };
    let mut req = json!({
        "Url": url, "Method": call.method, "Query": query_value, "Headers": headers, "Params": {},
        "Identities": [{ "AuthenticationType": "WebJobsAuthLevel", "IsAuthenticated": true,
            "Claims": [{ "Type": "http://schemas.microsoft.com/2017/07/functions/claims/authlevel", "Value": "Admin" }] }],
    });
    let body = call
        .body
        .as_ref()
        .filter(|b| !b.is_empty() && !call.caller_chunked);
    if let Some(b) = body {
        req["Body"] = Value::String(b.clone());
    }
    let flat_headers: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::String(
                    v.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default(),
                ),
            )
        })
        .collect();
    let mut metadata = Map::new();
    if let Some(Ok(Value::Object(props))) = body.map(|b| serde_json::from_str::<Value>(b)) {
        metadata.extend(props);
    }
    metadata.insert("Query".into(), Value::Object(query));
    metadata.insert("Headers".into(), Value::Object(flat_headers));
    metadata.insert("Params".into(), json!({}));
    metadata.insert("sys".into(), sys(function));
    let mut data = Map::new();
    data.insert(binding.to_owned(), req);
    json!({ "Data": data, "Metadata": metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_envelopes_follow_the_host_shapes() {
        let call = HttpCall::new("post")
            .query("code", "k")
            .query("a", "1")
            .query("a", "2")
            .header("X-Sync-Secret", "s")
            .body(r#"{"p":1}"#);
        let env = http_envelope("Hook", "req", "hook", &call);
        assert_eq!(
            env["Data"]["req"]["Query"],
            json!({"code": "k", "a": "1,2"})
        );
        assert_eq!(env["Data"]["req"]["Headers"]["X-Sync-Secret"], json!(["s"]));
        assert_eq!(env["Data"]["req"]["Body"], r#"{"p":1}"#);
        assert_eq!(env["Metadata"]["Headers"]["X-Sync-Secret"], "s");
        assert_eq!(env["Metadata"]["p"], 1);
        assert_eq!(env["Metadata"]["sys"]["MethodName"], "Hook");

        let as_string = http_envelope(
            "Hook",
            "req",
            "hook",
            &call.clone().query_form(QueryForm::JsonString),
        );
        let q: Value =
            serde_json::from_str(as_string["Data"]["req"]["Query"].as_str().unwrap()).unwrap();
        assert_eq!(q, env["Data"]["req"]["Query"]);
        let chunked = http_envelope(
            "Hook",
            "req",
            "hook",
            &HttpCall {
                caller_chunked: true,
                ..call
            },
        );
        assert!(chunked["Data"]["req"].get("Body").is_none());
    }

    #[test]
    fn timer_envelopes_carry_a_null_or_first_run_status() {
        let env = timer_envelope("Sync", "timer", &TimerCall::default());
        assert!(env["Data"]["timer"]["ScheduleStatus"].is_null());
        let env = timer_envelope(
            "Sync",
            "timer",
            &TimerCall {
                is_past_due: true,
                schedule_status: Some(FirstRun),
            },
        );
        assert_eq!(
            env["Data"]["timer"]["ScheduleStatus"]["Last"],
            "0001-01-01T00:00:00"
        );
        assert_eq!(env["Data"]["timer"]["IsPastDue"], true);
    }
}
