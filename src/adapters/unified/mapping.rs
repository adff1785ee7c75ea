//! Pure translations between a platform incident (Graph, Defender vocabulary) and the
//! Sentinel-side domain incident the engine works with.

use crate::domain::mapping as m;
use crate::domain::*;
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Custom detail keys of the analytics rule (`infra/modules/unified-analytics-rule.bicep`).
pub const SOURCE_TENANT_KEY: &str = "SourceTenantId";
pub const SOURCE_INCIDENT_KEY: &str = "SourceIncidentId";

/// One custom detail of an alert's `additionalData`: Sentinel keeps each as an array of strings;
/// a plain string is read too.
pub fn custom_detail<'a>(data: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    match data.get(key)? {
        Value::String(s) => Some(s.as_str()),
        Value::Array(a) => a.first()?.as_str(),
        _ => None,
    }
    .map(str::trim)
    .filter(|s| !s.is_empty())
}

/// The source incident an alert names, when both custom details are valid ids.
pub fn source_of(data: &Map<String, Value>) -> Option<(TenantId, DefenderIncidentId)> {
    let tenant = TenantId::parse(custom_detail(data, SOURCE_TENANT_KEY)?).ok()?;
    let id = DefenderIncidentId::parse(custom_detail(data, SOURCE_INCIDENT_KEY)?).ok()?;
    Some((tenant, id))
}

/// The source incident of a platform incident: that of the alert carrying the custom details
/// created closest to the incident (the alert it was made from). After a merge the survivor
/// holds alerts of several sources, and a merged-in alert may well be older than the survivor.
pub fn source_of_incident(p: &DefenderIncident) -> Option<(TenantId, DefenderIncidentId)> {
    let mut alerts: Vec<&Alert> = p.alerts.as_deref().unwrap_or_default().iter().collect();
    alerts.sort_by_key(|a| a.created.map(|c| (c - p.created).abs()));
    alerts.into_iter().find_map(|a| {
        let v = a.raw.to_value();
        source_of(v.get("additionalData")?.as_object()?)
    })
}

/// The etag of a platform incident: its version (`lastUpdateDateTime`). The pair is not in it:
/// the incident carries it as `platform_id` and the state keeps it in its own field.
pub fn etag(p: &DefenderIncident) -> String {
    p.last_update
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The platform incident id an etag of the old form `{id}@{lastUpdateDateTime}` names (states
/// written before the pair had its own field; read once, then the field is written).
pub fn id_from_etag(etag: &str) -> Option<DefenderIncidentId> {
    DefenderIncidentId::parse(etag.split_once('@')?.0).ok()
}

/// The platform incident as the Sentinel-side domain incident named `name`. `last` is what the
/// engine last asked this adapter to write for it: the fields the platform owns (title,
/// description, severity, activity times) are reported as asked, and a synced field whose
/// platform value means the same as what was asked (Graph holds `active` for both Sentinel New
/// and Active; an owner by UPN for one with an object id) is reported as asked, so the engine
/// does not see its own write as a change.
pub fn to_sentinel(
    name: SentinelIncidentName,
    p: &DefenderIncident,
    last: Option<&SentinelIncident>,
) -> SentinelIncident {
    let (classification, reason) =
        m::classification_to_sentinel(p.classification.as_ref(), p.determination.as_ref());
    let comment =
        m::classification_comment(p.determination.as_ref(), p.resolving_comment.as_deref());
    let owner = Owner {
        user_principal_name: p.assigned_to.clone(),
        assigned_to: p.assigned_to.clone(),
        ..Owner::default()
    };
    let labels: Vec<Label> = p
        .custom_tags
        .iter()
        .map(|t| Label {
            name: t.clone(),
            kind: LabelKind::User,
        })
        .collect();
    let status = m::status_to_sentinel(&p.status, None).unwrap_or(SentinelStatus::Active);
    let mut s = SentinelIncident {
        name,
        etag: Some(etag(p)),
        title: p.display_name.clone(),
        description: p.description.clone().filter(|d| !d.is_empty()),
        severity: m::severity_to_sentinel(&p.severity),
        status,
        classification,
        classification_reason: reason,
        classification_comment: comment,
        owner,
        labels,
        first_activity: None,
        last_activity: None,
        incident_number: p.id.as_str().parse().ok(),
        created: Some(p.created),
        last_modified: Some(p.last_update),
        comments_count: u32::try_from(p.comments.len()).ok(),
        platform_id: Some(p.id.clone()),
    };
    if let Some(l) = last {
        s.title = l.title.clone();
        s.description = l.description.clone();
        s.severity = l.severity.clone();
        s.first_activity = l.first_activity;
        s.last_activity = l.last_activity;
        if m::status_same(&p.status, &l.status) {
            s.status = l.status.clone();
        }
        let platform = (
            p.classification.clone(),
            p.determination.clone(),
            p.resolving_comment.clone(),
        );
        let asked = (
            l.classification.clone(),
            l.classification_reason.clone(),
            l.classification_comment.clone(),
        );
        if m::classification_same(&platform, &asked) {
            (
                s.classification,
                s.classification_reason,
                s.classification_comment,
            ) = asked;
        }
        if m::owner_same(p.assigned_to.as_deref(), l.owner.upn_or_email()) {
            s.owner = l.owner.clone();
        }
        if m::tags_same(&p.custom_tags, &l.user_tags()) {
            s.labels = l.labels.clone();
        }
    }
    s
}

/// The Graph PATCH that makes platform incident `p` hold the synced fields of `s`: only what
/// differs. The determination comes from the classification comment's
/// `Defender determination: …` prefix when there is one (the forward mapping writes it), else
/// the platform's is kept when it fits the classification.
pub fn patch_for(p: &DefenderIncident, s: &SentinelIncident) -> Result<DefenderPatch, String> {
    let mut patch = DefenderPatch::default();
    if !m::status_same(&p.status, &s.status) {
        patch.status =
            Some(m::status_to_defender(&s.status).map_err(|e| format!("{} {}", e.field, e.value))?);
    }
    let asked = (
        s.classification.clone(),
        s.classification_reason.clone(),
        s.classification_comment.clone(),
    );
    m::check_sentinel_classification(&asked).map_err(|e| format!("{} {}", e.field, e.value))?;
    let platform = (
        p.classification.clone(),
        p.determination.clone(),
        p.resolving_comment.clone(),
    );
    if !m::classification_same(&platform, &asked) {
        let named = determination_in(s.classification_comment.as_deref());
        let current = named.as_ref().or(p.determination.as_ref());
        let (c, d, comment) = m::classification_fields_to_defender(&asked, current);
        let (c, d) = match (s.classification.as_ref(), named) {
            // Undetermined / none: leave Graph's classification alone.
            (None | Some(SentinelClassification::Undetermined), _) => (None, None),
            (_, _) => (c, d),
        };
        patch.classification = c.filter(|c| Some(c) != p.classification.as_ref());
        patch.determination = d.filter(|d| Some(d) != p.determination.as_ref());
        if comment.is_some() && comment != p.resolving_comment {
            patch.resolving_comment = comment;
        }
    }
    let owner = s.owner.upn_or_email().map(str::to_owned);
    if !m::owner_same(p.assigned_to.as_deref(), owner.as_deref()) {
        patch.assigned_to = Some(owner);
    }
    let tags = s.user_tags();
    if !m::tags_same(&p.custom_tags, &tags) {
        patch.custom_tags = Some(tags);
    }
    Ok(patch)
}

/// `Defender determination: malware.` at the start of a classification comment.
fn determination_in(comment: Option<&str>) -> Option<Determination> {
    let rest = comment?.strip_prefix(m::DETERMINATION_PREFIX)?;
    let word = rest.split_once('.').map_or(rest, |(w, _)| w).trim();
    match Determination::parse_alias(word) {
        Determination::Unrecognized(_) => None,
        d => Some(d),
    }
}

/// The comment on an extra platform incident of a split, pointing to the source's own one.
pub fn split_note(primary: &DefenderIncidentId) -> String {
    format!(
        "[defender-sentinel-sync] Closed: these alerts belong to the source incident of incident {}, \
         which the sync keeps in sync; the platform made this one because they arrived after the \
         analytics rule's grouping window.",
        primary.as_str()
    )
}

/// The mirror marker of the sync's own notes (`sync::fingerprint::DEFENDER_MARKER`): comments
/// starting with it are never mirrored to Defender, so a note stays on the platform.
const NOTE_MARKER: &str = "[Defender] ";

/// What changed in the synced fields between two versions of a source incident, in words
/// (status, classification, owner, tags); empty when nothing did.
pub fn changes(before: &SentinelIncident, after: &SentinelIncident) -> Vec<String> {
    let (b, a) = (before.fields(), after.fields());
    let word = |v: &dyn std::fmt::Debug| format!("{v:?}");
    let mut out = Vec::new();
    if b.status != a.status {
        out.push(format!("status {} → {}", word(&b.status), word(&a.status)));
    }
    let class = |f: &SentinelFields| (f.classification.clone(), f.classification_reason.clone());
    if class(&b) != class(&a) {
        let show = |f: &SentinelFields| match (&f.classification, &f.classification_reason) {
            (None, _) => "none".to_owned(),
            (Some(c), None) => word(c),
            (Some(c), Some(r)) => format!("{} ({})", word(c), word(r)),
        };
        out.push(format!("classification {} → {}", show(&b), show(&a)));
    }
    if !m::owner_same(b.owner_upn.as_deref(), a.owner_upn.as_deref()) {
        let show = |o: &Option<String>| o.clone().unwrap_or_else(|| "nobody".to_owned());
        out.push(format!(
            "owner {} → {}",
            show(&b.owner_upn),
            show(&a.owner_upn)
        ));
    }
    if !m::tags_same(&b.tags, &a.tags) {
        out.push(format!(
            "tags [{}] → [{}]",
            b.tags.join(", "),
            a.tags.join(", ")
        ));
    }
    out
}

/// The note on a merge's survivor telling that a source incident merged into it changed (its
/// fields do not overwrite the survivor's, which follows the incident it was made for).
pub fn merged_change_note(
    tenant: &TenantId,
    source: &DefenderIncidentId,
    changes: &[String],
) -> String {
    format!(
        "{NOTE_MARKER}Defender incident #{} of tenant {} (merged into this incident) changed: {}. \
         This incident keeps following the incident it was made for.",
        source.as_str(),
        tenant.as_str(),
        changes.join("; ")
    )
}

/// The source (tenant, incident) among the alerts of platform incident `p` whose derived name
/// is `name`.
pub fn source_named(
    p: &DefenderIncident,
    name: SentinelIncidentName,
) -> Option<(TenantId, DefenderIncidentId)> {
    p.alerts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|a| {
            let v = a.raw.to_value();
            let (t, id) = source_of(v.get("additionalData")?.as_object()?)?;
            (SentinelIncidentName::for_defender(&t, &id) == name).then_some((t, id))
        })
}

/// Whether a patch changes nothing.
pub fn is_empty(p: &DefenderPatch) -> bool {
    *p == DefenderPatch::default()
}

/// The platform's comments as Sentinel comments (ids stable per platform incident, time and text).
pub fn comments(p: &DefenderIncident) -> Vec<SentinelComment> {
    p.comments
        .iter()
        .map(|c| {
            let at = c
                .created
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
            SentinelComment {
                id: stable_uuid(&[p.id.as_str(), &at, &c.text]).to_string(),
                message: c.text.clone(),
                author: c.author.clone(),
                created: c.created,
            }
        })
        .collect()
}

/// `createdDateTime` of an alert, for the scan's watermark.
pub fn parse_time(s: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s?, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
