//! Defender incidents per tenant, stored as Graph JSON (so fixtures load as they are), with the
//! sortable fields parsed once.

use crate::util::{fmt_time, now, parse_time};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;

/// One incident: its Graph JSON without `alerts`, and its alerts.
#[derive(Debug, Clone)]
pub struct GraphIncident {
    pub id: u64,
    pub created: OffsetDateTime,
    pub updated: OffsetDateTime,
    pub body: Map<String, Value>,
    pub alerts: Vec<Value>,
}

impl GraphIncident {
    /// Builds from Graph JSON (with or without `alerts`); `id` must be numeric.
    pub fn from_json(mut v: Value) -> Option<Self> {
        let body = v.as_object_mut()?;
        let alerts = match body.remove("alerts") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        let id = body.get("id")?.as_str()?.parse().ok()?;
        let created = body
            .get("createdDateTime")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .unwrap_or_else(now);
        let updated = body
            .get("lastUpdateDateTime")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .unwrap_or(created);
        Some(Self {
            id,
            created,
            updated,
            body: std::mem::take(body),
            alerts,
        })
    }

    /// The incident as Graph JSON, alerts included.
    pub fn to_json(&self) -> Value {
        let mut b = self.body.clone();
        b.insert("alerts".into(), Value::Array(self.alerts.clone()));
        Value::Object(b)
    }

    /// Marks a change: `lastUpdateDateTime` moves to now (never backwards) and `lastModifiedBy`.
    pub fn touch(&mut self, by: &str) {
        let t = now().max(self.updated);
        self.updated = t;
        self.body
            .insert("lastUpdateDateTime".into(), json!(fmt_time(t)));
        self.body.insert("lastModifiedBy".into(), json!(by));
    }

    /// Appends a comment the way Graph records it.
    pub fn add_comment(&mut self, text: &str, by: &str) {
        let c = json!({"comment": text, "createdByDisplayName": by, "createdDateTime": fmt_time(now())});
        match self.body.get_mut("comments") {
            Some(Value::Array(a)) => a.push(c),
            _ => {
                self.body.insert("comments".into(), json!([c]));
            }
        }
    }

    pub fn str_field(&self, k: &str) -> Option<&str> {
        self.body.get(k).and_then(Value::as_str)
    }
}

/// All tenants' incidents.
#[derive(Debug, Default)]
pub struct GraphStore {
    pub tenants: HashMap<String, BTreeMap<u64, GraphIncident>>,
    next_id: u64,
}

impl GraphStore {
    /// Inserts or replaces an incident; alerts get the incident's id.
    pub fn upsert(&mut self, tenant: &str, mut inc: GraphIncident) -> u64 {
        let id = inc.id;
        for a in &mut inc.alerts {
            if let Some(o) = a.as_object_mut() {
                o.insert("incidentId".into(), json!(id.to_string()));
            }
        }
        self.next_id = self.next_id.max(id + 1);
        self.tenants
            .entry(tenant.to_owned())
            .or_default()
            .insert(id, inc);
        id
    }

    /// A fresh incident id.
    pub fn allocate_id(&mut self) -> u64 {
        if self.next_id == 0 {
            self.next_id = 1001;
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn get(&self, tenant: &str, id: u64) -> Option<&GraphIncident> {
        self.tenants.get(tenant)?.get(&id)
    }

    pub fn get_mut(&mut self, tenant: &str, id: u64) -> Option<&mut GraphIncident> {
        self.tenants.get_mut(tenant)?.get_mut(&id)
    }

    /// Incidents of a tenant (empty for an unknown tenant).
    pub fn list(&self, tenant: &str) -> impl Iterator<Item = &GraphIncident> {
        self.tenants
            .get(tenant)
            .into_iter()
            .flat_map(|m| m.values())
    }
}
