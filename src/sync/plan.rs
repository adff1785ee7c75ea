//! Pure planning: the whole Sentinel incident to PUT, the pull windows, and the checkpoint
//! advance rule (`docs/sync-model.md`, invariant 2).

use super::mapping::{is_reserved_label, owner_same};
use crate::domain::records::Checkpoint;
use crate::domain::*;
use std::collections::BTreeSet;
use time::{Duration, OffsetDateTime};

/// Sentinel's description limit, in characters.
pub const DESCRIPTION_LIMIT: usize = SENTINEL_DESCRIPTION_MAX_CHARS;
/// Shown at the end of a cut description.
pub const TRUNCATION_MARKER: &str = "\n\n[… truncated; the full text is in Microsoft Defender]";
/// Graph refuses `$skip` above 500: a window holding more must be split.
pub const MAX_WINDOW_INCIDENTS: u64 = 500;
/// Label on every incident we mirror.
pub const DEFENDER_LABEL: &str = "Defender";
/// Label on incidents Defender merged into another.
pub const REDIRECTED_LABEL: &str = "Redirected";

/// The Defender portal link of an incident, built from id and tenant (Graph's `incidentWebUrl`
/// can be null or of another form).
pub fn portal_link(tenant: &TenantId, id: &DefenderIncidentId) -> String {
    format!("https://security.microsoft.com/incidents/{id}?tid={tenant}")
}

/// The Defender incident a text's portal link names (the first [`portal_link`] in it), PURE:
/// `None` without one, or when its id or tenant does not parse.
pub fn parse_portal_link(text: &str) -> Option<(TenantId, DefenderIncidentId)> {
    const PREFIX: &str = "https://security.microsoft.com/incidents/";
    let rest = &text[text.find(PREFIX)? + PREFIX.len()..];
    let (id, rest) = rest.split_once("?tid=")?;
    let tenant: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    Some((
        TenantId::parse(&tenant).ok()?,
        DefenderIncidentId::parse(id).ok()?,
    ))
}

/// The Sentinel title: names the Defender incident, so analysts can find it.
pub fn title(d: &DefenderIncident) -> String {
    format!("[Defender #{}] {}", d.id, d.display_name)
}

/// Link, summary and description, cut to [`DESCRIPTION_LIMIT`] characters with a visible marker.
pub fn description(d: &DefenderIncident) -> String {
    description_with(d, None)
}

/// The description with a note right after the portal link.
fn description_with(d: &DefenderIncident, note: Option<&str>) -> String {
    let parts: Vec<&str> = [note, d.summary.as_deref(), d.description.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut text = portal_link(&d.tenant, &d.id);
    for p in parts {
        text.push_str("\n\n");
        text.push_str(p);
    }
    if text.chars().count() <= DESCRIPTION_LIMIT {
        return text;
    }
    let keep = DESCRIPTION_LIMIT - TRUNCATION_MARKER.chars().count();
    let mut cut: String = text.chars().take(keep).collect();
    cut.push_str(TRUNCATION_MARKER);
    cut
}

/// An owner the Sentinel directory does not know (Sentinel refuses to assign it): the incident
/// is left unassigned and its description names the Defender owner.
pub fn unassign_unknown_owner(planned: &mut SentinelIncident, d: &DefenderIncident, upn: &str) {
    planned.owner = Owner::default();
    planned.description = Some(unknown_owner_description(d, upn));
}

/// The description of an incident whose Defender owner `upn` the Sentinel directory does not
/// know: the owner named right after the portal link.
pub fn unknown_owner_description(d: &DefenderIncident, upn: &str) -> String {
    let note = format!(
        "Defender owner: {upn} (not a user of the Sentinel tenant's directory, so not assigned here)"
    );
    description_with(d, Some(&note))
}

/// First and last activity over the alerts (`None` when alerts are unknown or carry none).
pub fn activity_range(alerts: &[Alert]) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
    let first = alerts
        .iter()
        .filter_map(|a| a.first_activity.or(a.created))
        .min();
    let last = alerts
        .iter()
        .filter_map(|a| a.last_activity.or(a.last_update))
        .max();
    (first, last)
}

/// The owner to write: kept as is when it is the same person (so its object id survives),
/// else built from the UPN and the resolved directory user when known. A group owner (set in
/// Sentinel) is kept while Defender names no owner.
pub fn owner(
    target_upn: Option<&str>,
    current: Option<&Owner>,
    resolved: Option<&UserRef>,
) -> Owner {
    let Some(upn) = target_upn.map(str::trim).filter(|s| !s.is_empty()) else {
        // A group owner has no UPN, so the synced owner field reads "none" while it is there:
        // keep it (with its ownerType) rather than unassign the incident on every write.
        return current
            .filter(|c| c.is_group())
            .cloned()
            .unwrap_or_default();
    };
    if let Some(cur) = current.filter(|c| owner_same(c.upn_or_email(), Some(upn))) {
        return cur.clone();
    }
    let resolved = resolved.filter(|u| u.user_principal_name.eq_ignore_ascii_case(upn));
    Owner {
        object_id: resolved.map(|u| u.object_id),
        user_principal_name: Some(upn.to_owned()),
        email: Some(
            resolved
                .and_then(|u| u.mail.clone())
                .unwrap_or_else(|| upn.to_owned()),
        ),
        assigned_to: resolved.and_then(|u| u.display_name.clone()),
        owner_type: Some(OwnerType::User),
    }
}

/// Labels: the user tags, our `Defender` (and `Redirected`) labels, and the current
/// AutoAssigned labels (set by the service, kept as they are).
pub fn labels(tags: &[String], redirected: bool, current: Option<&SentinelIncident>) -> Vec<Label> {
    let mut out: Vec<Label> = tags
        .iter()
        .filter(|t| !is_reserved_label(t))
        .map(|t| Label {
            name: t.clone(),
            kind: LabelKind::User,
        })
        .collect();
    out.push(Label {
        name: DEFENDER_LABEL.into(),
        kind: LabelKind::User,
    });
    if redirected {
        out.push(Label {
            name: REDIRECTED_LABEL.into(),
            kind: LabelKind::User,
        });
    }
    let auto = current
        .into_iter()
        .flat_map(|c| c.labels.iter())
        .filter(|l| l.kind == LabelKind::AutoAssigned);
    out.extend(auto.cloned());
    out
}

/// The whole Sentinel incident to PUT: PUT replaces every writable property, so everything is
/// set, starting from the current incident (its etag and read-only fields are kept).
pub fn sentinel_incident(
    d: &DefenderIncident,
    current: Option<&SentinelIncident>,
    target: &SentinelFields,
    resolved_owner: Option<&UserRef>,
) -> SentinelIncident {
    let (first, last) = match d.alerts.as_deref() {
        Some(alerts) => activity_range(alerts),
        None => (
            current.and_then(|c| c.first_activity),
            current.and_then(|c| c.last_activity),
        ),
    };
    SentinelIncident {
        name: SentinelIncidentName::for_defender(&d.tenant, &d.id),
        etag: current.and_then(|c| c.etag.clone()),
        title: title(d),
        description: Some(description(d)),
        severity: target.severity.clone(),
        status: target.status.clone(),
        classification: target.classification.clone(),
        classification_reason: target.classification_reason.clone(),
        classification_comment: target.classification_comment.clone(),
        owner: owner(
            target.owner_upn.as_deref(),
            current.map(|c| &c.owner),
            resolved_owner,
        ),
        labels: labels(
            &target.tags,
            d.status == DefenderStatus::Redirected,
            current,
        ),
        first_activity: first.or(current.and_then(|c| c.first_activity)),
        last_activity: last.or(current.and_then(|c| c.last_activity)),
        incident_number: current.and_then(|c| c.incident_number),
        created: current.and_then(|c| c.created),
        last_modified: current.and_then(|c| c.last_modified),
        comments_count: current.and_then(|c| c.comments_count),
        platform_id: current.and_then(|c| c.platform_id.clone()),
    }
}

/// True when a PUT of `planned` would change nothing in `current` (writable properties only).
pub fn same_writable(planned: &SentinelIncident, current: &SentinelIncident) -> bool {
    let sorted = |l: &[Label]| {
        let mut v: Vec<(String, bool)> = l
            .iter()
            .map(|l| (l.name.clone(), l.kind == LabelKind::User))
            .collect();
        v.sort();
        v
    };
    planned.title == current.title
        && planned.description == current.description
        && planned.severity == current.severity
        && planned.status == current.status
        && planned.classification == current.classification
        && planned.classification_reason == current.classification_reason
        && planned.classification_comment == current.classification_comment
        && owner_same(planned.owner.upn_or_email(), current.owner.upn_or_email())
        && (planned.owner.object_id.is_none() || planned.owner.object_id == current.owner.object_id)
        && sorted(&planned.labels) == sorted(&current.labels)
        && planned.first_activity == current.first_activity
        && planned.last_activity == current.last_activity
}

/// The first pull window of a cycle: `[watermark − overlap, now)`, or `[now − lookback, now)`
/// when the tenant has no checkpoint yet.
pub fn initial_window(
    checkpoint: Option<&Checkpoint>,
    lookback: Duration,
    overlap: Duration,
    now: OffsetDateTime,
) -> IncidentWindow {
    let from = match checkpoint {
        Some(c) => c.watermark - overlap,
        None => now - lookback,
    };
    IncidentWindow {
        updated_from: from.min(now),
        updated_to: Some(now),
        created_from: None,
        created_to: None,
    }
}

/// What reading a whole window says about whether Graph served all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowRead {
    /// Nothing says an incident is missing.
    Complete,
    /// Fewer items than `@odata.count` arrived (Graph stopped paging silently), or, with no
    /// count, as many as a window may hold (paging stopped there on purpose): read the window
    /// again in smaller windows; until they are read, it holds the watermark.
    Short,
}

/// Judges a window read to its end: `count` as Graph counted it (`None`: no `@odata.count`),
/// `read` the items its pages held (incidents and unmappable items alike).
pub fn judge_window(count: Option<u64>, read: u64) -> WindowRead {
    match count {
        Some(n) if read < n => WindowRead::Short,
        Some(_) => WindowRead::Complete,
        None if read >= MAX_WINDOW_INCIDENTS => WindowRead::Short,
        None => WindowRead::Complete,
    }
}

/// The narrowest time range still split by halving; below it a window is split by creation time.
const MIN_SPLIT: Duration = Duration::milliseconds(1);
/// Earliest creation time considered when splitting by `createdDateTime`.
const CREATED_FLOOR: OffsetDateTime = time::macros::datetime!(2000-01-01 0:00 UTC);

/// Splits a window holding too many incidents into two halves, earlier first: by
/// `lastUpdateDateTime` while the range is wider than a millisecond, else (many incidents
/// sharing one instant) by `createdDateTime`. `None` when it cannot be narrowed further.
pub fn split_window(w: &IncidentWindow) -> Option<(IncidentWindow, IncidentWindow)> {
    let to = w.updated_to?;
    if to - w.updated_from > MIN_SPLIT && w.created_from.is_none() && w.created_to.is_none() {
        let mid = w.updated_from + (to - w.updated_from) / 2;
        let a = IncidentWindow {
            updated_to: Some(mid),
            ..w.clone()
        };
        let b = IncidentWindow {
            updated_from: mid,
            ..w.clone()
        };
        return Some((a, b));
    }
    let c_from = w.created_from.unwrap_or(CREATED_FLOOR);
    let c_to = w.created_to.unwrap_or(to);
    if c_to - c_from <= Duration::microseconds(1) {
        return None;
    }
    let mid = c_from + (c_to - c_from) / 2;
    let a = IncidentWindow {
        created_from: Some(c_from),
        created_to: Some(mid),
        ..w.clone()
    };
    let b = IncidentWindow {
        created_from: Some(mid),
        created_to: Some(c_to),
        ..w.clone()
    };
    Some((a, b))
}

/// The checkpoint after a cycle. `hold` is the earliest instant not known to be delivered or
/// parked (a failed page's window start, a transiently failed incident, the deadline); without
/// one the whole window `[.., window_end)` was handled. `delivered` are the incidents delivered
/// (or parked), with their `lastUpdateDateTime`. The watermark never moves back.
pub fn advance_checkpoint(
    current: Option<&Checkpoint>,
    window_end: OffsetDateTime,
    hold: Option<OffsetDateTime>,
    delivered: &[(OffsetDateTime, String)],
) -> Option<Checkpoint> {
    let candidate = hold.unwrap_or(window_end);
    let at = |w: OffsetDateTime| -> BTreeSet<String> {
        delivered
            .iter()
            .filter(|(t, _)| *t == w)
            .map(|(_, id)| id.clone())
            .collect()
    };
    match current {
        Some(c) if candidate < c.watermark => Some(c.clone()),
        Some(c) if candidate == c.watermark => {
            let mut ids = c.ids_at_watermark.clone();
            ids.extend(at(candidate));
            Some(Checkpoint {
                watermark: candidate,
                ids_at_watermark: ids,
            })
        }
        // With no checkpoint and a hold, there is nothing safe to record yet beyond the hold.
        _ => Some(Checkpoint {
            watermark: candidate,
            ids_at_watermark: at(candidate),
        }),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
