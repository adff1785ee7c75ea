//! The analysts' Defender-side actions, in two batches, and how each one is expected to show in
//! Sentinel after the next cycle (judged with the engine's own mapping functions).

use super::check::Pair;
use crate::domain::*;
use crate::sync::mapping::{classification_to_sentinel, owner_same, tags_same};
use dss_simulators::DefenderAction;

/// One action on one Defender incident.
#[derive(Debug, Clone)]
pub struct Step {
    pub tenant: TenantId,
    pub tenant_no: usize,
    pub id: String,
    /// What a person reads, e.g. `resolve D1 #1003 as truePositive/malware`.
    pub what: String,
    pub action: DefenderAction,
}

/// The incidents a script can act on: open ones of each tenant, in id order.
fn open_ids(pairs: &[Pair], tenant_no: usize) -> Vec<(TenantId, String)> {
    pairs
        .iter()
        .filter(|p| p.tenant_no == tenant_no && p.defender.status == DefenderStatus::Active)
        .map(|p| (p.defender.tenant.clone(), p.defender.id.to_string()))
        .collect()
}

fn step(t: &(TenantId, String), tenant_no: usize, what: String, action: DefenderAction) -> Step {
    Step { tenant: t.0.clone(), tenant_no, id: t.1.clone(), what, action }
}

/// Two batches: triage (assign, tag, comment), then response (resolve, merge, add an alert,
/// close as false positive). Actions without a fitting incident are left out.
pub fn batches(pairs: &[Pair]) -> Vec<(&'static str, Vec<Step>)> {
    let (t1, t2) = (open_ids(pairs, 1), open_ids(pairs, 2));
    let owner = "kai.carter@contoso.com";
    let mut triage = Vec::new();
    let mut response = Vec::new();
    if let Some(a) = t1.first() {
        triage.push(step(a, 1, format!("assign D1 #{} to {owner}", a.1), DefenderAction::Assign { assigned_to: Some(owner.into()) }));
        let text = "Isolated the device and collected the investigation package.";
        triage.push(step(a, 1, format!("comment on D1 #{}", a.1), DefenderAction::Comment { comment: text.into() }));
    }
    if let Some(b) = t1.get(1) {
        let tags = vec!["ransomware".to_owned(), "vip".to_owned()];
        triage.push(step(b, 1, format!("tag D1 #{} ransomware,vip", b.1), DefenderAction::Tag { custom_tags: tags }));
    }
    if let Some(c) = t1.get(2) {
        let action = DefenderAction::Resolve {
            classification: Some("truePositive".into()),
            determination: Some("malware".into()),
            resolving_comment: Some("Contained; malware removed.".into()),
        };
        response.push(step(c, 1, format!("resolve D1 #{} as truePositive/malware", c.1), action));
    }
    if let (Some(d), Some(a)) = (t1.get(3), t1.first()) {
        response.push(step(d, 1, format!("merge D1 #{} into D1 #{}", d.1, a.1), DefenderAction::Merge { into: a.1.clone() }));
    }
    if let Some(e) = t2.first() {
        response.push(step(e, 2, format!("add an alert to D2 #{}", e.1), DefenderAction::AddAlert { alert: None }));
    }
    if let Some(f) = t2.get(1) {
        let action = DefenderAction::Resolve {
            classification: Some("falsePositive".into()),
            determination: Some("notMalicious".into()),
            resolving_comment: None,
        };
        response.push(step(f, 2, format!("resolve D2 #{} as falsePositive/notMalicious", f.1), action));
    }
    vec![("triage", triage), ("response", response)]
}

/// What the Sentinel incident shows for this step, and whether it is what the step means
/// (`None` when the incident has no Sentinel counterpart).
/// `logged(alert_id)` says whether Logs Ingestion received the alert's row.
pub fn outcome(step: &Step, p: &Pair, logged: &dyn Fn(&str) -> bool) -> Option<(String, bool)> {
    let s = p.sentinel.as_ref()?;
    let d = &p.defender;
    let num = format!("S #{}", s.incident_number.unwrap_or_default());
    let labels = || s.labels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(",");
    Some(match &step.action {
        DefenderAction::Assign { assigned_to } => {
            let o = s.owner.upn_or_email().unwrap_or("unassigned");
            (format!("{num} owner {o}"), owner_same(assigned_to.as_deref(), s.owner.upn_or_email()))
        }
        DefenderAction::Comment { comment } => {
            let n = p.sentinel_comments.iter().filter(|c| c.contains(comment.as_str())).count();
            (format!("{num} has the comment ({} in all)", p.sentinel_comments.len()), n == 1)
        }
        DefenderAction::Tag { custom_tags } => (format!("{num} labels {}", labels()), tags_same(custom_tags, &s.user_tags())),
        DefenderAction::Resolve { .. } => {
            let want = classification_to_sentinel(d.classification.as_ref(), d.determination.as_ref());
            let class = match (&s.classification, &s.classification_reason) {
                (Some(c), Some(r)) => format!("{c}/{r}"),
                (Some(c), None) => c.to_string(),
                _ => "unclassified".into(),
            };
            let ok = s.status == SentinelStatus::Closed && want == (s.classification.clone(), s.classification_reason.clone());
            (format!("{num} {} {class}", s.status), ok)
        }
        DefenderAction::Merge { into } => {
            let named = p.sentinel_comments.iter().any(|c| c.contains(&format!("#{into}")));
            let ok = s.status == SentinelStatus::Closed && s.labels.iter().any(|l| l.name == "Redirected") && named;
            (format!("{num} {}, labels {}, comment names #{into}", s.status, labels()), ok)
        }
        DefenderAction::AddAlert { .. } => {
            let alerts = d.alerts.as_deref().unwrap_or_default();
            let in_logs = alerts.iter().filter(|a| logged(&a.id)).count();
            (format!("{num} updated; {in_logs} of {} alerts in Logs", alerts.len()), in_logs == alerts.len() && s.last_activity.is_some())
        }
        _ => (num, true),
    })
}
