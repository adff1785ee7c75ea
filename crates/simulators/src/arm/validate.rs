//! Sentinel's validation of an incident PUT: required properties, enums, closing rules,
//! description length, owner resolution. Returns only the writable properties, canonicalised.

use super::store::{SentinelIncident, unassigned_owner};
use crate::state::Directory;
use crate::util::{fmt_time, parse_time};
use serde_json::{Map, Value, json};

pub const SEVERITY: &[&str] = &["High", "Medium", "Low", "Informational"];
pub const STATUS: &[&str] = &["New", "Active", "Closed"];
pub const CLASSIFICATION: &[&str] = &[
    "Undetermined",
    "TruePositive",
    "BenignPositive",
    "FalsePositive",
];
pub const REASON: &[&str] = &[
    "SuspiciousActivity",
    "SuspiciousButExpected",
    "IncorrectAlertLogic",
    "InaccurateData",
];
/// Maximum description length.
pub const MAX_DESCRIPTION: usize = 5000;

fn canonical(list: &'static [&'static str], v: &str) -> Option<&'static str> {
    list.iter().copied().find(|m| m.eq_ignore_ascii_case(v))
}

fn enum_prop(
    p: &Map<String, Value>,
    key: &str,
    list: &'static [&'static str],
    ty: &str,
) -> Result<Option<&'static str>, String> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => canonical(list, s).map(Some).ok_or_else(|| {
            format!("Error converting value \"{s}\" to type '{ty}'. Path 'properties.{key}'.")
        }),
        Some(v) => Err(format!(
            "Error converting value {v} to type '{ty}'. Path 'properties.{key}'."
        )),
    }
}

fn required(p: &Map<String, Value>, key: &str) -> Result<(), String> {
    match p.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        _ => Err(format!(
            "Required property '{key}' not found in JSON. Path 'properties'."
        )),
    }
}

/// The writable properties of a PUT body, validated. `existing` keeps AutoAssigned label types.
pub fn incident_put(
    body: &Value,
    existing: Option<&SentinelIncident>,
    dir: &Directory,
) -> Result<Map<String, Value>, String> {
    let p = body
        .get("properties")
        .and_then(Value::as_object)
        .ok_or("Required property 'properties' not found in JSON.")?;
    for k in ["title", "severity", "status"] {
        required(p, k)?;
    }
    let mut out = Map::new();
    out.insert("title".into(), p["title"].clone());
    let severity = enum_prop(p, "severity", SEVERITY, "IncidentSeverity")?;
    let status = enum_prop(p, "status", STATUS, "IncidentStatus")?;
    let class = enum_prop(
        p,
        "classification",
        CLASSIFICATION,
        "IncidentClassification",
    )?;
    let reason = enum_prop(
        p,
        "classificationReason",
        REASON,
        "IncidentClassificationReason",
    )?;
    out.insert("severity".into(), json!(severity));
    out.insert("status".into(), json!(status));
    closing_rules(status, class, reason)?;
    if let Some(c) = class {
        out.insert("classification".into(), json!(c));
    }
    if let Some(r) = reason {
        out.insert("classificationReason".into(), json!(r));
    }
    for k in ["description", "classificationComment"] {
        match p.get(k) {
            Some(Value::String(s)) => {
                if k == "description" && s.chars().count() > MAX_DESCRIPTION {
                    return Err(format!(
                        "The description field exceeds the maximum length of {MAX_DESCRIPTION} characters."
                    ));
                }
                out.insert(k.into(), json!(s));
            }
            None | Some(Value::Null) => {}
            Some(v) => {
                return Err(format!(
                    "Error converting value {v} to type 'String'. Path 'properties.{k}'."
                ));
            }
        }
    }
    for k in ["firstActivityTimeUtc", "lastActivityTimeUtc"] {
        match p.get(k) {
            Some(Value::String(s)) => {
                let t = parse_time(s).ok_or_else(|| {
                    format!("Could not convert string to DateTime: {s}. Path 'properties.{k}'.")
                })?;
                out.insert(k.into(), json!(fmt_time(t)));
            }
            None | Some(Value::Null) => {}
            Some(v) => {
                return Err(format!(
                    "Could not convert {v} to DateTime. Path 'properties.{k}'."
                ));
            }
        }
    }
    out.insert("owner".into(), owner(p.get("owner"), dir)?);
    out.insert("labels".into(), labels(p.get("labels"), existing)?);
    Ok(out)
}

/// Closed needs a classification; TruePositive and BenignPositive need a reason; reasons must fit.
pub fn closing_rules(
    status: Option<&str>,
    class: Option<&str>,
    reason: Option<&str>,
) -> Result<(), String> {
    if status == Some("Closed") && class.is_none() {
        return Err("Incident cannot be closed without a classification. Please provide the classification property.".into());
    }
    match (class, reason) {
        (Some(c @ ("TruePositive" | "BenignPositive")), None) => Err(format!(
            "classification '{c}' must have classificationReason."
        )),
        (Some("TruePositive"), Some("SuspiciousActivity"))
        | (Some("BenignPositive"), Some("SuspiciousButExpected"))
        | (Some("FalsePositive"), Some("IncorrectAlertLogic" | "InaccurateData") | None)
        | (Some("Undetermined"), None)
        | (None, None) => Ok(()),
        (c, Some(r)) => Err(format!(
            "classificationReason '{r}' is not valid for classification '{}'.",
            c.unwrap_or("null")
        )),
        (Some(c), None) => Err(format!("classification '{c}' is not valid.")),
    }
}

/// The owner as stored: resolved from object id, UPN or email; missing = unassigned.
pub fn owner(v: Option<&Value>, dir: &Directory) -> Result<Value, String> {
    let Some(o) = v.and_then(Value::as_object) else {
        return Ok(unassigned_owner());
    };
    let s = |k: &str| o.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    // `ownerType` (User, Group, Unknown) says what `objectId` names. A group is only taken as
    // one: named without `ownerType: Group` it is looked up as a user, and not found.
    if let Some(g) = s("objectId").and_then(|id| dir.group(id)) {
        let group = s("ownerType").is_some_and(|t| t.eq_ignore_ascii_case("Group"));
        return if group {
            Ok(json!({
                "objectId": g.object_id, "email": null, "assignedTo": g.display_name,
                "userPrincipalName": null, "ownerType": "Group",
            }))
        } else {
            Err(format!(
                "Owner '{}' could not be found in the directory as a user: set ownerType 'Group' to assign a group.",
                g.object_id
            ))
        };
    }
    let key = s("objectId").or(s("userPrincipalName")).or(s("email"));
    let Some(key) = key else {
        return match s("assignedTo") {
            None => Ok(unassigned_owner()),
            Some(n) => Err(format!(
                "Owner '{n}' could not be resolved: provide objectId, userPrincipalName or email."
            )),
        };
    };
    match dir.find(key) {
        Some(u) => Ok(json!({
            "objectId": u.object_id, "email": u.mail, "assignedTo": u.display_name,
            "userPrincipalName": u.user_principal_name, "ownerType": "User",
        })),
        None if s("objectId").is_some() => Ok(json!({
            "objectId": key, "email": s("email"), "assignedTo": s("assignedTo"),
            "userPrincipalName": s("userPrincipalName"), "ownerType": "Unknown",
        })),
        None => Err(format!(
            "Owner '{key}' could not be found in the directory."
        )),
    }
}

fn labels(v: Option<&Value>, existing: Option<&SentinelIncident>) -> Result<Value, String> {
    let arr = match v {
        None | Some(Value::Null) => return Ok(json!([])),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("Cannot deserialize the current JSON object into type 'List<IncidentLabel>'. Path 'properties.labels'.".into()),
    };
    let auto = |name: &str| {
        existing
            .and_then(|e| e.props.get("labels"))
            .and_then(Value::as_array)
            .is_some_and(|l| {
                l.iter()
                    .any(|x| x["labelName"] == name && x["labelType"] == "AutoAssigned")
            })
    };
    let mut out = Vec::new();
    for l in arr {
        let name = l
            .get("labelName")
            .and_then(Value::as_str)
            .ok_or("Required property 'labelName' not found in JSON. Path 'properties.labels'.")?;
        let ty = if auto(name) { "AutoAssigned" } else { "User" };
        out.push(json!({"labelName": name, "labelType": ty}));
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_rules_match_the_service() {
        assert!(closing_rules(Some("Closed"), None, None).is_err());
        assert_eq!(
            closing_rules(Some("Closed"), Some("BenignPositive"), None).unwrap_err(),
            "classification 'BenignPositive' must have classificationReason."
        );
        assert!(closing_rules(Some("Closed"), Some("TruePositive"), None).is_err());
        assert!(
            closing_rules(
                Some("Closed"),
                Some("TruePositive"),
                Some("SuspiciousActivity")
            )
            .is_ok()
        );
        assert!(
            closing_rules(
                Some("Closed"),
                Some("FalsePositive"),
                Some("InaccurateData")
            )
            .is_ok()
        );
        assert!(closing_rules(Some("Closed"), Some("Undetermined"), None).is_ok());
        assert!(
            closing_rules(
                Some("Closed"),
                Some("FalsePositive"),
                Some("SuspiciousActivity")
            )
            .is_err()
        );
        assert!(closing_rules(Some("New"), None, None).is_ok());
    }
}
