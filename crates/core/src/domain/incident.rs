//! Incidents as each side holds them, and the synced fields of each side in its own vocabulary.

use super::*;
use time::OffsetDateTime;

/// A Defender XDR incident, as read from Graph, mapped out of the wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct DefenderIncident {
    pub tenant: TenantId,
    pub id: DefenderIncidentId,
    pub display_name: String,
    pub description: Option<String>,
    pub summary: Option<String>,
    pub status: DefenderStatus,
    pub severity: DefenderSeverity,
    pub classification: Option<DefenderClassification>,
    pub determination: Option<Determination>,
    pub resolving_comment: Option<String>,
    /// Owner as Graph holds it: free text, typically a UPN or e-mail.
    pub assigned_to: Option<String>,
    pub custom_tags: Vec<String>,
    pub system_tags: Vec<String>,
    pub comments: Vec<DefenderComment>,
    pub redirect_incident_id: Option<DefenderIncidentId>,
    pub web_url: Option<String>,
    pub created: OffsetDateTime,
    pub last_update: OffsetDateTime,
    pub last_modified_by: Option<String>,
    /// `None` when the incident was read without `$expand=alerts` and alerts were not fetched.
    pub alerts: Option<Vec<Alert>>,
}

impl DefenderIncident {
    /// The synced fields, in Defender's vocabulary.
    pub fn fields(&self) -> DefenderFields {
        DefenderFields {
            status: self.status.clone(),
            severity: self.severity.clone(),
            classification: self.classification.clone(),
            determination: self.determination.clone(),
            resolving_comment: self.resolving_comment.clone(),
            assigned_to: self.assigned_to.clone(),
            custom_tags: self.custom_tags.clone(),
        }
    }
}

/// A Defender incident comment (append-only on the Defender side).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DefenderComment {
    pub text: String,
    pub author: Option<String>,
    pub created: Option<OffsetDateTime>,
}

/// A JSON document kept exactly as received: alerts and evidence go to Logs Ingestion whole.
/// Holding the text rather than a parsed tree makes a page of alerts cheap to read, clone, hash
/// and send (trees of maps were a third of a sync cycle's CPU).
#[derive(Clone)]
pub struct RawJson(Box<serde_json::value::RawValue>);

impl RawJson {
    /// Wraps JSON text already checked by the parser.
    pub fn new(raw: Box<serde_json::value::RawValue>) -> Self {
        Self(raw)
    }

    /// The text of a parsed value (tests and tools that build payloads).
    pub fn from_value(v: &serde_json::Value) -> Self {
        Self(
            serde_json::value::to_raw_value(v)
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
        )
    }

    /// The JSON text, exactly as received.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Parses the text (for the few readers that need a field of it).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

/// One alert of a Defender incident. The original JSON is kept whole (`raw`) for Logs Ingestion.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: String,
    pub title: String,
    pub severity: DefenderSeverity,
    pub status: String,
    pub service_source: String,
    pub detection_source: Option<String>,
    pub category: Option<String>,
    pub created: Option<OffsetDateTime>,
    pub last_update: Option<OffsetDateTime>,
    pub first_activity: Option<OffsetDateTime>,
    pub last_activity: Option<OffsetDateTime>,
    pub mitre_techniques: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub raw: RawJson,
}

/// One evidence item of an alert. Unknown evidence types are kept, never a parse failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Short type name, e.g. `deviceEvidence` (from `@odata.type`), or `unknown`.
    pub kind: String,
    pub verdict: Option<String>,
    pub remediation_status: Option<String>,
    pub roles: Vec<String>,
    /// The most telling identifying value of the item (device name, file sha256, UPN, IP, URL, …).
    pub key: Option<String>,
    pub raw: RawJson,
}

/// The synced fields of a Defender incident, in Defender's vocabulary. Stored as one side of
/// the three-way merge base.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DefenderFields {
    pub status: DefenderStatus,
    pub severity: DefenderSeverity,
    pub classification: Option<DefenderClassification>,
    pub determination: Option<Determination>,
    pub resolving_comment: Option<String>,
    pub assigned_to: Option<String>,
    pub custom_tags: Vec<String>,
}

/// A Sentinel incident, as read from (or to be written to) ARM.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelIncident {
    pub name: SentinelIncidentName,
    /// Optimistic-concurrency token; `None` for one not yet created.
    pub etag: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub severity: SentinelSeverity,
    pub status: SentinelStatus,
    pub classification: Option<SentinelClassification>,
    pub classification_reason: Option<ClassificationReason>,
    pub classification_comment: Option<String>,
    pub owner: Owner,
    pub labels: Vec<Label>,
    pub first_activity: Option<OffsetDateTime>,
    pub last_activity: Option<OffsetDateTime>,
    /// Read-only fields, set by the service.
    pub incident_number: Option<i64>,
    pub created: Option<OffsetDateTime>,
    pub last_modified: Option<OffsetDateTime>,
    /// Comments on the incident (`additionalData.commentsCount`, read-only), when the service
    /// said; never written.
    pub comments_count: Option<u32>,
    /// With the unified target: the platform incident this is (its Graph id in the workspace
    /// tenant), which the state keeps as the source's pair; `None` on the ARM target.
    pub platform_id: Option<DefenderIncidentId>,
}

impl SentinelIncident {
    /// The synced fields, in Sentinel's vocabulary (reserved and AutoAssigned labels are not tags).
    pub fn fields(&self) -> SentinelFields {
        SentinelFields {
            status: self.status.clone(),
            severity: self.severity.clone(),
            classification: self.classification.clone(),
            classification_reason: self.classification_reason.clone(),
            classification_comment: self.classification_comment.clone(),
            owner_upn: self.owner.upn_or_email().map(str::to_owned),
            tags: self.user_tags(),
        }
    }

    /// Labels an analyst can edit as tags: `User` labels other than the reserved ones.
    pub fn user_tags(&self) -> Vec<String> {
        self.labels
            .iter()
            .filter(|l| {
                l.kind != LabelKind::AutoAssigned && !RESERVED_LABELS.contains(&l.name.as_str())
            })
            .map(|l| l.name.clone())
            .collect()
    }
}

/// Sentinel's description limit, in characters (the planner cuts to it, the ARM adapter refuses
/// more).
pub const SENTINEL_DESCRIPTION_MAX_CHARS: usize = 5_000;

/// Labels the connector owns; never treated as tags.
pub const RESERVED_LABELS: [&str; 2] = ["Defender", "Redirected"];

/// A Sentinel incident owner. Sentinel fills the rest from the object id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owner {
    pub object_id: Option<uuid::Uuid>,
    pub user_principal_name: Option<String>,
    pub email: Option<String>,
    pub assigned_to: Option<String>,
    /// `User`, `Group` or `Unknown` as read; a full-replace PUT must send it back, or a group
    /// owner is looked up as a user.
    pub owner_type: Option<OwnerType>,
}

impl Owner {
    /// The owner's UPN, else e-mail: what Defender's `assignedTo` is compared with.
    pub fn upn_or_email(&self) -> Option<&str> {
        self.user_principal_name
            .as_deref()
            .or(self.email.as_deref())
    }

    /// True when the owner is a group (it has no UPN to compare with Defender's `assignedTo`).
    pub fn is_group(&self) -> bool {
        self.owner_type == Some(OwnerType::Group) && self.object_id.is_some()
    }

    /// True when nobody is assigned.
    pub fn is_unassigned(&self) -> bool {
        self.object_id.is_none() && self.upn_or_email().is_none()
    }
}

/// A Sentinel label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub name: String,
    pub kind: LabelKind,
}

/// Who set a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    User,
    AutoAssigned,
}

/// The synced fields of a Sentinel incident, in Sentinel's vocabulary. Stored as the other side
/// of the three-way merge base.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SentinelFields {
    pub status: SentinelStatus,
    pub severity: SentinelSeverity,
    pub classification: Option<SentinelClassification>,
    pub classification_reason: Option<ClassificationReason>,
    pub classification_comment: Option<String>,
    /// Owner UPN (or e-mail); compared case-insensitively with Defender's `assignedTo`.
    pub owner_upn: Option<String>,
    /// User tags (labels minus reserved and AutoAssigned ones).
    pub tags: Vec<String>,
}

/// A Sentinel incident comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelComment {
    pub id: String,
    pub message: String,
    pub author: Option<String>,
    pub created: Option<OffsetDateTime>,
}

/// A directory user, as resolved from a UPN (for Sentinel owner object ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub object_id: uuid::Uuid,
    pub user_principal_name: String,
    pub mail: Option<String>,
    pub display_name: Option<String>,
}
