//! Does every synced field agree on both sides? Judged with the engine's own mapping and
//! planning functions (`sync::mapping`, `sync::plan`, `sync::comment_messages`), never with a
//! second copy of the mapping.

use crate::domain::*;
use crate::sync::mapping::{
    classification_same, owner_same, severity_to_sentinel, status_same, tags_same,
};
use crate::sync::plan::{self, DEFENDER_LABEL, REDIRECTED_LABEL};
use crate::sync::{comment_messages, is_mirrored};

/// One Defender incident with its Sentinel counterpart (if any) and that one's comment texts.
#[derive(Debug, Clone)]
pub struct Pair {
    /// 1-based position of the tenant in `DEFENDER_TENANT_IDS` (for display).
    pub tenant_no: usize,
    pub defender: DefenderIncident,
    pub sentinel: Option<SentinelIncident>,
    pub sentinel_comments: Vec<String>,
}

/// The Defender owner note the engine writes when the Sentinel directory does not know the owner.
fn owner_note(upn: &str) -> String {
    format!("Defender owner: {upn}")
}

/// Every synced field that disagrees, as `field: Defender … / Sentinel …`; empty when all agree.
/// `directory_knows(upn)` says whether the Sentinel tenant's directory has the user (an owner it
/// does not know stays unassigned in Sentinel and is named in the description instead).
pub fn disagreements(p: &Pair, directory_knows: &dyn Fn(&str) -> bool) -> Vec<String> {
    let d = &p.defender;
    let Some(s) = &p.sentinel else {
        return vec!["not in Sentinel".to_owned()];
    };
    let mut out = Vec::new();
    let mut differ = |ok: bool, field: &str, dv: String, sv: String| {
        if !ok {
            out.push(format!("{field}: Defender {dv} / Sentinel {sv}"));
        }
    };
    differ(
        s.title == plan::title(d),
        "title",
        plan::title(d),
        s.title.clone(),
    );
    let link = plan::portal_link(&d.tenant, &d.id);
    let desc = s.description.as_deref().unwrap_or("");
    differ(
        desc.starts_with(&link),
        "description link",
        link,
        desc.chars().take(60).collect(),
    );
    differ(
        status_same(&d.status, &s.status),
        "status",
        d.status.to_string(),
        s.status.to_string(),
    );
    differ(
        severity_to_sentinel(&d.severity) == s.severity,
        "severity",
        d.severity.to_string(),
        s.severity.to_string(),
    );
    let dc = (
        d.classification.clone(),
        d.determination.clone(),
        d.resolving_comment.clone(),
    );
    let sc = (
        s.classification.clone(),
        s.classification_reason.clone(),
        s.classification_comment.clone(),
    );
    differ(
        classification_same(&dc, &sc),
        "classification",
        format!("{dc:?}"),
        format!("{sc:?}"),
    );
    let s_owner = s.owner.upn_or_email().unwrap_or("unassigned").to_owned();
    match d
        .assigned_to
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        Some(upn) if !directory_knows(upn) => {
            let named = if desc.contains(&owner_note(upn)) {
                "named"
            } else {
                "NOT named"
            };
            let ok = s.owner.is_unassigned() && named == "named";
            differ(
                ok,
                "owner",
                format!("{upn} (not in the directory)"),
                format!("{s_owner}, {named} in the description"),
            );
        }
        other => differ(
            owner_same(other, s.owner.upn_or_email()),
            "owner",
            other.unwrap_or("unassigned").to_owned(),
            s_owner,
        ),
    }
    let s_tags = s.user_tags();
    differ(
        tags_same(&d.custom_tags, &s_tags),
        "tags",
        format!("{:?}", d.custom_tags),
        format!("{s_tags:?}"),
    );
    let has = |name: &str| s.labels.iter().any(|l| l.name == name);
    let redirected = d.status == DefenderStatus::Redirected;
    differ(
        has(DEFENDER_LABEL),
        "label Defender",
        "mirrored".into(),
        "missing".into(),
    );
    differ(
        has(REDIRECTED_LABEL) == redirected,
        "label Redirected",
        format!("merged={redirected}"),
        format!("label={}", has(REDIRECTED_LABEL)),
    );
    let missing = d
        .comments
        .iter()
        .filter(|c| !is_mirrored(&c.text))
        .flat_map(comment_messages)
        .filter(|m| !p.sentinel_comments.contains(m))
        .count();
    differ(
        missing == 0,
        "comments",
        format!("{} comment(s)", d.comments.len()),
        format!("{missing} missing"),
    );
    // And the other way: every Sentinel analyst comment is in Defender.
    let missing_in_defender = p
        .sentinel_comments
        .iter()
        .filter(|m| !is_mirrored(m))
        .filter(|m| !d.comments.iter().any(|c| c.text.contains(m.as_str())))
        .count();
    differ(
        missing_in_defender == 0,
        "Sentinel comments",
        format!("{missing_in_defender} missing"),
        format!("{} comment(s)", p.sentinel_comments.len()),
    );
    if let (true, Some(into)) = (redirected, &d.redirect_incident_id) {
        let named = p
            .sentinel_comments
            .iter()
            .any(|c| c.contains("merged") && c.contains(&format!("#{into}")));
        differ(
            named,
            "merge comment",
            format!("merged into #{into}"),
            "no comment naming it".into(),
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use super::*;
    use crate::sync::mapping::classification_fields_to_sentinel;
    use time::OffsetDateTime;

    pub(in crate::demo) fn defender() -> DefenderIncident {
        DefenderIncident {
            tenant: TenantId::parse("t1").unwrap(),
            id: DefenderIncidentId::parse("1003").unwrap(),
            display_name: "Ransomware on FIN-PC-7".into(),
            description: None,
            summary: None,
            status: DefenderStatus::Resolved,
            severity: DefenderSeverity::High,
            classification: Some(DefenderClassification::TruePositive),
            determination: Some(Determination::Malware),
            resolving_comment: None,
            assigned_to: Some("kai.carter@contoso.com".into()),
            custom_tags: vec!["vip".into()],
            system_tags: vec![],
            comments: vec![DefenderComment {
                text: "isolated".into(),
                author: Some("sam".into()),
                created: None,
            }],
            redirect_incident_id: None,
            web_url: None,
            created: OffsetDateTime::UNIX_EPOCH,
            last_update: OffsetDateTime::UNIX_EPOCH,
            last_modified_by: None,
            alerts: None,
        }
    }

    /// The Sentinel incident the engine plans for `d`, built with the engine's own functions.
    fn mirrored(d: &DefenderIncident) -> Pair {
        let (c, r, cc) = classification_fields_to_sentinel(&(
            d.classification.clone(),
            d.determination.clone(),
            d.resolving_comment.clone(),
        ));
        let target = SentinelFields {
            status: crate::sync::mapping::status_to_sentinel(&d.status, None).unwrap(),
            severity: severity_to_sentinel(&d.severity),
            classification: c,
            classification_reason: r,
            classification_comment: cc,
            owner_upn: d.assigned_to.clone(),
            tags: d.custom_tags.clone(),
        };
        let s = plan::sentinel_incident(d, None, &target, None);
        let comments = d.comments.iter().flat_map(comment_messages).collect();
        Pair {
            tenant_no: 1,
            defender: d.clone(),
            sentinel: Some(s),
            sentinel_comments: comments,
        }
    }

    #[test]
    fn a_faithful_mirror_agrees_and_each_changed_field_is_named() {
        let p = mirrored(&defender());
        assert_eq!(disagreements(&p, &|_| true), Vec::<String>::new());
        let mut q = p.clone();
        q.sentinel.as_mut().unwrap().status = SentinelStatus::Active;
        q.sentinel
            .as_mut()
            .unwrap()
            .labels
            .retain(|l| l.name != "vip");
        q.sentinel_comments.clear();
        let found = disagreements(&q, &|_| true);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].starts_with("status: Defender resolved / Sentinel Active"),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f.starts_with("tags:"))
                && found.iter().any(|f| f.starts_with("comments:"))
        );
        let mut gone = p.clone();
        gone.sentinel = None;
        assert_eq!(
            disagreements(&gone, &|_| true),
            vec!["not in Sentinel".to_owned()]
        );
    }

    #[test]
    fn an_owner_unknown_to_the_directory_must_be_unassigned_and_named() {
        let d = defender();
        let mut p = mirrored(&d);
        let s = p.sentinel.as_mut().unwrap();
        plan::unassign_unknown_owner(s, &d, "kai.carter@contoso.com");
        assert!(disagreements(&p, &|_| false).is_empty());
        // The same unassigned incident is wrong when the directory knows the owner.
        assert_eq!(disagreements(&p, &|_| true).len(), 1);
    }
}
