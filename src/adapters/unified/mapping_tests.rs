use super::*;
use serde_json::json;
use time::macros::datetime;

const SRC: &str = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c";

fn platform(alerts: Vec<serde_json::Value>) -> DefenderIncident {
    let raw = json!({
        "id": "1001", "tenantId": "2070ecc9-b4d5-4ae4-adaa-936fa1954fa8", "displayName": "Rule alert",
        "status": "active", "severity": "high", "classification": "unknown", "determination": "unknown",
        "assignedTo": null, "customTags": [], "systemTags": [], "comments": [],
        "createdDateTime": "2026-01-01T00:00:00Z", "lastUpdateDateTime": "2026-01-01T00:05:00Z",
        "alerts": alerts,
    });
    crate::adapters::graph::incident_from_json(
        &TenantId::parse("2070ecc9-b4d5-4ae4-adaa-936fa1954fa8").unwrap(),
        raw,
    )
    .unwrap()
}

fn alert(id: &str, created: &str, tenant: &str, incident: &str) -> serde_json::Value {
    json!({"id": id, "incidentId": "1001", "title": "t", "severity": "high", "status": "new",
           "serviceSource": "microsoftSentinel", "createdDateTime": created, "evidence": [],
           "additionalData": {"SourceTenantId": [tenant], "SourceIncidentId": [incident]}})
}

#[test]
fn custom_details_are_read_as_arrays_or_strings_and_name_the_source_the_incident_was_made_for() {
    let data = json!({"SourceTenantId": [SRC], "SourceIncidentId": "42"});
    let (t, i) = source_of(data.as_object().unwrap()).unwrap();
    assert_eq!((t.as_str(), i.as_str()), (SRC, "42"));
    assert!(source_of(json!({"SourceTenantId": [SRC]}).as_object().unwrap()).is_none());
    // The incident was created at 00:00; a merge brought in an older alert of another source.
    let p = platform(vec![
        alert("b", "2026-01-01T00:02:00Z", SRC, "8"),
        alert("m", "2025-12-31T23:00:00Z", SRC, "9"),
        alert("a", "2026-01-01T00:00:00Z", SRC, "7"),
    ]);
    let (_, id) = source_of_incident(&p).unwrap();
    assert_eq!(
        id.as_str(),
        "7",
        "the alert the incident was made from names its source"
    );
}

#[test]
fn the_pair_is_its_own_field_and_the_old_etag_form_still_names_it() {
    let p = platform(vec![]);
    let name = SentinelIncidentName::parse("6f1c2a4e-93d1-4b7a-9c0e-5d8e1f2a3b4c").unwrap();
    let s = to_sentinel(name, &p, None);
    assert_eq!(s.platform_id.as_ref().map(|id| id.as_str()), Some("1001"));
    // The etag is the platform incident's version only: it names no incident any more.
    let e = etag(&p);
    assert!(id_from_etag(&e).is_none(), "{e}");
    assert_eq!(s.etag.as_deref(), Some(e.as_str()));
    // States written before the field existed hold `{id}@{lastUpdateDateTime}`: read once.
    let old = format!("1001@{e}");
    assert_eq!(id_from_etag(&old).unwrap().as_str(), "1001");
    assert!(id_from_etag("W/\"no-id\"").is_none());
}

#[test]
fn what_was_asked_reads_back_the_same_and_patches_nothing_more() {
    let p = platform(vec![]);
    let name = SentinelIncidentName::parse("6f1c2a4e-93d1-4b7a-9c0e-5d8e1f2a3b4c").unwrap();
    let mut asked = to_sentinel(name, &p, None);
    asked.title = "Defender: Multi-stage incident".into();
    asked.status = SentinelStatus::Active;
    asked.classification = Some(SentinelClassification::TruePositive);
    asked.classification_reason = Some(ClassificationReason::SuspiciousActivity);
    asked.classification_comment = Some("Defender determination: malware.".into());
    asked.owner = Owner {
        user_principal_name: Some("analyst@contoso.com".into()),
        object_id: Some(uuid::Uuid::nil()),
        ..Owner::default()
    };
    asked.labels = vec![Label {
        name: "phish".into(),
        kind: LabelKind::User,
    }];
    asked.last_activity = Some(datetime!(2026-01-01 0:00 UTC));
    let patch = patch_for(&p, &asked).unwrap();
    assert_eq!(
        patch.status, None,
        "Sentinel Active is Graph active already"
    );
    assert_eq!(
        patch.classification,
        Some(DefenderClassification::TruePositive)
    );
    assert_eq!(patch.determination, Some(Determination::Malware));
    assert_eq!(patch.assigned_to, Some(Some("analyst@contoso.com".into())));
    assert_eq!(patch.custom_tags, Some(vec!["phish".to_owned()]));
    // Graph applied it: the platform now reads back as asked, and asks for nothing more.
    let mut after = p.clone();
    after.classification = Some(DefenderClassification::TruePositive);
    after.determination = Some(Determination::Malware);
    after.assigned_to = Some("analyst@contoso.com".into());
    after.custom_tags = vec!["phish".into()];
    let read = to_sentinel(name, &after, Some(&asked));
    assert!(crate::sync::plan::same_writable(&asked, &read), "{read:#?}");
    assert!(is_empty(&patch_for(&after, &read).unwrap()));
    // An analyst's change on the platform shows through.
    after.status = DefenderStatus::Resolved;
    after.assigned_to = Some("someone@contoso.com".into());
    let read = to_sentinel(name, &after, Some(&asked));
    assert_eq!(read.status, SentinelStatus::Closed);
    assert_eq!(read.owner.upn_or_email(), Some("someone@contoso.com"));
}

#[test]
fn a_merged_sources_change_is_told_in_words_and_only_what_changed() {
    let p = platform(vec![
        alert("a1", "2026-01-01T00:00:00Z", SRC, "7"),
        alert("a2", "2026-01-01T00:01:00Z", SRC, "8"),
    ]);
    let tenant = TenantId::parse(SRC).unwrap();
    let merged =
        SentinelIncidentName::for_defender(&tenant, &DefenderIncidentId::parse("8").unwrap());
    let (t, id) = source_named(&p, merged).unwrap();
    assert_eq!((t.as_str(), id.as_str()), (SRC, "8"));
    let other = SentinelIncidentName::parse("6f1c2a4e-93d1-4b7a-9c0e-5d8e1f2a3b4c").unwrap();
    assert!(source_named(&p, other).is_none());

    let before = to_sentinel(merged, &p, None);
    assert!(changes(&before, &before).is_empty());
    let mut after = before.clone();
    after.status = SentinelStatus::Closed;
    after.classification = Some(SentinelClassification::TruePositive);
    after.classification_reason = Some(ClassificationReason::SuspiciousActivity);
    after.labels = vec![Label {
        name: "wave-2".into(),
        kind: LabelKind::User,
    }];
    let said = changes(&before, &after);
    assert_eq!(said.len(), 3, "{said:?}");
    assert_eq!(said[0], "status New → Closed", "{said:?}");
    assert!(said[1].contains("TruePositive"), "{said:?}");
    assert_eq!(said[2], "tags [] → [wave-2]");
    let note = merged_change_note(&t, &id, &said);
    assert!(
        note.starts_with("[Defender] Defender incident #8 of tenant"),
        "{note}"
    );
    assert!(note.contains("status New → Closed"), "{note}");
}
