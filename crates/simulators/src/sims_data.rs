//! Data, analyst actions and state inspection on [`Simulators`].

use crate::control::{self, ActionError, DefenderAction, SentinelAction};
use crate::counters::Counters;
use crate::state::{lock, write};
use crate::{DirectoryUser, Simulators, arm, generator, graph, util};
use serde_json::Value;
use std::collections::BTreeMap;

impl Simulators {
    // ---- data -------------------------------------------------------------------------

    /// Adds `n` generated incidents (seeded) to a Defender tenant; returns their ids.
    pub fn seed(&self, tenant: &str, n: usize, seed: u64) -> Vec<String> {
        self.seed_capped(tenant, n, seed, 200)
    }

    /// As [`Self::seed`] with at most `max_alerts` alerts per incident (benchmarks).
    pub fn seed_capped(&self, tenant: &str, n: usize, seed: u64, max_alerts: usize) -> Vec<String> {
        self.seed_shaped(
            tenant,
            n,
            seed,
            generator::Shape {
                max_alerts,
                ..generator::Shape::default()
            },
        )
    }

    /// As [`Self::seed`] with a fixed or capped number of alerts and evidence (benchmarks).
    pub fn seed_shaped(
        &self,
        tenant: &str,
        n: usize,
        seed: u64,
        shape: generator::Shape,
    ) -> Vec<String> {
        let mut g = lock(&self.shared.graph);
        let first = g.allocate_id();
        let incidents = generator::incidents_shaped(n, seed, tenant, first, util::now(), shape);
        incidents
            .into_iter()
            .filter_map(graph::store::GraphIncident::from_json)
            .map(|i| g.upsert(tenant, i).to_string())
            .collect()
    }

    /// Inserts (or replaces) one Graph incident given as Graph JSON (alerts included or not).
    pub fn insert_defender_incident(
        &self,
        tenant: &str,
        incident: Value,
    ) -> Result<String, ActionError> {
        let inc = graph::store::GraphIncident::from_json(incident)
            .ok_or_else(|| ActionError::Invalid("incident needs a numeric string id".into()))?;
        Ok(lock(&self.shared.graph).upsert(tenant, inc).to_string())
    }

    /// Loads a Graph list response (`{"value": [...]}`, e.g. the fixture) into a tenant.
    pub fn load_graph_list(&self, tenant: &str, list: &Value) -> Result<Vec<String>, ActionError> {
        let items = list
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| ActionError::Invalid("no value array".into()))?;
        items
            .iter()
            .map(|i| self.insert_defender_incident(tenant, i.clone()))
            .collect()
    }

    /// Stores a Sentinel incident given as an ARM resource (e.g. the get fixture) as it is.
    pub fn insert_sentinel_incident(&self, resource: &Value) -> Result<String, ActionError> {
        let name = resource
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ActionError::Invalid("no name".into()))?;
        let props = resource
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| ActionError::Invalid("no properties".into()))?;
        let base = arm::incidents_base(&self.shared);
        let mut arm = lock(&self.shared.arm);
        let writable = props
            .iter()
            .filter(|(k, _)| arm::store::WRITABLE.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        arm.write(name, writable, &base);
        if let Some(inc) = arm.get_mut(name) {
            for (k, v) in props {
                inc.props.insert(k, v);
            }
            if let Some(e) = resource.get("etag").and_then(Value::as_str) {
                inc.etag = e.to_owned();
            }
            let time = |k: &str| {
                inc.props
                    .get(k)
                    .and_then(Value::as_str)
                    .and_then(util::parse_time)
            };
            if let (Some(c), Some(m)) = (time("createdTimeUtc"), time("lastModifiedTimeUtc")) {
                inc.created = c;
                inc.modified = m;
            }
        }
        Ok(name.to_owned())
    }

    /// Adds a user to the directory.
    pub fn add_user(&self, user: DirectoryUser) {
        write(&self.shared.directory).add(user);
    }

    // ---- analyst actions ----------------------------------------------------------------

    /// A Defender-side analyst action; returns the incident as Graph JSON with alerts.
    pub fn defender_action(
        &self,
        tenant: &str,
        id: &str,
        action: DefenderAction,
    ) -> Result<Value, ActionError> {
        control::defender(&self.shared, tenant, id, action)
    }

    /// A Sentinel-side analyst action; returns the playbook trigger body of this update.
    pub fn sentinel_action(
        &self,
        name: &str,
        action: SentinelAction,
    ) -> Result<Value, ActionError> {
        control::sentinel(&self.shared, name, action)
    }

    /// Starts (or stops) recording every Sentinel incident change an automation rule would fire
    /// on — API writes (updatedBy source `Application`, our own echo included) and portal actions
    /// (`User`). Off by default (no cost).
    pub fn record_automation_triggers(&self, on: bool) {
        let mut arm = lock(&self.shared.arm);
        arm.events = if on {
            Some(arm.events.take().unwrap_or_default())
        } else {
            None
        };
    }

    /// Trigger bodies of the recorded changes, oldest first (rendered with the current incident
    /// state); empties the record. Deliver them to SentinelWebhook through the fake host.
    pub fn drain_automation_triggers(&self) -> Vec<Value> {
        control::drain_triggers(&self.shared)
    }

    /// The playbook trigger body for an incident as it is now (`event`: `"Create"`/`"Update"`).
    pub fn trigger_body(
        &self,
        name: &str,
        updated_fields: &[&str],
        event: &str,
    ) -> Result<Value, ActionError> {
        control::trigger_body(&self.shared, name, updated_fields, event)
    }

    // ---- inspection ---------------------------------------------------------------------

    /// Every incident of a Defender tenant as Graph JSON with alerts, by id.
    pub fn defender_incidents(&self, tenant: &str) -> Vec<Value> {
        lock(&self.shared.graph)
            .list(tenant)
            .map(graph::store::GraphIncident::to_json)
            .collect()
    }

    /// One Defender incident as Graph JSON with alerts.
    pub fn defender_incident(&self, tenant: &str, id: &str) -> Option<Value> {
        let id = id.parse().ok()?;
        lock(&self.shared.graph)
            .get(tenant, id)
            .map(graph::store::GraphIncident::to_json)
    }

    /// Every Sentinel incident as ARM resources, sorted by incident number.
    pub fn sentinel_incidents(&self) -> Vec<Value> {
        let base = arm::incidents_base(&self.shared);
        let arm = lock(&self.shared.arm);
        let mut v: Vec<&arm::store::SentinelIncident> = arm.incidents.values().collect();
        v.sort_by_key(|i| i.props.get("incidentNumber").and_then(Value::as_u64));
        v.into_iter().map(|i| i.render(&base)).collect()
    }

    /// One Sentinel incident as an ARM resource.
    pub fn sentinel_incident(&self, name: &str) -> Option<Value> {
        let base = arm::incidents_base(&self.shared);
        lock(&self.shared.arm).get(name).map(|i| i.render(&base))
    }

    /// Comments of a Sentinel incident as ARM resources, oldest first.
    pub fn sentinel_comments(&self, name: &str) -> Vec<Value> {
        let url = format!("{}/{name}", arm::incidents_base(&self.shared));
        let arm = lock(&self.shared.arm);
        let Some(inc) = arm.get(name) else {
            return Vec::new();
        };
        let mut v: Vec<&arm::store::SentinelComment> = inc.comments.values().collect();
        v.sort_by_key(|c| c.created);
        v.into_iter().map(|c| c.render(&url)).collect()
    }

    /// Rows received on a Logs Ingestion stream.
    pub fn ingested_rows(&self, stream: &str) -> Vec<Value> {
        lock(&self.shared.logs).rows(stream)
    }

    /// Accepted uploads per stream.
    pub fn ingestion_uploads(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.logs).uploads.clone()
    }

    /// Call counters per API and operation.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.counters).clone()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        *lock(&self.shared.counters) = Counters::default();
    }
}
