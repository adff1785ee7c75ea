//! Unified-platform mode (`GraphConfig::unified`): what the unified Defender portal does with
//! the alert rows the sync ingests when the analytics rule of
//! `infra/modules/unified-analytics-rule.bicep` runs over them. Each accepted `alert` row becomes,
//! after [`UnifiedConfig::delay_ms`], a platform alert in the WORKSPACE tenant's Graph
//! (`/security/alerts_v2`) carrying the rule's custom details, and joins the incident grouped by
//! those custom details (one source incident's alerts → one incident; never across source
//! tenants: the rule is excluded from correlation with `#DONT_CORR#`). The guesses are listed in
//! the crate README ("Unified-platform mode").

use crate::graph::store::GraphIncident;
use crate::state::{Shared, lock, read};
use crate::util::{fmt_time, now};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Instant;

/// The rule the platform alerts come from (`detectorId` of every platform alert).
pub const RULE_ID: &str = "6d3f2c8e-5a41-4c1b-9e7d-2b8f0a4c9d11";
/// Custom detail keys the rule defines (the Bicep module's `customDetails`).
pub const SOURCE_TENANT_KEY: &str = "SourceTenantId";
pub const SOURCE_INCIDENT_KEY: &str = "SourceIncidentId";
pub const SOURCE_ALERT_KEY: &str = "SourceAlertId";

/// The unified-platform mode's knobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnifiedConfig {
    /// From ingestion to the platform alert and incident (docs: 5–10 minutes; tests scale it
    /// down). Rows that arrive within one delay are applied together.
    pub delay_ms: u64,
    /// The rule's grouping lookback: an alert of a source incident whose incident was created
    /// longer ago than this starts a new incident (the rule: `lookbackDuration` P7D).
    #[serde(default = "default_lookback")]
    pub lookback_secs: u64,
    /// The platform's batch window: rows ingested within one window are applied together, at
    /// the window's end plus [`Self::delay_ms`], and of the rows of one alert in one window only
    /// the latest becomes visible (the documented "intermediate states dropped"). 0: no windows,
    /// each row is due `delay_ms` after it arrived and the rows due together form the batch.
    #[serde(default)]
    pub batch_ms: u64,
    /// The platform's clock is simulated: it stands still until [`advance`] moves it (so tests
    /// measure the documented minutes in simulated time, in no real time); `delay_ms` and
    /// `batch_ms` are then simulated milliseconds. Off: real time since the mode was used.
    #[serde(default)]
    pub simulated_clock: bool,
}

fn default_lookback() -> u64 {
    7 * 24 * 3600
}

impl Default for UnifiedConfig {
    fn default() -> Self {
        Self {
            delay_ms: 0,
            lookback_secs: default_lookback(),
            batch_ms: 0,
            simulated_clock: false,
        }
    }
}

/// Alert rows waiting for the platform.
#[derive(Debug, Default)]
pub struct UnifiedStore {
    /// Rows with the platform time (ms) they become due.
    pending: Vec<(u64, Value)>,
    /// Platform alerts raised (for ids).
    raised: u64,
    /// Start of the real clock (first use).
    epoch: Option<Instant>,
    /// The simulated clock (ms), when [`UnifiedConfig::simulated_clock`].
    simulated_ms: u64,
}

impl UnifiedStore {
    /// How many rows wait for the platform.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The platform's time in ms: simulated, or real since first use.
    fn now_ms(&mut self, cfg: &UnifiedConfig) -> u64 {
        if cfg.simulated_clock {
            return self.simulated_ms;
        }
        let epoch = *self.epoch.get_or_insert_with(Instant::now);
        u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// When a row ingested at platform time `t` becomes visible: the end of its batch window plus
/// the delay.
pub fn due_at(cfg: &UnifiedConfig, t: u64) -> u64 {
    let window_end = t
        .checked_div(cfg.batch_ms)
        .map_or(t, |k| (k + 1).saturating_mul(cfg.batch_ms));
    window_end.saturating_add(cfg.delay_ms)
}

/// Called on every accepted upload: queues its `alert` rows when the mode is on.
pub fn on_ingest(s: &Shared, rows: &[Value]) {
    let Some(cfg) = read(&s.graph_cfg).unified.clone() else {
        return;
    };
    let mut u = lock(&s.unified);
    let due = due_at(&cfg, u.now_ms(&cfg));
    for r in rows {
        if r.get("RowKind").and_then(Value::as_str) == Some("alert") {
            u.pending.push((due, r.clone()));
        }
    }
}

/// Moves the simulated clock on by `ms` and applies what became due; returns the new platform
/// time (ms). Without a simulated clock only applies what is due.
pub fn advance(s: &Shared, ms: u64) -> u64 {
    let Some(cfg) = read(&s.graph_cfg).unified.clone() else {
        return 0;
    };
    let now = {
        let mut u = lock(&s.unified);
        if cfg.simulated_clock {
            u.simulated_ms = u.simulated_ms.saturating_add(ms);
        }
        u.now_ms(&cfg)
    };
    materialize(s);
    now
}

/// The platform's time in ms (simulated, or real since the mode was first used).
pub fn now_ms(s: &Shared) -> u64 {
    let Some(cfg) = read(&s.graph_cfg).unified.clone() else {
        return 0;
    };
    lock(&s.unified).now_ms(&cfg)
}

/// Applies every row whose delay has passed (called before each Graph request and by the
/// control API). Returns how many platform alerts were raised.
pub fn materialize(s: &Shared) -> usize {
    let Some(cfg) = read(&s.graph_cfg).unified.clone() else {
        return 0;
    };
    let mut due: Vec<(u64, Value)> = {
        let mut u = lock(&s.unified);
        let t = u.now_ms(&cfg);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut u.pending)
            .into_iter()
            .partition(|(at, _)| *at <= t);
        u.pending = later;
        due
    };
    // One batch per window, oldest first (without windows: all rows due now form one batch).
    due.sort_by_key(|(at, _)| *at);
    let mut n = 0;
    while !due.is_empty() {
        let first = due[0].0;
        let split = if cfg.batch_ms == 0 {
            due.len()
        } else {
            due.iter().take_while(|(at, _)| *at == first).count()
        };
        let batch: Vec<Value> = due.drain(..split).map(|(_, r)| r).collect();
        // Of the rows of one alert in a batch only the latest counts (intermediate states
        // are dropped).
        let mut latest: Vec<Value> = Vec::with_capacity(batch.len());
        for row in batch {
            let key = |r: &Value| {
                (
                    field(r, "SourceTenantId").to_owned(),
                    field(r, "AlertId").to_owned(),
                )
            };
            let k = key(&row);
            latest.retain(|r| key(r) != k);
            latest.push(row);
        }
        n += latest.len();
        for row in latest {
            raise(s, &cfg, &row);
        }
    }
    n
}

fn field<'a>(row: &'a Value, k: &str) -> &'a str {
    row.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// The custom details of a platform alert, as the platform shows them: each key with the
/// values of its column (Sentinel keeps custom details as arrays of strings).
fn custom_detail<'a>(alert: &'a Value, key: &str) -> Option<&'a str> {
    alert
        .get("additionalData")?
        .get(key)?
        .as_array()?
        .first()?
        .as_str()
}

/// One rule hit: a platform alert, grouped into its incident.
fn raise(s: &Shared, cfg: &UnifiedConfig, row: &Value) {
    let workspace = s.cfg.tenant_id.as_str();
    let (src_tenant, src_incident, src_alert) = (
        field(row, "SourceTenantId"),
        field(row, "DefenderIncidentId"),
        field(row, "AlertId"),
    );
    let t = now();
    let lookback = time::Duration::seconds(i64::try_from(cfg.lookback_secs).unwrap_or(i64::MAX));
    let mut g = lock(&s.graph);
    // Grouping: the newest open incident of this rule whose alerts carry the same custom
    // details, created within the lookback. Closed ones are not reopened
    // (reopenClosedIncident = false); redirected ones are gone.
    let target = g
        .list(workspace)
        .filter(|i| {
            matches!(
                i.str_field("status"),
                Some("active" | "inProgress" | "awaitingAction")
            ) && t - i.created <= lookback
                && i.alerts.iter().any(|a| {
                    a["detectorId"] == RULE_ID
                        && custom_detail(a, SOURCE_TENANT_KEY) == Some(src_tenant)
                        && custom_detail(a, SOURCE_INCIDENT_KEY) == Some(src_incident)
                })
        })
        .max_by_key(|i| i.created)
        .map(|i| i.id);
    let raised = {
        let mut u = lock(&s.unified);
        u.raised += 1;
        u.raised
    };
    let aid = format!("sn{:012}-{}", raised, uuid::Uuid::new_v4().simple());
    let title = field(row, "AlertTitle");
    let severity = match field(row, "AlertSeverity") {
        v @ ("informational" | "low" | "medium" | "high") => v,
        _ => "medium",
    };
    let mut alert = json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": aid, "providerAlertId": uuid::Uuid::new_v4().to_string(),
        "status": "new", "severity": severity,
        "classification": "unknown", "determination": "unknown",
        "serviceSource": "microsoftSentinel", "detectionSource": "nrtAlerts",
        "productName": "Microsoft Sentinel", "detectorId": RULE_ID, "tenantId": workspace,
        "title": title, "description": "", "category": field(row, "Category"),
        "assignedTo": null, "mitreTechniques": row.get("MitreTechniques").cloned().unwrap_or(json!([])),
        "createdDateTime": fmt_time(t), "lastUpdateDateTime": fmt_time(t),
        "firstActivityDateTime": row.get("FirstActivityTime").cloned().unwrap_or(Value::Null),
        "lastActivityDateTime": row.get("LastActivityTime").cloned().unwrap_or(Value::Null),
        "comments": [], "systemTags": [], "evidence": [],
        "additionalData": {
            SOURCE_TENANT_KEY: [src_tenant],
            SOURCE_INCIDENT_KEY: [src_incident],
            SOURCE_ALERT_KEY: [src_alert],
        },
    });
    match target.and_then(|id| g.get_mut(workspace, id)) {
        Some(inc) => {
            alert["incidentId"] = json!(inc.id.to_string());
            inc.alerts.push(alert);
            inc.touch("Microsoft Sentinel");
        }
        None => {
            let id = g.allocate_id();
            alert["incidentId"] = json!(id.to_string());
            let body = json!({
                "@odata.type": "#microsoft.graph.security.incident",
                "id": id.to_string(),
                "incidentWebUrl": format!("https://security.microsoft.com/incidents/{id}?tid={workspace}"),
                "redirectIncidentId": null, "tenantId": workspace, "displayName": title,
                "createdDateTime": fmt_time(t), "lastUpdateDateTime": fmt_time(t),
                "assignedTo": null, "classification": "unknown", "determination": "unknown",
                "status": "active", "severity": severity, "customTags": [], "systemTags": [],
                "comments": [], "description": "", "summary": null,
                "lastModifiedBy": "Microsoft Sentinel", "resolvingComment": null,
                "alerts": [alert],
            });
            if let Some(inc) = GraphIncident::from_json(body) {
                g.upsert(workspace, inc);
            }
        }
    }
}

/// The ARM name the workspace's Sentinel incident of platform incident `id` has (a GUID the
/// platform chose; here derived from the id so it is stable).
pub fn arm_name(id: u64) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("platform-incident-{id}").as_bytes(),
    )
    .to_string()
}

/// The body a "Microsoft Sentinel incident" playbook forwards when an automation rule fires on
/// platform incident `id` (`event`: `"Create"` or `"Update"`), as documented for a workspace
/// onboarded to the unified Defender portal (crate README, "Unified-platform mode"): `object.id`
/// is the ARM id of the workspace's incident, `providerName` is `Microsoft XDR` and
/// `providerIncidentId` the Graph incident id in the workspace's tenant. `None` when no such
/// incident exists.
pub fn trigger_body(s: &Shared, id: u64, event: &str) -> Option<Value> {
    let workspace = s.cfg.tenant_id.as_str();
    let inc = lock(&s.graph).get(workspace, id)?.to_json();
    let a = &s.cfg.arm;
    let name = arm_name(id);
    let status = match inc["status"].as_str() {
        Some("resolved" | "redirected") => "Closed",
        _ => "Active",
    };
    let severity = match inc["severity"].as_str() {
        Some("high") => "High",
        Some("low") => "Low",
        Some("informational") => "Informational",
        _ => "Medium",
    };
    let url = format!("https://security.microsoft.com/incidents/{id}?tid={workspace}");
    let alerts: Vec<Value> = inc["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|al| json!({"properties": {"alertDisplayName": al["title"], "providerAlertId": al["providerAlertId"]}}))
        .collect();
    let object = json!({
        "id": format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}/providers/Microsoft.SecurityInsights/Incidents/{name}",
            a.subscription_id, a.resource_group, a.workspace_name
        ),
        "name": name,
        "type": "Microsoft.SecurityInsights/Incidents",
        "properties": {
            "title": inc["displayName"], "severity": severity, "status": status,
            "incidentNumber": id, "incidentUrl": url,
            "providerName": "Microsoft XDR", "providerIncidentId": id.to_string(),
            "createdTimeUtc": inc["createdDateTime"],
            "lastModifiedTimeUtc": inc["lastUpdateDateTime"],
            "additionalData": {"providerIncidentUrl": url, "alertsCount": alerts.len()},
            "Alerts": alerts,
        },
    });
    let mut body = crate::control::trigger_envelope(s, event, object);
    if event != "Create" {
        body["incidentUpdates"] = json!({
            "updatedTime": fmt_time(now()),
            "updatedBy": {"source": "User", "name": "analyst@platform"},
        });
    }
    Some(body)
}
