//! The DCR stream's rows: one per alert and one per evidence item. Column names avoid the
//! reserved `TenantId`, `Title`, `Type`, `id`, `UniqueId`, `_ResourceId`, `_SubscriptionId`
//! (≤ 45 characters, `[A-Za-z0-9_]`); `deploy/logs-stream-columns.md` documents them.

use crate::domain::{Alert, Evidence, RawJson, stable_uuid};
use crate::ports::AlertRecord;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use time::OffsetDateTime;

/// The stream's columns with their DCR types, in row order (for the DCR and the simulator).
pub const STREAM_COLUMNS: &[(&str, &str)] = &[
    ("TimeGenerated", "datetime"),
    ("RowId", "string"),
    ("ContentFingerprint", "string"),
    ("RowKind", "string"),
    ("SourceTenantId", "string"),
    ("DefenderIncidentId", "string"),
    ("SentinelIncidentName", "string"),
    ("AlertId", "string"),
    ("AlertTitle", "string"),
    ("AlertSeverity", "string"),
    ("AlertStatus", "string"),
    ("ServiceSource", "string"),
    ("DetectionSource", "string"),
    ("Category", "string"),
    ("MitreTechniques", "dynamic"),
    ("AlertCreatedTime", "datetime"),
    ("AlertLastUpdateTime", "datetime"),
    ("FirstActivityTime", "datetime"),
    ("LastActivityTime", "datetime"),
    ("EvidenceIndex", "int"),
    ("EvidenceType", "string"),
    ("EvidenceKey", "string"),
    ("Verdict", "string"),
    ("RemediationStatus", "string"),
    ("EvidenceRoles", "dynamic"),
    ("RawJson", "string"),
    ("RawTruncated", "boolean"),
];

/// Appended to a cut `RawJson`.
pub(super) const TRUNCATION_MARKER: &str = "…[truncated by defender-sentinel-sync]";

/// One row, in [`STREAM_COLUMNS`] order. `None` fields are omitted (null in the table).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Row<'a> {
    #[serde(with = "time::serde::rfc3339")]
    pub time_generated: OffsetDateTime,
    pub row_id: String,
    pub content_fingerprint: String,
    pub row_kind: &'static str,
    pub source_tenant_id: &'a str,
    pub defender_incident_id: &'a str,
    pub sentinel_incident_name: String,
    pub alert_id: &'a str,
    pub alert_title: &'a str,
    pub alert_severity: &'a str,
    pub alert_status: &'a str,
    pub service_source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection_source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'a str>,
    pub mitre_techniques: &'a [String],
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub alert_created_time: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub alert_last_update_time: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub first_activity_time: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub last_activity_time: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation_status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_roles: Option<&'a [String]>,
    /// The item's JSON text as Graph sent it (a string column).
    pub raw_json: Cow<'a, str>,
    pub raw_truncated: bool,
}

/// First 16 bytes of SHA-256 of the raw JSON, hex: changes whenever the content does.
pub(super) fn fingerprint(raw_json: &str) -> String {
    Sha256::digest(raw_json.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The rows of one alert: the alert itself, then each evidence item.
pub(super) fn rows_for(record: &AlertRecord, now: OffsetDateTime) -> Vec<Row<'_>> {
    let alert = &record.alert;
    let mut rows = Vec::with_capacity(1 + alert.evidence.len());
    rows.push(alert_row(record, now));
    for (index, ev) in alert.evidence.iter().enumerate() {
        rows.push(evidence_row(record, index, ev, now));
    }
    rows
}

fn base_row<'a>(
    record: &'a AlertRecord,
    kind: &'static str,
    slot: &str,
    raw: &'a RawJson,
    now: OffsetDateTime,
) -> Row<'a> {
    let a: &'a Alert = &record.alert;
    let raw_json = Cow::Borrowed(raw.get());
    let content_fingerprint = fingerprint(&raw_json);
    let row_id =
        stable_uuid(&[record.tenant.as_str(), &a.id, slot, &content_fingerprint]).to_string();
    Row {
        // The send time: Log Analytics replaces a TimeGenerated older than two days anyway, and
        // the alert's own times have their columns.
        time_generated: now,
        row_id,
        content_fingerprint,
        row_kind: kind,
        source_tenant_id: record.tenant.as_str(),
        defender_incident_id: record.incident_id.as_str(),
        sentinel_incident_name: record.sentinel_name.to_string(),
        alert_id: &a.id,
        alert_title: &a.title,
        alert_severity: a.severity.as_str(),
        alert_status: &a.status,
        service_source: &a.service_source,
        detection_source: a.detection_source.as_deref(),
        category: a.category.as_deref(),
        mitre_techniques: &a.mitre_techniques,
        alert_created_time: a.created,
        alert_last_update_time: a.last_update,
        first_activity_time: a.first_activity,
        last_activity_time: a.last_activity,
        evidence_index: None,
        evidence_type: None,
        evidence_key: None,
        verdict: None,
        remediation_status: None,
        evidence_roles: None,
        raw_json,
        raw_truncated: false,
    }
}

fn alert_row(record: &AlertRecord, now: OffsetDateTime) -> Row<'_> {
    base_row(record, "alert", "alert", &record.alert.raw, now)
}

fn evidence_row<'a>(
    record: &'a AlertRecord,
    index: usize,
    ev: &'a Evidence,
    now: OffsetDateTime,
) -> Row<'a> {
    let mut row = base_row(
        record,
        "evidence",
        &format!("evidence/{index}"),
        &ev.raw,
        now,
    );
    row.evidence_index = Some(index);
    row.evidence_type = Some(&ev.kind);
    row.evidence_key = ev.key.as_deref();
    row.verdict = ev.verdict.as_deref();
    row.remediation_status = ev.remediation_status.as_deref();
    row.evidence_roles = Some(&ev.roles);
    row
}

/// Serializes a row, cutting `RawJson` (with [`TRUNCATION_MARKER`]) until the row fits in
/// `max_bytes`: a row is never dropped. The fingerprint and row id stay those of the full content.
pub(super) fn serialize_within(
    mut row: Row<'_>,
    max_bytes: usize,
) -> Result<Vec<u8>, serde_json::Error> {
    let bytes = serde_json::to_vec(&row)?;
    if bytes.len() <= max_bytes {
        return Ok(bytes);
    }
    let original = std::mem::take(&mut row.raw_json);
    row.raw_json = Cow::Borrowed(TRUNCATION_MARKER);
    row.raw_truncated = true;
    let rest = serde_json::to_vec(&row)?.len();
    // Keep the longest prefix whose escaped form fits what the other fields leave.
    let mut budget = max_bytes.saturating_sub(rest);
    let mut keep = 0;
    for (i, c) in original.char_indices() {
        let cost = escaped_len(c);
        if cost > budget {
            break;
        }
        budget -= cost;
        keep = i + c.len_utf8();
    }
    row.raw_json = Cow::Owned(format!("{}{TRUNCATION_MARKER}", &original[..keep]));
    serde_json::to_vec(&row)
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
