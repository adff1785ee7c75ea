use super::*;
use crate::domain::*;
use serde_json::{Value, json};
use time::macros::datetime;

pub(crate) fn record(alert_id: &str, evidence: usize, raw_extra: &str) -> AlertRecord {
    let tenant = TenantId::parse("t1").unwrap();
    let incident_id = DefenderIncidentId::parse("42").unwrap();
    let ev = (0..evidence)
        .map(|i| Evidence {
            kind: "ipEvidence".into(),
            verdict: Some("malicious".into()),
            remediation_status: None,
            roles: vec!["attacker".into()],
            key: Some(format!("10.0.0.{i}")),
            raw: RawJson::from_value(&json!({"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": format!("10.0.0.{i}")})),
        })
        .collect();
    AlertRecord {
        sentinel_name: SentinelIncidentName::for_defender(&tenant, &incident_id),
        tenant,
        incident_id,
        alert: Alert {
            id: alert_id.into(),
            title: "Suspicious".into(),
            severity: DefenderSeverity::High,
            status: "new".into(),
            service_source: "microsoftDefenderForEndpoint".into(),
            detection_source: Some("antivirus".into()),
            category: None,
            created: Some(datetime!(2024-01-01 0:00 UTC)),
            last_update: Some(datetime!(2024-01-02 0:00 UTC)),
            first_activity: None,
            last_activity: None,
            mitre_techniques: vec!["T1059".into()],
            evidence: ev,
            raw: RawJson::from_value(&json!({"id": alert_id, "extra": raw_extra})),
        },
    }
}

fn as_json(row: Row<'_>) -> Value {
    serde_json::from_slice(&serialize_within(row, MAX).unwrap()).unwrap()
}
const MAX: usize = 1_000_000;

#[test]
fn column_names_follow_the_logs_ingestion_rules() {
    let reserved = [
        "TenantId",
        "Title",
        "Type",
        "id",
        "UniqueId",
        "_ResourceId",
        "_SubscriptionId",
    ];
    for (name, ty) in STREAM_COLUMNS {
        assert!(
            name.len() <= 45 && name.chars().next().unwrap().is_ascii_alphabetic(),
            "{name}"
        );
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        assert!(
            !reserved.iter().any(|r| r.eq_ignore_ascii_case(name)),
            "{name} is reserved"
        );
        assert!(["string", "datetime", "int", "boolean", "dynamic"].contains(ty));
    }
}

#[test]
fn one_row_per_alert_and_per_evidence_with_only_declared_columns() {
    let r = record("a1", 2, "");
    let rows: Vec<Value> = rows_for(&r, datetime!(2025-01-01 0:00 UTC))
        .into_iter()
        .map(as_json)
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["RowKind"], "alert");
    assert_eq!(rows[1]["RowKind"], "evidence");
    assert_eq!(rows[2]["EvidenceIndex"], 1);
    assert_eq!(rows[2]["EvidenceKey"], "10.0.0.1");
    assert_eq!(rows[1]["Verdict"], "malicious");
    assert_eq!(rows[0]["SourceTenantId"], "t1");
    assert_eq!(rows[0]["DefenderIncidentId"], "42");
    assert_eq!(rows[0]["SentinelIncidentName"], r.sentinel_name.to_string());
    assert_eq!(
        rows[0]["TimeGenerated"], "2025-01-01T00:00:00Z",
        "send time"
    );
    assert_eq!(rows[0]["AlertLastUpdateTime"], "2024-01-02T00:00:00Z");
    let raw: Value = serde_json::from_str(rows[0]["RawJson"].as_str().unwrap()).unwrap();
    assert_eq!(
        raw,
        r.alert.raw.to_value(),
        "raw JSON kept whole, as a string"
    );
    let names: Vec<&str> = STREAM_COLUMNS.iter().map(|(n, _)| *n).collect();
    for row in &rows {
        for key in row.as_object().unwrap().keys() {
            assert!(names.contains(&key.as_str()), "{key} not declared");
        }
    }
}

#[test]
fn row_ids_are_stable_and_change_with_content_or_slot() {
    let now = datetime!(2025-01-01 0:00 UTC);
    let a = record("a1", 1, "x");
    let ids = |r: &AlertRecord| {
        rows_for(r, now)
            .into_iter()
            .map(|row| row.row_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&a),
        ids(&record("a1", 1, "x")),
        "same content, same ids"
    );
    assert_ne!(
        ids(&a)[0],
        ids(&record("a1", 1, "y"))[0],
        "changed content, new id"
    );
    assert_eq!(
        ids(&a)[1],
        ids(&record("a1", 1, "y"))[1],
        "unchanged evidence keeps its id"
    );
    assert_ne!(ids(&a)[0], ids(&a)[1]);
}

#[test]
fn an_oversized_row_is_cut_with_a_marker_never_dropped() {
    let big = "\"q\"".repeat(400_000); // 1.2 MB of text that escaping makes bigger
    let r = record("a1", 0, &big);
    let row = rows_for(&r, datetime!(2025-01-01 0:00 UTC)).remove(0);
    let bytes = serialize_within(row, MAX).unwrap();
    assert!(bytes.len() <= MAX, "{}", bytes.len());
    assert!(
        bytes.len() > MAX - 1000,
        "cut close to the limit, not emptied: {}",
        bytes.len()
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        raw_of(&v).ends_with(TRUNCATION_MARKER),
        "the joined RawJson columns end with the marker"
    );
    assert_eq!(v["RawTruncated"], true);
    assert_eq!(
        v["ContentFingerprint"],
        fingerprint(r.alert.raw.get()),
        "fingerprint of the full content"
    );
}

/// Joins `RawJson`, `RawJson2`, … of a row as `strcat` would.
fn raw_of(v: &Value) -> String {
    let mut out = v["RawJson"].as_str().unwrap().to_owned();
    for i in 2..=RAW_COLUMNS {
        if let Some(p) = v[format!("RawJson{i}")].as_str() {
            out.push_str(p);
        }
    }
    out
}

#[test]
fn a_raw_json_over_the_field_limit_is_split_over_columns_each_under_it() {
    // 200,000 characters, some of them multi-byte, so a part boundary can fall inside one.
    let big: String = "aé€😀".repeat(20_000);
    let r = record("a1", 0, &big);
    let v = as_json(rows_for(&r, datetime!(2025-01-01 0:00 UTC)).remove(0));
    let columns: Vec<&str> = v
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("RawJson"))
        .map(String::as_str)
        .collect();
    assert!(columns.len() > 1, "split: {columns:?}");
    for c in &columns {
        let n = v[*c].as_str().unwrap().len();
        assert!(n <= MAX_FIELD_BYTES && n > 0, "{c} holds {n} bytes");
        assert!(n < 64_000, "{c} is under the service's 64 KB");
    }
    assert_eq!(v["RawTruncated"], false);
    assert_eq!(
        raw_of(&v),
        r.alert.raw.get(),
        "the parts join to the raw JSON"
    );
    let parsed: Value = serde_json::from_str(&raw_of(&v)).unwrap();
    assert_eq!(parsed["extra"], big.as_str());
}

#[test]
fn every_other_string_column_stays_under_the_field_limit() {
    let mut r = record("a1", 1, "x");
    r.alert.title = "t".repeat(100_000);
    r.alert.evidence[0].key = Some("k".repeat(100_000));
    for row in rows_for(&r, datetime!(2025-01-01 0:00 UTC)) {
        let v = as_json(row);
        for (k, val) in v.as_object().unwrap() {
            if let Some(s) = val.as_str() {
                assert!(s.len() <= MAX_FIELD_BYTES, "{k} holds {} bytes", s.len());
            }
        }
    }
}

#[test]
fn a_raw_json_beyond_all_columns_is_cut_and_marked() {
    let r = record("a1", 0, &"x".repeat(RAW_COLUMNS * MAX_FIELD_BYTES + 5_000));
    let v = as_json(rows_for(&r, datetime!(2025-01-01 0:00 UTC)).remove(0));
    assert_eq!(v["RawTruncated"], true);
    assert!(raw_of(&v).ends_with(TRUNCATION_MARKER));
    assert!(v[format!("RawJson{RAW_COLUMNS}")].is_string());
}
