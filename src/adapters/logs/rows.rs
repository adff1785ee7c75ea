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
    ("RawJson2", "string"),
    ("RawJson3", "string"),
    ("RawJson4", "string"),
    ("RawJson5", "string"),
    ("RawJson6", "string"),
    ("RawJson7", "string"),
    ("RawJson8", "string"),
    ("RawJson9", "string"),
    ("RawJson10", "string"),
    ("RawJson11", "string"),
    ("RawJson12", "string"),
    ("RawJson13", "string"),
    ("RawJson14", "string"),
    ("RawJson15", "string"),
    ("RawJson16", "string"),
    ("RawTruncated", "boolean"),
];

/// The Logs Ingestion API cuts any field value over 64 KB ("Maximum size for field values: 64
/// KB. Fields longer than 64 KB are truncated", Azure Monitor service limits). Whether KB means
/// 1,000 or 1,024, and bytes or characters, is not said: a part of at most 60,000 UTF-8 bytes is
/// under every reading.
pub const MAX_FIELD_BYTES: usize = 60_000;

/// `RawJson` and its continuation columns `RawJson2` … `RawJson16`: the raw JSON text is split
/// over them in parts of at most [`MAX_FIELD_BYTES`] (`strcat(RawJson, RawJson2, …, RawJson16)`
/// gives it back). 16 parts hold 960,000 bytes, about what one 1 MB call can carry anyway.
pub const RAW_COLUMNS: usize = 16;

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
    /// The item's JSON text as Graph sent it, over `RawJson`, `RawJson2`, … (string columns).
    #[serde(flatten)]
    pub raw_json: RawText<'a>,
    pub raw_truncated: bool,
}

/// A raw JSON text, serialized as the columns `RawJson`, `RawJson2`, …: consecutive parts of at
/// most [`MAX_FIELD_BYTES`] each, cut at character boundaries. A text longer than the columns
/// hold is cut at the end of the last one (the row is marked `RawTruncated`).
#[derive(Debug, Clone, Default)]
pub(super) struct RawText<'a>(pub Cow<'a, str>);

impl RawText<'_> {
    /// The parts, in column order.
    pub(super) fn parts(&self) -> Vec<&str> {
        split_at_most(&self.0, MAX_FIELD_BYTES, RAW_COLUMNS)
    }

    /// Whether every byte of the text fits the columns.
    pub(super) fn fits(&self) -> bool {
        self.0.len() <= MAX_FIELD_BYTES
            || self.parts().iter().map(|p| p.len()).sum::<usize>() == self.0.len()
    }
}

impl Serialize for RawText<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.0.len() <= MAX_FIELD_BYTES {
            // Nearly every row: one column, no split.
            let mut m = ser.serialize_map(Some(1))?;
            m.serialize_entry("RawJson", &*self.0)?;
            return m.end();
        }
        let parts = self.parts();
        let mut m = ser.serialize_map(Some(parts.len().max(1)))?;
        m.serialize_entry("RawJson", parts.first().copied().unwrap_or_default())?;
        for (i, part) in parts.iter().enumerate().skip(1) {
            m.serialize_entry(&format!("RawJson{}", i + 1), part)?;
        }
        m.end()
    }
}

/// At most `n` consecutive slices of `s` of at most `max` bytes each, cut at char boundaries.
fn split_at_most(s: &str, max: usize, n: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s;
    while !rest.is_empty() && parts.len() < n {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        parts.push(&rest[..end]);
        rest = &rest[end..];
    }
    parts
}

/// A string column value cut to [`MAX_FIELD_BYTES`] (the whole text is in `RawJson`).
fn capped(s: &str) -> &str {
    split_at_most(s, MAX_FIELD_BYTES, 1)
        .first()
        .copied()
        .unwrap_or_default()
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
    let raw_json = RawText(Cow::Borrowed(raw.get()));
    let content_fingerprint = fingerprint(&raw_json.0);
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
        alert_id: capped(&a.id),
        alert_title: capped(&a.title),
        alert_severity: capped(a.severity.as_str()),
        alert_status: capped(&a.status),
        service_source: capped(&a.service_source),
        detection_source: a.detection_source.as_deref().map(capped),
        category: a.category.as_deref().map(capped),
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
        raw_truncated: !raw_json.fits(),
        raw_json,
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
    row.evidence_type = Some(capped(&ev.kind));
    row.evidence_key = ev.key.as_deref().map(capped);
    row.verdict = ev.verdict.as_deref().map(capped);
    row.remediation_status = ev.remediation_status.as_deref().map(capped);
    row.evidence_roles = Some(&ev.roles);
    row
}

/// Serializes a row, cutting `RawJson` (with [`TRUNCATION_MARKER`]) until the row fits in
/// `max_bytes` and the text fits its columns: a row is never dropped. The fingerprint and row id stay those of the full content.
pub(super) fn serialize_within(
    mut row: Row<'_>,
    max_bytes: usize,
) -> Result<Vec<u8>, serde_json::Error> {
    let bytes = serde_json::to_vec(&row)?;
    if bytes.len() <= max_bytes && row.raw_json.fits() {
        return Ok(bytes);
    }
    let original = std::mem::take(&mut row.raw_json.0);
    row.raw_json = RawText(Cow::Borrowed(TRUNCATION_MARKER));
    row.raw_truncated = true;
    let rest = serde_json::to_vec(&row)?.len();
    // Keep the longest prefix whose escaped form fits what the other fields leave (and the
    // names of the continuation columns it may spread over).
    let mut budget = max_bytes.saturating_sub(rest + RAW_COLUMNS * r#","RawJson16":"""#.len());
    let mut keep = 0;
    // What the columns surely hold (a part may end up to 3 bytes short at a char boundary).
    let capacity = RAW_COLUMNS * (MAX_FIELD_BYTES - 3) - TRUNCATION_MARKER.len();
    for (i, c) in original.char_indices() {
        let cost = escaped_len(c);
        if cost > budget || i + c.len_utf8() > capacity {
            break;
        }
        budget -= cost;
        keep = i + c.len_utf8();
    }
    row.raw_json = RawText(Cow::Owned(format!(
        "{}{TRUNCATION_MARKER}",
        &original[..keep]
    )));
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
