//! The body a Sentinel automation rule's playbook posts (the Microsoft Sentinel incident
//! trigger's `triggerBody()`, on incident created and updated). PURE: bytes in, a [`Trigger`] or
//! a [`TriggerError`] naming what is wrong out; no I/O (the fuzzers call [`parse_trigger`]).
//!
//! The body is a hint: only the incident's ARM id is used to act on (the handler reads the
//! current incident itself). Unknown fields are ignored, `alerts` and `Alerts` are both
//! accepted, and nothing inside the incident's properties is required.

use serde::Deserialize;
use serde::de::IgnoredAny;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Bodies larger than this are refused (413) without being parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the handler takes from a trigger body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The incident, from `object.id`.
    pub incident: IncidentRef,
    /// `objectEventType` (`Create`, `Update`), when given.
    pub event: Option<String>,
    /// `incidentUpdates.updatedBy.source` (`User`, `Application`, …), when given.
    pub updated_by_source: Option<String>,
    /// `object.properties.lastModifiedTimeUtc`, when given and readable.
    pub last_modified: Option<OffsetDateTime>,
    /// Alerts listed under `alerts` or `Alerts` (either casing).
    pub alerts: usize,
    /// `object.properties.providerIncidentId`, when given: with the workspace onboarded to the
    /// unified Defender portal, the Defender (Graph) incident id in the workspace's tenant.
    pub provider_incident_id: Option<String>,
    /// `object.properties.providerName`, when given (`Microsoft XDR` in the unified portal).
    pub provider_name: Option<String>,
}

/// A Sentinel incident's ARM id, split into its parts (as written by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRef {
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace_name: String,
    /// The incident's ARM name (last segment).
    pub name: String,
}

/// Why a body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("the body is {0} bytes; at most {MAX_BODY_BYTES} are accepted")]
    TooLarge(usize),
    #[error("the body is empty; the playbook must post the incident trigger body")]
    Empty,
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a Sentinel incident trigger: {0}")]
    Shape(String),
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    object: Option<Object>,
    #[serde(rename = "objectEventType", default)]
    event: Option<String>,
    #[serde(rename = "incidentUpdates", default)]
    updates: Option<Updates>,
}

#[derive(Deserialize)]
struct Object {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    properties: Option<Properties>,
}

#[derive(Deserialize)]
struct Properties {
    #[serde(rename = "lastModifiedTimeUtc", default)]
    last_modified: Option<String>,
    #[serde(default)]
    alerts: Option<Vec<IgnoredAny>>,
    #[serde(rename = "Alerts", default)]
    alerts_upper: Option<Vec<IgnoredAny>>,
    #[serde(rename = "providerIncidentId", default)]
    provider_incident_id: Option<serde_json::Value>,
    #[serde(rename = "providerName", default)]
    provider_name: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Updates {
    #[serde(rename = "updatedBy", default)]
    updated_by: Option<UpdatedBy>,
}

#[derive(Deserialize)]
struct UpdatedBy {
    #[serde(default)]
    source: Option<String>,
}

/// Parses a trigger body (create or update). Refuses bodies over [`MAX_BODY_BYTES`] before
/// looking at them.
pub fn parse_trigger(body: &[u8]) -> Result<Trigger, TriggerError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(TriggerError::TooLarge(body.len()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(TriggerError::Empty);
    }
    let parsed: Body = serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => TriggerError::Shape(e.to_string()),
            _ => TriggerError::NotJson(e.to_string()),
        }
    })?;
    let shape = |m: &str| TriggerError::Shape(m.to_owned());
    let object = parsed
        .object
        .ok_or_else(|| shape("it has no `object` (the incident)"))?;
    let id = object
        .id
        .ok_or_else(|| shape("`object.id` (the incident's ARM id) is missing"))?;
    let incident = parse_incident_id(&id).ok_or_else(|| {
        shape("`object.id` is not the ARM id of a Microsoft Sentinel incident (/subscriptions/…/resourceGroups/…/providers/Microsoft.OperationalInsights/workspaces/…/providers/Microsoft.SecurityInsights/incidents/…)")
    })?;
    if let Some(name) = &object.name
        && !name.eq_ignore_ascii_case(&incident.name)
    {
        return Err(shape(
            "`object.name` is not the last segment of `object.id`",
        ));
    }
    let props = object.properties;
    let last_modified = props
        .as_ref()
        .and_then(|p| p.last_modified.as_deref())
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    let alerts = props.as_ref().map_or(0, |p| {
        p.alerts.as_ref().map_or(0, Vec::len) + p.alerts_upper.as_ref().map_or(0, Vec::len)
    });
    let provider_incident_id = props
        .as_ref()
        .and_then(|p| p.provider_incident_id.as_ref())
        .and_then(|id| match id {
            // A string in the ARM schema; a number is read too, anything else ignored.
            serde_json::Value::String(s) => Some(s.trim().to_owned()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|s| !s.is_empty());
    let provider_name = props
        .as_ref()
        .and_then(|p| p.provider_name.as_ref())
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let updated_by_source = parsed
        .updates
        .and_then(|u| u.updated_by)
        .and_then(|b| b.source);
    Ok(Trigger {
        incident,
        event: parsed.event,
        updated_by_source,
        last_modified,
        alerts,
        provider_incident_id,
        provider_name,
    })
}

/// Splits `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/
/// workspaces/{w}/providers/Microsoft.SecurityInsights/incidents/{name}` (segment names in any
/// case, as ARM treats them). `None` for anything else.
pub fn parse_incident_id(id: &str) -> Option<IncidentRef> {
    let parts: Vec<&str> = id.trim_end_matches('/').split('/').collect();
    let ["", subs, sub, rgs, rg, p1, oi, wss, ws, p2, si, incs, name] = parts.as_slice() else {
        return None;
    };
    let fixed = [
        (subs, "subscriptions"),
        (rgs, "resourceGroups"),
        (p1, "providers"),
        (oi, "Microsoft.OperationalInsights"),
        (wss, "workspaces"),
        (p2, "providers"),
        (si, "Microsoft.SecurityInsights"),
        (incs, "incidents"),
    ];
    if fixed
        .iter()
        .any(|(got, want)| !got.eq_ignore_ascii_case(want))
    {
        return None;
    }
    if [sub, rg, ws, name].iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(IncidentRef {
        subscription_id: (*sub).to_owned(),
        resource_group: (*rg).to_owned(),
        workspace_name: (*ws).to_owned(),
        name: (*name).to_owned(),
    })
}

#[cfg(test)]
#[path = "trigger_tests.rs"]
mod tests;
