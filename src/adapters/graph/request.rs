//! Pure request builders: the OData window filter and the PATCH body in Graph's write vocabulary.

use crate::domain::*;
use crate::ports::{DefenderPatch, IncidentWindow};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An OData DateTimeOffset literal: unquoted ISO-8601 in UTC.
pub(super) fn odata_time(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.format(&Rfc3339)
        .unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

/// `lastUpdateDateTime ge A [and lastUpdateDateTime lt B] [and createdDateTime ge C] [and createdDateTime lt D]`.
pub(super) fn window_filter(w: &IncidentWindow) -> String {
    let mut parts = vec![format!(
        "lastUpdateDateTime ge {}",
        odata_time(w.updated_from)
    )];
    if let Some(to) = w.updated_to {
        parts.push(format!("lastUpdateDateTime lt {}", odata_time(to)));
    }
    if let Some(from) = w.created_from {
        parts.push(format!("createdDateTime ge {}", odata_time(from)));
    }
    if let Some(to) = w.created_to {
        parts.push(format!("createdDateTime lt {}", odata_time(to)));
    }
    parts.join(" and ")
}

/// The PATCH body: only the fields to change, in the PATCH vocabulary. Refuses what Graph cannot
/// take: `redirected` (breaks the incident in the portal), members this build does not know,
/// deprecated determinations. `inProgress`/`awaitingAction` are not PATCHable statuses; both
/// mean "open", so they are written as `active` (`docs/api-notes.md` §6.2: Sentinel Active → active).
pub(super) fn patch_body(patch: &DefenderPatch) -> Result<Value, String> {
    let mut body = Map::new();
    if let Some(status) = &patch.status {
        body.insert("status".into(), json!(status_word(status)?));
    }
    if let Some(severity) = &patch.severity {
        body.insert("severity".into(), json!(severity_word(severity)?));
    }
    if let Some(c) = &patch.classification {
        body.insert("classification".into(), json!(classification_word(c)?));
    }
    if let Some(d) = &patch.determination {
        body.insert("determination".into(), json!(determination_word(d)?));
    }
    if let Some(comment) = &patch.resolving_comment {
        body.insert("resolvingComment".into(), json!(comment));
    }
    if let Some(owner) = &patch.assigned_to {
        body.insert(
            "assignedTo".into(),
            owner.as_deref().map_or(Value::Null, |o| json!(o)),
        );
    }
    if let Some(tags) = &patch.custom_tags {
        body.insert("customTags".into(), json!(tags));
    }
    Ok(Value::Object(body))
}

fn status_word(s: &DefenderStatus) -> Result<&'static str, String> {
    match s {
        DefenderStatus::Active | DefenderStatus::InProgress | DefenderStatus::AwaitingAction => {
            Ok("active")
        }
        DefenderStatus::Resolved => Ok("resolved"),
        DefenderStatus::Redirected => Err(
            "status 'redirected' is never written to Graph (it breaks the incident in the portal)"
                .into(),
        ),
        other => Err(format!("status '{other}' cannot be written to Graph")),
    }
}

fn severity_word(s: &DefenderSeverity) -> Result<&'static str, String> {
    match s {
        DefenderSeverity::Unknown => Ok("unknown"),
        DefenderSeverity::Informational => Ok("informational"),
        DefenderSeverity::Low => Ok("low"),
        DefenderSeverity::Medium => Ok("medium"),
        DefenderSeverity::High => Ok("high"),
        other => Err(format!("severity '{other}' cannot be written to Graph")),
    }
}

fn classification_word(c: &DefenderClassification) -> Result<&'static str, String> {
    match c {
        DefenderClassification::Unknown => Ok("unknown"),
        DefenderClassification::FalsePositive => Ok("falsePositive"),
        DefenderClassification::TruePositive => Ok("truePositive"),
        DefenderClassification::InformationalExpectedActivity => {
            Ok("informationalExpectedActivity")
        }
        other => Err(format!(
            "classification '{other}' cannot be written to Graph"
        )),
    }
}

/// The PATCH names (`compromisedAccount`, `notMalicious`, … never the read aliases); `apt` and
/// `securityPersonnel` are deprecated for writes.
fn determination_word(d: &Determination) -> Result<&str, String> {
    use Determination::*;
    match d {
        Apt | SecurityPersonnel => {
            Err(format!("determination '{d}' is deprecated and not written"))
        }
        UnknownFutureValue | Unrecognized(_) => {
            Err(format!("determination '{d}' cannot be written to Graph"))
        }
        // The domain's canonical spellings are the PATCH names.
        known => Ok(known.as_str()),
    }
}

/// The comment POST body (`graph-incident-comment.request.json`).
pub(super) fn comment_body(text: &str) -> Value {
    json!({"@odata.type": "microsoft.graph.security.alertComment", "comment": text})
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn window_filter_has_every_bound_in_utc() {
        let w = IncidentWindow {
            updated_from: datetime!(2024-05-01 12:00:00 +2),
            updated_to: Some(datetime!(2024-05-01 11:00:00.5 UTC)),
            created_from: Some(datetime!(2024-01-01 0:00 UTC)),
            created_to: Some(datetime!(2024-02-01 0:00 UTC)),
        };
        assert_eq!(
            window_filter(&w),
            "lastUpdateDateTime ge 2024-05-01T10:00:00Z and lastUpdateDateTime lt 2024-05-01T11:00:00.5Z \
             and createdDateTime ge 2024-01-01T00:00:00Z and createdDateTime lt 2024-02-01T00:00:00Z"
        );
        let open = IncidentWindow {
            updated_from: datetime!(2024-05-01 10:00 UTC),
            updated_to: None,
            created_from: None,
            created_to: None,
        };
        assert_eq!(
            window_filter(&open),
            "lastUpdateDateTime ge 2024-05-01T10:00:00Z"
        );
    }

    #[test]
    fn patch_uses_write_names_and_only_set_fields() {
        let p = DefenderPatch {
            status: Some(DefenderStatus::Resolved),
            classification: Some(DefenderClassification::TruePositive),
            determination: Some(Determination::parse_alias("compromisedUser")),
            assigned_to: Some(None),
            custom_tags: Some(vec!["Demo".into()]),
            ..Default::default()
        };
        assert_eq!(
            patch_body(&p).unwrap(),
            json!({"status": "resolved", "classification": "truePositive", "determination": "compromisedAccount",
                   "assignedTo": null, "customTags": ["Demo"]})
        );
        assert_eq!(patch_body(&DefenderPatch::default()).unwrap(), json!({}));
    }

    #[test]
    fn unwritable_values_are_refused_or_mapped() {
        let with = |s| DefenderPatch {
            status: Some(s),
            ..Default::default()
        };
        assert!(
            patch_body(&with(DefenderStatus::Redirected))
                .unwrap_err()
                .contains("redirected")
        );
        assert_eq!(
            patch_body(&with(DefenderStatus::InProgress)).unwrap(),
            json!({"status": "active"})
        );
        assert_eq!(
            patch_body(&with(DefenderStatus::AwaitingAction)).unwrap(),
            json!({"status": "active"})
        );
        assert!(patch_body(&with(DefenderStatus::Unrecognized("x".into()))).is_err());
        let det = |d| DefenderPatch {
            determination: Some(d),
            ..Default::default()
        };
        assert!(patch_body(&det(Determination::Apt)).is_err());
        assert!(patch_body(&det(Determination::UnknownFutureValue)).is_err());
        for (read, write) in [
            ("clean", "notMalicious"),
            ("insufficientData", "notEnoughDataToValidate"),
            ("confirmedUserActivity", "confirmedActivity"),
        ] {
            assert_eq!(
                patch_body(&det(Determination::parse_alias(read))).unwrap(),
                json!({"determination": write})
            );
        }
    }

    #[test]
    fn comment_body_matches_fixture() {
        let fixture = dss_test_support::fixture("graph-incident-comment.request.json");
        assert_eq!(comment_body("Demo for docs"), fixture);
    }
}
