//! Sentinel incidents and their comments, as ARM renders them.

use crate::util::{fmt_time, now};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;

/// A Sentinel incident. `props` holds every property as rendered (writable and read-only).
#[derive(Debug, Clone)]
pub struct SentinelIncident {
    pub name: String,
    pub etag: String,
    pub created: OffsetDateTime,
    pub modified: OffsetDateTime,
    pub props: Map<String, Value>,
    pub comments: BTreeMap<String, SentinelComment>,
}

/// An incident comment.
#[derive(Debug, Clone)]
pub struct SentinelComment {
    pub name: String,
    pub etag: String,
    pub message: String,
    pub created: OffsetDateTime,
    pub modified: OffsetDateTime,
    pub author: Value,
}

/// All incidents of the workspace, by lowercase name.
#[derive(Debug, Default)]
pub struct ArmStore {
    pub incidents: HashMap<String, SentinelIncident>,
    next_number: u64,
    etag_seq: u64,
    /// Changes an "incident created/updated" automation rule would see (only while recording).
    pub events: Option<Vec<UpdateEvent>>,
}

/// One change as an automation rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateEvent {
    pub name: String,
    pub created: bool,
    pub fields: Vec<&'static str>,
    /// `Application` (API caller) or `User` (portal).
    pub by_source: &'static str,
    pub by_name: String,
    pub comments: Vec<String>,
}

/// Trigger field names of the writable properties that differ between two property maps.
pub fn changed_fields(
    old: Option<&Map<String, Value>>,
    new: &Map<String, Value>,
) -> Vec<&'static str> {
    let names: &[(&str, &'static str)] = &[
        ("title", "Title"),
        ("description", "Description"),
        ("severity", "Severity"),
        ("status", "Status"),
        ("classification", "Classification"),
        ("classificationReason", "Classification"),
        ("classificationComment", "Classification"),
        ("owner", "Owner"),
        ("labels", "Labels"),
    ];
    let mut out: Vec<&'static str> = Vec::new();
    for (k, n) in names {
        if old.and_then(|o| o.get(*k)) != new.get(*k) && !out.contains(n) {
            out.push(n);
        }
    }
    out
}

/// Writable incident properties: everything else in a PUT body is ignored.
pub const WRITABLE: &[&str] = &[
    "title",
    "description",
    "severity",
    "status",
    "classification",
    "classificationReason",
    "classificationComment",
    "owner",
    "labels",
    "firstActivityTimeUtc",
    "lastActivityTimeUtc",
];

impl ArmStore {
    /// A new opaque etag, quoted as ARM writes it.
    pub fn new_etag(&mut self) -> String {
        self.etag_seq += 1;
        format!(
            "\"{:08x}-0000-0000-0000-{:012x}\"",
            self.etag_seq,
            now().unix_timestamp()
        )
    }

    pub fn get(&self, name: &str) -> Option<&SentinelIncident> {
        self.incidents.get(&name.to_ascii_lowercase())
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut SentinelIncident> {
        self.incidents.get_mut(&name.to_ascii_lowercase())
    }

    /// Creates or fully replaces the writable properties of `name`; read-only ones are kept or
    /// assigned. Returns true when created.
    pub fn write(&mut self, name: &str, writable: Map<String, Value>, base_url: &str) -> bool {
        let etag = self.new_etag();
        let t = now();
        let key = name.to_ascii_lowercase();
        let created = !self.incidents.contains_key(&key);
        if created {
            self.next_number += 1;
            let number = self.next_number;
            let mut props = Map::new();
            props.insert("incidentNumber".into(), json!(number));
            props.insert("createdTimeUtc".into(), json!(fmt_time(t)));
            props.insert("providerName".into(), json!("Azure Sentinel"));
            props.insert("providerIncidentId".into(), json!(number.to_string()));
            props.insert("incidentUrl".into(), json!(format!("https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident{base_url}/{name}")));
            props.insert("relatedAnalyticRuleIds".into(), json!([]));
            let inc = SentinelIncident {
                name: name.to_owned(),
                etag: String::new(),
                created: t,
                modified: t,
                props,
                comments: BTreeMap::new(),
            };
            self.incidents.insert(key.clone(), inc);
        }
        let Some(inc) = self.incidents.get_mut(&key) else {
            return created;
        };
        for k in WRITABLE {
            inc.props.remove(*k);
        }
        inc.props.extend(writable);
        inc.etag = etag;
        inc.modified = t.max(inc.modified);
        inc.props
            .insert("lastModifiedTimeUtc".into(), json!(fmt_time(inc.modified)));
        created
    }

    /// Records an automation event when recording is on.
    pub fn record(&mut self, e: UpdateEvent) {
        if let Some(v) = &mut self.events {
            v.push(e);
        }
    }

    /// Marks a change made outside a PUT (portal action, comment): new etag and modified time.
    pub fn touch(&mut self, name: &str) {
        let etag = self.new_etag();
        if let Some(inc) = self.get_mut(name) {
            inc.etag = etag;
            inc.modified = now().max(inc.modified);
            inc.props
                .insert("lastModifiedTimeUtc".into(), json!(fmt_time(inc.modified)));
        }
    }
}

impl SentinelIncident {
    /// The ARM resource envelope.
    pub fn render(&self, base_url: &str) -> Value {
        let mut props = self.props.clone();
        let alerts = props
            .get("additionalData")
            .and_then(|a| a.get("alertsCount"))
            .cloned()
            .unwrap_or(json!(0));
        let mut extra = props
            .get("additionalData")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        extra.insert("alertsCount".into(), alerts);
        extra.insert("commentsCount".into(), json!(self.comments.len()));
        extra.entry("bookmarksCount").or_insert(json!(0));
        extra.entry("alertProductNames").or_insert(json!([]));
        extra.entry("tactics").or_insert(json!([]));
        props.insert("additionalData".into(), Value::Object(extra));
        props.entry("labels").or_insert(json!([]));
        props.entry("owner").or_insert_with(unassigned_owner);
        json!({
            "id": format!("{base_url}/{}", self.name),
            "name": self.name,
            "type": "Microsoft.SecurityInsights/incidents",
            "etag": self.etag,
            "properties": props,
        })
    }
}

impl SentinelComment {
    pub fn render(&self, incident_url: &str) -> Value {
        json!({
            "id": format!("{incident_url}/comments/{}", self.name),
            "name": self.name,
            "type": "Microsoft.SecurityInsights/incidents/comments",
            "etag": self.etag.trim_matches('"'),
            "properties": {
                "message": self.message,
                "createdTimeUtc": fmt_time(self.created),
                "lastModifiedTimeUtc": fmt_time(self.modified),
                "author": self.author,
            }
        })
    }
}

/// The owner object of an unassigned incident.
pub fn unassigned_owner() -> Value {
    json!({"objectId": null, "email": null, "assignedTo": null, "userPrincipalName": null, "ownerType": "Unknown"})
}
