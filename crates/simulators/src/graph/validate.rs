//! Graph's validation of `PATCH /security/incidents/{id}` and its enum vocabularies.

use serde_json::{Map, Value};

pub const STATUS: &[&str] = &[
    "active",
    "resolved",
    "inProgress",
    "redirected",
    "unknownFutureValue",
    "awaitingAction",
];
pub const SEVERITY: &[&str] = &[
    "unknown",
    "informational",
    "low",
    "medium",
    "high",
    "unknownFutureValue",
];
pub const CLASSIFICATION: &[&str] = &[
    "unknown",
    "falsePositive",
    "truePositive",
    "informationalExpectedActivity",
    "unknownFutureValue",
];
/// Read spelling and PATCH spelling together.
pub const DETERMINATION: &[&str] = &[
    "unknown",
    "apt",
    "malware",
    "securityPersonnel",
    "securityTesting",
    "unwantedSoftware",
    "other",
    "multiStagedAttack",
    "compromisedUser",
    "compromisedAccount",
    "phishing",
    "maliciousUserActivity",
    "clean",
    "notMalicious",
    "insufficientData",
    "notEnoughDataToValidate",
    "confirmedUserActivity",
    "confirmedActivity",
    "lineOfBusinessApplication",
    "unknownFutureValue",
];
/// (PATCH spelling, property spelling).
pub const DETERMINATION_ALIASES: &[(&str, &str)] = &[
    ("compromisedAccount", "compromisedUser"),
    ("notMalicious", "clean"),
    ("notEnoughDataToValidate", "insufficientData"),
    ("confirmedActivity", "confirmedUserActivity"),
];
/// Statuses a caller may PATCH (the 2026 doc list minus `redirected`, which breaks the incident).
const PATCHABLE_STATUS: &[&str] = &["active", "resolved"];

const STRING_FIELDS: &[&str] = &[
    "assignedTo",
    "description",
    "displayName",
    "resolvingComment",
    "summary",
];

/// Canonical (camelCase) member of `list` matching `v` case-insensitively.
pub fn canonical(list: &'static [&'static str], v: &str) -> Option<&'static str> {
    list.iter().copied().find(|m| m.eq_ignore_ascii_case(v))
}

fn bad_enum(v: &Value, ty: &str) -> String {
    format!(
        "Cannot convert the literal '{}' to the expected type 'microsoft.graph.security.{ty}'.",
        v.as_str().unwrap_or(&v.to_string())
    )
}

/// Validates a PATCH body; returns the properties to set, enums in canonical spelling.
pub fn patch(body: &Value) -> Result<Map<String, Value>, String> {
    let Some(obj) = body.as_object() else {
        return Err("Empty Payload. JSON content expected.".into());
    };
    let mut out = Map::new();
    for (k, v) in obj {
        if k.starts_with('@') {
            continue;
        }
        let set = match k.as_str() {
            "status" => enum_field(v, STATUS, "incidentStatus").and_then(|s| {
                if PATCHABLE_STATUS.iter().any(|p| p.eq_ignore_ascii_case(s.as_str().unwrap_or_default())) {
                    Ok(s)
                } else {
                    Err(format!("Invalid value '{}' for property 'status': the incident status cannot be set to this value.", s.as_str().unwrap_or_default()))
                }
            })?,
            "severity" => enum_field(v, SEVERITY, "alertSeverity")?,
            "classification" => enum_field(v, CLASSIFICATION, "alertClassification")?,
            "determination" => enum_field(v, DETERMINATION, "alertDetermination")?,
            "customTags" => match v {
                Value::Array(a) if a.iter().all(Value::is_string) => v.clone(),
                Value::Null => Value::Array(Vec::new()),
                _ => return Err("Cannot convert the literal to the expected type 'Collection(Edm.String)'.".into()),
            },
            f if STRING_FIELDS.contains(&f) => match v {
                Value::String(_) | Value::Null => v.clone(),
                _ => return Err(format!("Cannot convert the literal '{v}' to the expected type 'Edm.String'.")),
            },
            other => {
                return Err(format!(
                    "The property '{other}' does not exist on type 'microsoft.graph.security.incident'. Make sure to only use property names that are defined by the type or mark the type as open type."
                ));
            }
        };
        out.insert(k.clone(), set);
    }
    Ok(out)
}

fn enum_field(v: &Value, list: &'static [&'static str], ty: &str) -> Result<Value, String> {
    match v.as_str().and_then(|s| canonical(list, s)) {
        Some(c) if c != "unknownFutureValue" => Ok(Value::String(c.to_owned())),
        _ => Err(bad_enum(v, ty)),
    }
}

/// Property spelling of a determination (`notMalicious` → `clean`).
pub fn legacy_determination(v: &str) -> &str {
    DETERMINATION_ALIASES
        .iter()
        .find(|(p, _)| *p == v)
        .map(|(_, r)| *r)
        .unwrap_or(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_rules() {
        let p = patch(&json!({"classification": "TruePositive", "determination": "MultiStagedAttack", "customTags": ["Demo"]})).unwrap();
        assert_eq!(p["classification"], "truePositive");
        assert_eq!(p["determination"], "multiStagedAttack");
        assert_eq!(
            patch(&json!({"determination": "NOTMALICIOUS"})).unwrap()["determination"],
            "notMalicious"
        );
        assert_eq!(
            patch(&json!({"determination": "clean"})).unwrap()["determination"],
            "clean"
        );
        assert!(patch(&json!({"status": "redirected"})).is_err());
        assert!(patch(&json!({"status": "awaitingAction"})).is_err());
        assert!(
            patch(&json!({"tags": ["x"]}))
                .unwrap_err()
                .contains("does not exist")
        );
        assert!(patch(&json!({"severity": "critical"})).is_err());
        assert_eq!(
            patch(&json!({"status": "Resolved"})).unwrap()["status"],
            "resolved"
        );
        assert_eq!(legacy_determination("notMalicious"), "clean");
    }
}
