//! The trigger payloads inside `Data`: the timer's TimerInfo and the HTTP trigger's request
//! object, parsed tolerantly (fields vary between host versions; see
//! `docs/host-protocol.md`, Invocation request).

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// The timer trigger's `TimerInfo`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TimerInfo {
    #[serde(rename = "Schedule", default)]
    pub schedule: Option<Value>,
    /// `null` when the schedule monitor is off.
    #[serde(rename = "ScheduleStatus", default)]
    pub schedule_status: Option<ScheduleStatus>,
    #[serde(rename = "IsPastDue", default)]
    pub is_past_due: bool,
}

/// The schedule monitor's record, in the host's local time; `Last` may lack an offset (first
/// run: `0001-01-01T00:00:00`). Kept as text: never used as a sync cursor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScheduleStatus {
    #[serde(rename = "Last", default)]
    pub last: Option<String>,
    #[serde(rename = "Next", default)]
    pub next: Option<String>,
    #[serde(rename = "LastUpdated", default)]
    pub last_updated: Option<String>,
}

/// The HTTP trigger's request object (`Data.req`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HttpRequestData {
    #[serde(rename = "Url", default)]
    pub url: String,
    #[serde(rename = "Method", default)]
    pub method: String,
    /// An object on current hosts, a JSON string on older ones; both accepted.
    #[serde(rename = "Query", default, deserialize_with = "object_or_json_string")]
    pub query: BTreeMap<String, String>,
    /// Header values are arrays (a single string is accepted too).
    #[serde(rename = "Headers", default, deserialize_with = "headers")]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(rename = "Params", default, deserialize_with = "object_or_json_string")]
    pub params: BTreeMap<String, String>,
    /// Absent when the caller sent no `Content-Length` (chunked) or an empty body.
    #[serde(rename = "Body", default)]
    pub body: Option<String>,
}

impl HttpRequestData {
    /// The first value of a header, matched case-insensitively (a spelling with no value, `[]`,
    /// does not hide another spelling that has one).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .find_map(|(_, v)| v.first())
            .map(String::as_str)
    }
}

fn scalar_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn object_or_json_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let v = Value::deserialize(d)?;
    let v = match v {
        Value::String(s) if s.trim().is_empty() => return Ok(BTreeMap::new()),
        Value::String(s) => serde_json::from_str(&s).map_err(serde::de::Error::custom)?,
        other => other,
    };
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => Ok(m.into_iter().map(|(k, v)| (k, scalar_text(v))).collect()),
        other => Err(serde::de::Error::custom(format!(
            "expected an object, got {other}"
        ))),
    }
}

fn headers<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    let v = Value::deserialize(d)?;
    let Value::Object(m) = v else {
        return if v.is_null() {
            Ok(BTreeMap::new())
        } else {
            Err(serde::de::Error::custom("Headers is not an object"))
        };
    };
    let one = |(k, v): (String, Value)| match v {
        Value::Array(items) => (k, items.into_iter().map(scalar_text).collect()),
        other => (k, vec![scalar_text(other)]),
    };
    Ok(m.into_iter().map(one).collect())
}

/// Checks a playbook (automation-rule trigger) body: a JSON object with an `object` object,
/// the incident. Returns the incident's ARM name when given. An absent body passes: the host
/// forwards no body for a chunked request, so its absence says nothing about the caller.
pub fn trigger_incident(body: Option<&str>) -> Result<Option<String>, String> {
    let Some(body) = body.filter(|b| !b.trim().is_empty()) else {
        return Ok(None);
    };
    let v: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let incident = v
        .get("object")
        .filter(|o| o.is_object())
        .ok_or("the body has no `object` (the incident) object")?;
    match incident.get("name") {
        None => Ok(None),
        Some(Value::String(n)) => Ok(Some(n.clone())),
        Some(_) => Err("`object.name` is not a string".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_trigger_body_needs_the_incident_object() {
        assert_eq!(
            trigger_incident(Some(r#"{"object":{"name":"abc","properties":{}}}"#)),
            Ok(Some("abc".into()))
        );
        assert_eq!(trigger_incident(Some(r#"{"object":{}}"#)), Ok(None));
        assert_eq!(trigger_incident(None), Ok(None));
        for bad in [
            "{not json",
            "[]",
            r#"{"workspaceId":"w"}"#,
            r#"{"object":[]}"#,
            r#"{"object":{"name":1}}"#,
        ] {
            assert!(trigger_incident(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn timer_info_tolerates_a_null_status_and_an_offsetless_last() {
        let t: TimerInfo = serde_json::from_value(
            json!({"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}),
        )
        .unwrap();
        assert!(t.schedule_status.is_none());
        let t: TimerInfo = serde_json::from_value(json!({"ScheduleStatus":{"Last":"0001-01-01T00:00:00","Next":"2024-11-30T14:45:51+00:00","LastUpdated":"0001-01-01T00:00:00"},"IsPastDue":true})).unwrap();
        assert!(t.is_past_due);
        assert_eq!(
            t.schedule_status.unwrap().last.as_deref(),
            Some("0001-01-01T00:00:00")
        );
    }

    #[test]
    fn query_is_accepted_as_an_object_or_as_a_json_string() {
        let a: HttpRequestData =
            serde_json::from_value(json!({"Url":"u","Method":"GET","Query":{"code":"k","n":"1"}}))
                .unwrap();
        let b: HttpRequestData = serde_json::from_value(
            json!({"Url":"u","Method":"GET","Query":"{\"code\":\"k\",\"n\":\"1\"}"}),
        )
        .unwrap();
        assert_eq!(a.query, b.query);
        assert_eq!(a.query.get("n").map(String::as_str), Some("1"));
        let c: HttpRequestData =
            serde_json::from_value(json!({"Url":"u","Method":"GET","Query":"{}"})).unwrap();
        assert!(c.query.is_empty());
    }

    #[test]
    fn headers_are_arrays_looked_up_case_insensitively_and_body_is_optional() {
        let r: HttpRequestData =
            serde_json::from_value(json!({"Url":"u","Method":"POST","Headers":{"Content-Type":["application/json"]},"Params":{}})).unwrap();
        assert_eq!(r.header("content-type"), Some("application/json"));
        // Found by fuzzing: an empty spelling came first and hid the one with a value.
        let r: HttpRequestData =
            serde_json::from_value(json!({"Headers":{"X-A":[],"x-a":["v"]}})).unwrap();
        assert_eq!(r.header("x-A"), Some("v"));
        assert_eq!(r.body, None);
        assert!(serde_json::from_value::<HttpRequestData>(json!({"Headers":[1]})).is_err());
    }
}
