//! The analysts' Sentinel-side actions (reverse sync) and one conflict, and how each one is
//! expected to show in Defender after the next cycle (judged with the engine's own mapping
//! functions).

use super::check::Pair;
use crate::domain::*;
use crate::sync::mapping::{owner_same, status_same, tags_same};
use dss_simulators::{DefenderAction, SentinelAction, wellknown};

/// One Sentinel analyst action on the mirror of one Defender incident.
#[derive(Debug, Clone)]
pub struct SentinelStep {
    pub tenant_no: usize,
    pub id: String,
    /// The Sentinel incident's name.
    pub name: String,
    pub what: String,
    pub action: SentinelAction,
}

/// Both sides change the tags of one incident between two cycles; the Sentinel change comes
/// last, so the default policy (latest-wins) keeps it.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub tenant: TenantId,
    pub tenant_no: usize,
    pub id: String,
    pub name: String,
    pub defender: DefenderAction,
    pub sentinel: SentinelAction,
    /// The Sentinel user tags that must win.
    pub winner: Vec<String>,
}

fn open(pairs: &[Pair], tenant_no: usize) -> Vec<&DefenderIncident> {
    pairs
        .iter()
        .filter(|p| p.tenant_no == tenant_no && p.defender.status == DefenderStatus::Active)
        .map(|p| &p.defender)
        .collect()
}

fn sstep(
    d: &DefenderIncident,
    tenant_no: usize,
    what: String,
    action: SentinelAction,
) -> SentinelStep {
    SentinelStep {
        tenant_no,
        id: d.id.to_string(),
        name: SentinelIncidentName::for_defender(&d.tenant, &d.id).to_string(),
        what,
        action,
    }
}

/// The Sentinel analysts' batch, on the incidents the Defender batches acted on (`before`: the
/// pairs those were chosen from): reopen the one Defender resolved, close another with a
/// classification, assign, tag and comment.
pub fn sentinel_batch(before: &[Pair]) -> Vec<SentinelStep> {
    let (t1, t2) = (open(before, 1), open(before, 2));
    let mut out = Vec::new();
    if let Some(c) = t1.get(2) {
        let action = SentinelAction::SetStatus {
            status: "Active".into(),
            classification: None,
            classification_reason: None,
            classification_comment: None,
        };
        out.push(sstep(
            c,
            1,
            format!("reopen S of D1 #{} (resolved in Defender)", c.id),
            action,
        ));
    }
    if let Some(e) = t2.first() {
        let action = SentinelAction::SetStatus {
            status: "Closed".into(),
            classification: Some("TruePositive".into()),
            classification_reason: Some("SuspiciousActivity".into()),
            classification_comment: Some("Confirmed from the Sentinel side.".into()),
        };
        out.push(sstep(
            e,
            2,
            format!("close S of D2 #{} as TruePositive", e.id),
            action,
        ));
    }
    if let Some(b) = t1.get(1) {
        let owner = Some(wellknown::ANALYST_UPN.to_owned());
        let what = format!("assign S of D1 #{} to {}", b.id, wellknown::ANALYST_UPN);
        out.push(sstep(b, 1, what, SentinelAction::SetOwner { owner }));
    }
    if let Some(a) = t1.first() {
        let labels = vec!["Defender".to_owned(), "escalated".to_owned()];
        let what = format!("tag S of D1 #{} escalated", a.id);
        out.push(sstep(a, 1, what, SentinelAction::SetLabels { labels }));
        let message = "Checked the mailbox rules from Sentinel.".to_owned();
        let what = format!("comment on S of D1 #{}", a.id);
        out.push(sstep(a, 1, what, SentinelAction::Comment { message }));
    }
    out
}

/// The conflict: on the second open incident of tenant 2 when there is one, else tenant 1's.
pub fn conflict(before: &[Pair]) -> Option<Conflict> {
    let (t1, t2) = (open(before, 1), open(before, 2));
    let (d, tenant_no) = match t2.get(1) {
        Some(d) => (*d, 2),
        None => (*t1.get(1)?, 1),
    };
    Some(Conflict {
        tenant: d.tenant.clone(),
        tenant_no,
        id: d.id.to_string(),
        name: SentinelIncidentName::for_defender(&d.tenant, &d.id).to_string(),
        defender: DefenderAction::Tag {
            custom_tags: vec!["from-defender".into()],
        },
        sentinel: SentinelAction::SetLabels {
            labels: vec!["Defender".into(), "from-sentinel".into()],
        },
        winner: vec!["from-sentinel".into()],
    })
}

/// What the Defender incident shows for this step, and whether it is what the step means.
pub fn sentinel_outcome(step: &SentinelStep, p: &Pair) -> Option<(String, bool)> {
    let s = p.sentinel.as_ref()?;
    let d = &p.defender;
    let num = format!("D{} #{}", p.tenant_no, d.id);
    Some(match &step.action {
        SentinelAction::SetStatus { .. } => {
            let class = d
                .classification
                .as_ref()
                .map_or("unclassified".to_owned(), ToString::to_string);
            (
                format!("{num} {} {class}", d.status),
                status_same(&d.status, &s.status),
            )
        }
        SentinelAction::SetOwner { owner } => (
            format!(
                "{num} assigned to {}",
                d.assigned_to.as_deref().unwrap_or("nobody")
            ),
            owner_same(owner.as_deref(), d.assigned_to.as_deref()),
        ),
        SentinelAction::SetLabels { .. } => (
            format!("{num} tags {}", d.custom_tags.join(",")),
            tags_same(&d.custom_tags, &s.user_tags()),
        ),
        SentinelAction::Comment { message } => {
            let n = d
                .comments
                .iter()
                .filter(|c| c.text.contains(message.as_str()))
                .count();
            (
                format!("{num} has the comment ({} in all)", d.comments.len()),
                n == 1,
            )
        }
        _ => (num, true),
    })
}
