use super::*;
use serde_json::json;

use dss_test_support::fixture;

// The mapping reads raw JSON text; these take parsed values for readable tests.
fn raw(v: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).unwrap()
}
fn incident(t: &TenantId, v: Value) -> Result<DefenderIncident, String> {
    super::incident(t, &raw(&v))
}
fn evidence(v: Value) -> Evidence {
    super::evidence(raw(&v))
}
fn id_hint(v: &Value) -> String {
    super::id_hint(&raw(v))
}

fn tenant() -> TenantId {
    TenantId::parse("b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c").unwrap()
}

#[test]
fn list_fixture_maps_with_every_evidence_kind() {
    let page = fixture("graph-list-incidents.json");
    let raw = page["value"][0].clone();
    let inc = incident(&tenant(), raw).unwrap();
    assert_eq!(inc.id.as_str(), "2972395");
    assert_eq!(inc.status, DefenderStatus::Active);
    assert_eq!(inc.severity, DefenderSeverity::Medium);
    assert_eq!(
        inc.classification,
        Some(DefenderClassification::TruePositive)
    );
    assert_eq!(inc.determination, Some(Determination::MultiStagedAttack));
    assert_eq!(
        inc.assigned_to.as_deref(),
        Some("KaiC@contoso.onmicrosoft.com")
    );
    assert_eq!(inc.custom_tags, vec!["Demo"], "`tags` read as customTags");
    assert_eq!(inc.system_tags, vec!["Defender Experts"]);
    assert_eq!(
        inc.comments[0].author.as_deref(),
        Some("DavidS@contoso.onmicrosoft.com"),
        "createdBy alias"
    );
    assert!(inc.comments[0].created.is_some(), "createdTime alias");
    assert_eq!(
        inc.last_update.nanosecond(),
        113_333_300,
        "7-digit fractions"
    );
    let alerts = inc.alerts.unwrap();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.id, "da637551227677560813_-961444813");
    assert_eq!(a.service_source, "microsoftDefenderForEndpoint");
    assert_eq!(a.mitre_techniques, vec!["T1564.001"]);
    assert_eq!(
        a.raw.to_value()["recommendedActions"]
            .as_str()
            .map(|s| s.len() > 100),
        Some(true),
        "raw kept whole"
    );
    let kinds: Vec<(&str, Option<&str>)> = a
        .evidence
        .iter()
        .map(|e| (e.kind.as_str(), e.key.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("deviceEvidence", Some("tempDns")),
            (
                "fileEvidence",
                Some("8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec")
            ),
            ("processEvidence", Some("\"MsSense.exe\"")),
            (
                "registryKeyEvidence",
                Some(
                    "HKEY_LOCAL_MACHINE\\SYSTEM\\CONTROLSET001\\CONTROL\\WMI\\AUTOLOGGER\\SENSEAUDITLOGGER"
                )
            ),
        ]
    );
    assert_eq!(a.evidence[0].roles, vec!["compromised"]);
    assert_eq!(a.evidence[0].verdict.as_deref(), Some("unknown"));
    assert_eq!(
        a.evidence[0].raw.to_value()["vmMetadata"]["cloudProvider"],
        "azure"
    );
}

#[test]
fn update_response_fixture_maps_new_fields() {
    let inc = incident(&tenant(), fixture("graph-update-incident.response.json")).unwrap();
    assert_eq!(
        inc.summary
            .as_deref()
            .map(|s| s.starts_with("Defender Experts")),
        Some(true)
    );
    assert_eq!(
        inc.last_modified_by.as_deref(),
        Some("API-App:admin@contoso.com")
    );
    assert_eq!(inc.alerts, None, "no $expand, no alerts");
    assert_eq!(inc.custom_tags, vec!["Demo"]);
}

#[test]
fn unknown_members_and_read_spellings_are_kept() {
    let raw = json!({
        "id": "7", "status": "awaitingAction", "severity": "critical", "classification": "somethingNew",
        "determination": "compromisedUser", "createdDateTime": "2024-01-01T00:00:00Z",
        "lastUpdateDateTime": "2024-01-02T00:00:00.1234567Z", "redirectIncidentId": null
    });
    let inc = incident(&tenant(), raw).unwrap();
    assert_eq!(inc.status, DefenderStatus::AwaitingAction);
    assert_eq!(
        inc.severity,
        DefenderSeverity::Unrecognized("critical".into())
    );
    assert_eq!(
        inc.classification,
        Some(DefenderClassification::Unrecognized("somethingNew".into()))
    );
    assert_eq!(inc.determination, Some(Determination::CompromisedAccount));
}

#[test]
fn bad_items_are_errors_naming_the_problem() {
    let base = json!({"id": "7", "status": "active", "createdDateTime": "2024-01-01T00:00:00Z", "lastUpdateDateTime": "2024-01-01T00:00:00Z"});
    let mut bad_id = base.clone();
    bad_id["id"] = json!("12/34");
    assert!(incident(&tenant(), bad_id).unwrap_err().contains("12/34"));
    let mut no_time = base.clone();
    no_time
        .as_object_mut()
        .unwrap()
        .remove("lastUpdateDateTime");
    assert!(
        incident(&tenant(), no_time)
            .unwrap_err()
            .contains("lastUpdateDateTime")
    );
    let mut alert_without_id = base.clone();
    alert_without_id["alerts"] = json!([{"title": "x"}]);
    assert!(
        incident(&tenant(), alert_without_id)
            .unwrap_err()
            .contains("no id")
    );
    assert_eq!(id_hint(&json!({"id": 5})), "5");
    assert_eq!(id_hint(&json!({})), "?");
}

#[test]
fn evidence_keys_per_type_and_unknown_types_kept() {
    let cases = [
        (
            json!({"@odata.type": "#microsoft.graph.security.userEvidence", "userAccount": {"accountName": "kai", "userPrincipalName": "kai@contoso.com"}}),
            "userEvidence",
            "kai@contoso.com",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "10.1.2.3"}),
            "ipEvidence",
            "10.1.2.3",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.security.urlEvidence", "url": "http://x.test/a"}),
            "urlEvidence",
            "http://x.test/a",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.security.mailboxEvidence", "primaryAddress": "a@b.c"}),
            "mailboxEvidence",
            "a@b.c",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.security.analyzedMessageEvidence", "internetMessageId": "<m@x>"}),
            "analyzedMessageEvidence",
            "<m@x>",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.security.mailClusterEvidence", "query": "q", "clusterByValue": "v"}),
            "mailClusterEvidence",
            "q",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.security.cloudApplicationEvidence", "appId": 11161}),
            "cloudApplicationEvidence",
            "11161",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.security.oauthApplicationEvidence", "appId": "abc"}),
            "oauthApplicationEvidence",
            "abc",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.security.registryValueEvidence", "registryHive": "HKLM", "registryKey": "K", "registryValueName": "V"}),
            "registryValueEvidence",
            "HKLM\\K\\V",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.security.securityGroupEvidence", "displayName": "Admins"}),
            "securityGroupEvidence",
            "Admins",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.security.fileEvidence", "fileDetails": {"sha256": null, "fileName": "a.exe"}}),
            "fileEvidence",
            "a.exe",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.security.brandNewEvidence", "name": "thing", "extra": [1]}),
            "brandNewEvidence",
            "thing",
        ),
    ];
    for (raw, kind, key) in cases {
        let e = evidence(raw.clone());
        assert_eq!(e.kind, kind);
        assert_eq!(e.key.as_deref(), Some(key), "{kind}");
        assert_eq!(e.raw.to_value(), raw);
    }
    let e = evidence(json!({"verdict": "malicious"}));
    assert_eq!(
        (e.kind.as_str(), e.key, e.verdict.as_deref()),
        ("unknown", None, Some("malicious"))
    );
}
