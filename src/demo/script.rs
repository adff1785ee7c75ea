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
    Step {
        tenant: t.0.clone(),
        tenant_no,
        id: t.1.clone(),
        what,
        action,
    }
}

/// Two batches: triage (assign, tag, comment), then response (resolve, merge, add an alert,
/// close as false positive). Actions without a fitting incident are left out.
pub fn batches(pairs: &[Pair]) -> Vec<(&'static str, Vec<Step>)> {
    let (t1, t2) = (open_ids(pairs, 1), open_ids(pairs, 2));
    let owner = "kai.carter@contoso.com";
    let mut triage = Vec::new();
    let mut response = Vec::new();
    if let Some(a) = t1.first() {
        triage.push(step(
            a,
            1,
            format!("assign D1 #{} to {owner}", a.1),
            DefenderAction::Assign {
                assigned_to: Some(owner.into()),
            },
        ));
        let text = "Isolated the device and collected the investigation package.";
        triage.push(step(
            a,
            1,
            format!("comment on D1 #{}", a.1),
            DefenderAction::Comment {
                comment: text.into(),
            },
        ));
    }
    if let Some(b) = t1.get(1) {
        let tags = vec!["ransomware".to_owned(), "vip".to_owned()];
        triage.push(step(
            b,
            1,
            format!("tag D1 #{} ransomware,vip", b.1),
            DefenderAction::Tag { custom_tags: tags },
        ));
    }
    if let Some(c) = t1.get(2) {
        let action = DefenderAction::Resolve {
            classification: Some("truePositive".into()),
            determination: Some("malware".into()),
            resolving_comment: Some("Contained; malware removed.".into()),
        };
        response.push(step(
            c,
            1,
            format!("resolve D1 #{} as truePositive/malware", c.1),
            action,
        ));
    }
    if let (Some(d), Some(a)) = (t1.get(3), t1.first()) {
        response.push(step(
            d,
            1,
            format!("merge D1 #{} into D1 #{}", d.1, a.1),
            DefenderAction::Merge { into: a.1.clone() },
        ));
    }
    if let Some(e) = t2.first() {
        response.push(step(
            e,
            2,
            format!("add an alert to D2 #{}", e.1),
            DefenderAction::AddAlert { alert: None },
        ));
    }
    if let Some(f) = t2.get(1) {
        let action = DefenderAction::Resolve {
            classification: Some("falsePositive".into()),
            determination: Some("notMalicious".into()),
            resolving_comment: None,
        };
        response.push(step(
            f,
            2,
            format!("resolve D2 #{} as falsePositive/notMalicious", f.1),
            action,
        ));
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
    let labels = || {
        s.labels
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    Some(match &step.action {
        DefenderAction::Assign { assigned_to } => {
            let o = s.owner.upn_or_email().unwrap_or("unassigned");
            (
                format!("{num} owner {o}"),
                owner_same(assigned_to.as_deref(), s.owner.upn_or_email()),
            )
        }
        DefenderAction::Comment { comment } => {
            let n = p
                .sentinel_comments
                .iter()
                .filter(|c| c.contains(comment.as_str()))
                .count();
            (
                format!(
                    "{num} has the comment ({} in all)",
                    p.sentinel_comments.len()
                ),
                n == 1,
            )
        }
        DefenderAction::Tag { custom_tags } => (
            format!("{num} labels {}", labels()),
            tags_same(custom_tags, &s.user_tags()),
        ),
        DefenderAction::Resolve { .. } => {
            let want =
                classification_to_sentinel(d.classification.as_ref(), d.determination.as_ref());
            let class = match (&s.classification, &s.classification_reason) {
                (Some(c), Some(r)) => format!("{c}/{r}"),
                (Some(c), None) => c.to_string(),
                _ => "unclassified".into(),
            };
            let ok = s.status == SentinelStatus::Closed
                && want == (s.classification.clone(), s.classification_reason.clone());
            (format!("{num} {} {class}", s.status), ok)
        }
        DefenderAction::Merge { into } => {
            let named = p
                .sentinel_comments
                .iter()
                .any(|c| c.contains(&format!("#{into}")));
            let ok = s.status == SentinelStatus::Closed
                && s.labels.iter().any(|l| l.name == "Redirected")
                && named;
            (
                format!(
                    "{num} {}, labels {}, comment names #{into}",
                    s.status,
                    labels()
                ),
                ok,
            )
        }
        DefenderAction::AddAlert { .. } => {
            let alerts = d.alerts.as_deref().unwrap_or_default();
            let in_logs = alerts.iter().filter(|a| logged(&a.id)).count();
            (
                format!(
                    "{num} updated; {in_logs} of {} alerts in Logs",
                    alerts.len()
                ),
                in_logs == alerts.len() && s.last_activity.is_some(),
            )
        }
        _ => (num, true),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pair(tenant_no: usize, id: u64, status: DefenderStatus) -> Pair {
        let mut d = super::super::check::tests::defender();
        d.tenant = TenantId::parse(&format!("t{tenant_no}")).unwrap();
        d.id = DefenderIncidentId::parse(&id.to_string()).unwrap();
        d.status = status;
        Pair {
            tenant_no,
            defender: d,
            sentinel: None,
            sentinel_comments: vec![],
        }
    }

    #[test]
    fn the_script_acts_on_open_incidents_only_and_merges_within_a_tenant() {
        let mut pairs: Vec<Pair> = (1..=4)
            .map(|i| pair(1, 1000 + i, DefenderStatus::Active))
            .collect();
        pairs.extend((5..=6).map(|i| pair(2, 1000 + i, DefenderStatus::Active)));
        let b = batches(&pairs);
        assert_eq!((b[0].1.len(), b[1].1.len()), (3, 4));
        let merge = b[1]
            .1
            .iter()
            .find(|s| matches!(s.action, DefenderAction::Merge { .. }))
            .unwrap();
        assert_eq!((merge.id.as_str(), merge.tenant_no), ("1004", 1));
        assert!(matches!(&merge.action, DefenderAction::Merge { into } if into == "1001"));
        // A closed incident is never picked; with too few open ones the merge is left out.
        pairs[0].defender.status = DefenderStatus::Resolved;
        let b = batches(&pairs);
        assert!(b.iter().flat_map(|(_, s)| s).all(|s| s.id != "1001"));
        assert!(
            !b[1]
                .1
                .iter()
                .any(|s| matches!(s.action, DefenderAction::Merge { .. }))
        );
    }

    #[test]
    fn an_outcome_is_judged_on_the_sentinel_side_and_missing_mirrors_are_none() {
        let p = pair(1, 1003, DefenderStatus::Resolved);
        let step = batches(&[
            pair(1, 1001, DefenderStatus::Active),
            pair(1, 1002, DefenderStatus::Active),
            pair(1, 1003, DefenderStatus::Active),
        ])
        .remove(1)
        .1
        .remove(0);
        assert!(outcome(&step, &p, &|_| true).is_none());
        let mut s = crate::domain::SentinelIncident {
            name: SentinelIncidentName::for_defender(&p.defender.tenant, &p.defender.id),
            etag: None,
            title: String::new(),
            description: None,
            severity: SentinelSeverity::High,
            status: SentinelStatus::Closed,
            classification: Some(SentinelClassification::TruePositive),
            classification_reason: Some(ClassificationReason::SuspiciousActivity),
            classification_comment: None,
            owner: Owner::default(),
            labels: vec![],
            first_activity: None,
            last_activity: None,
            incident_number: Some(12),
            created: None,
            last_modified: None,
            comments_count: None,
            platform_id: None,
        };
        let with = |s: &crate::domain::SentinelIncident| Pair {
            sentinel: Some(s.clone()),
            ..p.clone()
        };
        let (text, ok) = outcome(&step, &with(&s), &|_| true).unwrap();
        assert!(ok, "{text}");
        assert_eq!(text, "S #12 Closed TruePositive/SuspiciousActivity");
        s.status = SentinelStatus::Active;
        assert!(!outcome(&step, &with(&s), &|_| true).unwrap().1);
    }
}
