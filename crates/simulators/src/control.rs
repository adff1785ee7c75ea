//! Analyst actions on both sides (what people do in the portals), and the automation-rule
//! playbook trigger body for a Sentinel incident.

use crate::arm::store::UpdateEvent;
use crate::arm::{self, incidents_base, validate as arm_validate};
use crate::config::wellknown;
use crate::graph::store::GraphIncident;
use crate::graph::validate as gv;
use crate::state::{Shared, lock, read};
use crate::util::{fmt_time, now};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Why an analyst action failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ActionError {
    #[error("incident not found: {0}")]
    NotFound(String),
    #[error("invalid action: {0}")]
    Invalid(String),
}

/// What an analyst does to a Defender incident in the Defender portal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum DefenderAction {
    /// Status `resolved`, optionally with classification, determination and comment.
    Resolve {
        classification: Option<String>,
        determination: Option<String>,
        resolving_comment: Option<String>,
    },
    /// Any status the portal can set (`active`, `inProgress`, `awaitingAction`, `resolved`).
    SetStatus {
        status: String,
    },
    Classify {
        classification: String,
        determination: Option<String>,
    },
    /// `None` unassigns.
    Assign {
        assigned_to: Option<String>,
    },
    /// Replaces the custom tags.
    Tag {
        custom_tags: Vec<String>,
    },
    Comment {
        comment: String,
    },
    SetSeverity {
        severity: String,
    },
    /// Merges this incident into `into`: its alerts move there, it becomes `redirected`.
    Merge {
        into: String,
    },
    /// Sets `lastUpdateDateTime` as given, without other change: a write that becomes visible
    /// late (an older timestamp than what a poller already saw) or many incidents on one instant.
    SetLastUpdate {
        last_update_date_time: String,
    },
    /// Adds an alert (a generated one when `alert` is `None`).
    AddAlert {
        alert: Option<Value>,
    },
}

/// What an analyst does to a Sentinel incident in the portal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SentinelAction {
    /// New / Active / Closed; closing needs classification (and reason for TP/BP).
    SetStatus {
        status: String,
        classification: Option<String>,
        classification_reason: Option<String>,
        classification_comment: Option<String>,
    },
    /// Changes the classification without touching the status (checked against the status).
    Classify {
        classification: Option<String>,
        classification_reason: Option<String>,
        classification_comment: Option<String>,
    },
    /// By UPN, email or object id (a user's, or a group's); `None` unassigns.
    SetOwner {
        owner: Option<String>,
    },
    /// Replaces the user labels.
    SetLabels {
        labels: Vec<String>,
    },
    Comment {
        message: String,
    },
    SetSeverity {
        severity: String,
    },
}

fn analyst() -> &'static str {
    wellknown::ANALYST_UPN
}

fn canon(list: &'static [&'static str], v: &str, what: &str) -> Result<&'static str, ActionError> {
    list.iter()
        .copied()
        .find(|m| m.eq_ignore_ascii_case(v))
        .ok_or_else(|| ActionError::Invalid(format!("{what} '{v}'")))
}

/// Applies a Defender-side action; returns the incident as Graph JSON (with alerts).
pub fn defender(
    s: &Shared,
    tenant: &str,
    id: &str,
    action: DefenderAction,
) -> Result<Value, ActionError> {
    let nid: u64 = id
        .parse()
        .map_err(|_| ActionError::NotFound(id.to_owned()))?;
    let mut g = lock(&s.graph);
    if let DefenderAction::Merge { into } = &action {
        let into_id: u64 = into
            .parse()
            .map_err(|_| ActionError::NotFound(into.clone()))?;
        if into_id == nid || g.get(tenant, into_id).is_none() {
            return Err(ActionError::NotFound(into.clone()));
        }
        let src = g
            .get_mut(tenant, nid)
            .ok_or_else(|| ActionError::NotFound(id.to_owned()))?;
        let mut alerts = std::mem::take(&mut src.alerts);
        src.body.insert("status".into(), json!("redirected"));
        src.body.insert("redirectIncidentId".into(), json!(into));
        src.touch(analyst());
        for a in &mut alerts {
            a["incidentId"] = json!(into);
        }
        let dst = g
            .get_mut(tenant, into_id)
            .ok_or_else(|| ActionError::NotFound(into.clone()))?;
        dst.alerts.extend(alerts);
        dst.touch(analyst());
        return g
            .get(tenant, nid)
            .map(GraphIncident::to_json)
            .ok_or_else(|| ActionError::NotFound(id.to_owned()));
    }
    let inc = g
        .get_mut(tenant, nid)
        .ok_or_else(|| ActionError::NotFound(id.to_owned()))?;
    if let DefenderAction::SetLastUpdate {
        last_update_date_time,
    } = &action
    {
        let t = crate::util::parse_time(last_update_date_time)
            .ok_or_else(|| ActionError::Invalid(format!("time '{last_update_date_time}'")))?;
        inc.updated = t;
        inc.body
            .insert("lastUpdateDateTime".into(), json!(fmt_time(t)));
        return Ok(inc.to_json());
    }
    apply_defender(inc, action, tenant)?;
    inc.touch(analyst());
    Ok(inc.to_json())
}

fn apply_defender(
    inc: &mut GraphIncident,
    action: DefenderAction,
    tenant: &str,
) -> Result<(), ActionError> {
    let b = &mut inc.body;
    match action {
        DefenderAction::Resolve {
            classification,
            determination,
            resolving_comment,
        } => {
            b.insert("status".into(), json!("resolved"));
            if let Some(c) = classification {
                b.insert(
                    "classification".into(),
                    json!(canon(gv::CLASSIFICATION, &c, "classification")?),
                );
            }
            if let Some(d) = determination {
                b.insert(
                    "determination".into(),
                    json!(canon(gv::DETERMINATION, &d, "determination")?),
                );
            }
            if let Some(r) = resolving_comment {
                b.insert("resolvingComment".into(), json!(r));
            }
        }
        DefenderAction::SetStatus { status } => {
            b.insert(
                "status".into(),
                json!(canon(gv::STATUS, &status, "status")?),
            );
        }
        DefenderAction::Classify {
            classification,
            determination,
        } => {
            b.insert(
                "classification".into(),
                json!(canon(
                    gv::CLASSIFICATION,
                    &classification,
                    "classification"
                )?),
            );
            if let Some(d) = determination {
                b.insert(
                    "determination".into(),
                    json!(canon(gv::DETERMINATION, &d, "determination")?),
                );
            }
        }
        DefenderAction::Assign { assigned_to } => {
            b.insert("assignedTo".into(), json!(assigned_to));
        }
        DefenderAction::Tag { custom_tags } => {
            b.insert("customTags".into(), json!(custom_tags));
        }
        DefenderAction::Comment { comment } => inc.add_comment(&comment, analyst()),
        DefenderAction::SetSeverity { severity } => {
            b.insert(
                "severity".into(),
                json!(canon(gv::SEVERITY, &severity, "severity")?),
            );
        }
        DefenderAction::AddAlert { alert } => {
            let mut a = alert.unwrap_or_else(|| {
                let seed = inc.id * 7919 + inc.alerts.len() as u64;
                let generated = crate::generator::incidents(1, seed, tenant, inc.id, now());
                generated[0]["alerts"][0].clone()
            });
            a["incidentId"] = json!(inc.id.to_string());
            inc.alerts.push(a);
        }
        DefenderAction::Merge { .. } | DefenderAction::SetLastUpdate { .. } => {
            return Err(ActionError::Invalid("handled separately".into()));
        }
    }
    Ok(())
}

/// Applies a Sentinel-side action as the portal does (new etag, new `lastModifiedTimeUtc`);
/// returns the playbook trigger body for this update.
pub fn sentinel(s: &Shared, name: &str, action: SentinelAction) -> Result<Value, ActionError> {
    let mut comments = Vec::new();
    let fields: Vec<&str> = {
        let dir = read(&s.directory);
        let mut arm = lock(&s.arm);
        let inc = arm
            .get_mut(name)
            .ok_or_else(|| ActionError::NotFound(name.to_owned()))?;
        let p = &mut inc.props;
        match action {
            SentinelAction::SetStatus {
                status,
                classification,
                classification_reason,
                classification_comment,
            } => {
                let st = canon(arm_validate::STATUS, &status, "status")?;
                let c = classification
                    .map(|c| canon(arm_validate::CLASSIFICATION, &c, "classification"))
                    .transpose()?;
                let r = classification_reason
                    .map(|r| canon(arm_validate::REASON, &r, "classificationReason"))
                    .transpose()?;
                arm_validate::closing_rules(Some(st), c, r).map_err(ActionError::Invalid)?;
                p.insert("status".into(), json!(st));
                set_classification(p, c, r, classification_comment);
                if c.is_some() {
                    vec!["Status", "Classification"]
                } else {
                    vec!["Status"]
                }
            }
            SentinelAction::Classify {
                classification,
                classification_reason,
                classification_comment,
            } => {
                let st = p
                    .get("status")
                    .and_then(Value::as_str)
                    .and_then(|s| canon(arm_validate::STATUS, s, "status").ok());
                let c = classification
                    .map(|c| canon(arm_validate::CLASSIFICATION, &c, "classification"))
                    .transpose()?;
                let r = classification_reason
                    .map(|r| canon(arm_validate::REASON, &r, "classificationReason"))
                    .transpose()?;
                arm_validate::closing_rules(st, c, r).map_err(ActionError::Invalid)?;
                set_classification(p, c, r, classification_comment);
                vec!["Classification"]
            }
            SentinelAction::SetOwner { owner } => {
                let o = owner.map(|k| {
                    if k.contains('@') {
                        json!({"userPrincipalName": k})
                    } else if dir.group(&k).is_some() {
                        json!({"objectId": k, "ownerType": "Group"})
                    } else {
                        json!({"objectId": k})
                    }
                });
                let resolved =
                    arm_validate::owner(o.as_ref(), &dir).map_err(ActionError::Invalid)?;
                p.insert("owner".into(), resolved);
                vec!["Owner"]
            }
            SentinelAction::SetLabels { labels } => {
                p.insert(
                    "labels".into(),
                    json!(
                        labels
                            .iter()
                            .map(|l| json!({"labelName": l, "labelType": "User"}))
                            .collect::<Vec<_>>()
                    ),
                );
                vec!["Labels"]
            }
            SentinelAction::SetSeverity { severity } => {
                p.insert(
                    "severity".into(),
                    json!(canon(arm_validate::SEVERITY, &severity, "severity")?),
                );
                vec!["Severity"]
            }
            SentinelAction::Comment { message } => {
                comments.push(message);
                vec!["Comments"]
            }
        }
    };
    for m in &comments {
        let author = json!({"objectId": wellknown::ANALYST_OBJECT_ID, "email": analyst(), "userPrincipalName": analyst(), "name": "Sam Analyst"});
        let cid = uuid::Uuid::new_v4().to_string();
        arm::add_comment(s, name, &cid, m, author)
            .map_err(|_| ActionError::Invalid("comment refused (limit)".into()))?;
    }
    {
        let mut arm = lock(&s.arm);
        arm.touch(name);
        let e = UpdateEvent {
            name: name.to_owned(),
            created: false,
            fields: fields.clone(),
            by_source: "User",
            by_name: analyst().to_owned(),
            comments: comments.clone(),
        };
        arm.record(e);
    }
    let mut body = trigger_body(s, name, &fields, "Update")?;
    if !comments.is_empty() {
        body["incidentUpdates"]["comments"] = json!(
            comments
                .iter()
                .map(|m| json!({"properties": {"message": m}}))
                .collect::<Vec<_>>()
        );
    }
    Ok(body)
}

/// The envelope of a "Microsoft Sentinel incident" trigger body around the incident `object`
/// (the workspace's ARM incident), for the ARM and the unified target alike.
pub(crate) fn trigger_envelope(s: &Shared, event: &str, object: Value) -> Value {
    let a = &s.cfg.arm;
    json!({
        "eventUniqueId": uuid::Uuid::new_v4().to_string(),
        "objectSchemaType": "Incident",
        "objectEventType": event,
        "workspaceInfo": {"SubscriptionId": a.subscription_id, "ResourceGroupName": a.resource_group, "WorkspaceName": a.workspace_name},
        "workspaceId": a.workspace_id,
        "object": object,
    })
}

/// The body a "Microsoft Sentinel incident" playbook forwards (shaped as
/// `sentinel-incident-trigger.update.json`); `event` is `"Create"` or `"Update"`.
pub fn trigger_body(
    s: &Shared,
    name: &str,
    updated_fields: &[&str],
    event: &str,
) -> Result<Value, ActionError> {
    let base = incidents_base(s);
    let inc = lock(&s.arm)
        .get(name)
        .map(|i| i.render(&base))
        .ok_or_else(|| ActionError::NotFound(name.to_owned()))?;
    let mut body = trigger_envelope(s, event, inc);
    if event != "Create" {
        body["incidentUpdates"] = json!({
            "updatedFields": updated_fields,
            "updatedTime": fmt_time(now()),
            "updatedBy": {"source": "User", "name": analyst()},
        });
    }
    Ok(body)
}

/// Trigger bodies for recorded automation events (oldest first), rendered with the incident as it
/// is now; empties the record.
pub fn drain_triggers(s: &Shared) -> Vec<Value> {
    let events = lock(&s.arm)
        .events
        .as_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    events
        .into_iter()
        .filter_map(|e| {
            let kind = if e.created { "Create" } else { "Update" };
            let mut body = trigger_body(s, &e.name, &e.fields, kind).ok()?;
            if !e.created {
                body["incidentUpdates"]["updatedBy"] =
                    json!({"source": e.by_source, "name": e.by_name});
                if !e.comments.is_empty() {
                    body["incidentUpdates"]["comments"] = json!(
                        e.comments
                            .iter()
                            .map(|m| json!({"properties": {"message": m}}))
                            .collect::<Vec<_>>()
                    );
                }
            }
            Some(body)
        })
        .collect()
}

/// Sets (or clears) classification and reason as the portal does; a comment is kept unless a new one is given.
fn set_classification(
    p: &mut serde_json::Map<String, Value>,
    c: Option<&str>,
    r: Option<&str>,
    comment: Option<String>,
) {
    for (k, v) in [("classification", c), ("classificationReason", r)] {
        match v {
            Some(v) => p.insert(k.into(), json!(v)),
            None => p.remove(k),
        };
    }
    if let Some(cc) = comment {
        p.insert("classificationComment".into(), json!(cc));
    }
}
