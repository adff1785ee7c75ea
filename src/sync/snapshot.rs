//! Optimistic updates: the Sentinel incident rebuilt from the state instead of read with a GET.
//!
//! Why this is safe: Sentinel changes an incident's etag on every write, by anyone (analyst,
//! automation rule, playbook, another instance of us). The state stores, together and under
//! one `If-Match` write, the etag Sentinel gave our last write (or read) and the whole incident
//! as it was at that etag. A PUT carrying that etag is accepted only while the etag still
//! matches, and a matching etag proves Sentinel still holds exactly what we last wrote or read,
//! which is the snapshot: merging against it is merging against the truth. When anyone else
//! wrote in between, the PUT fails with 409 and the incident starts over from a real GET (the
//! ordinary conflict path), so an analyst's change is merged, never overwritten.
//!
//! When the merge plans no write, no PUT is sent and nothing is verified: that is safe too,
//! since nothing is overwritten; a Sentinel change made meanwhile is seen by the next write's
//! 409 (or by the reverse path, which reads Sentinel itself).

use super::plan;
use crate::domain::records::{IncidentState, SentinelSnapshot, SnapshotLabel};
use crate::domain::*;
use sha2::{Digest, Sha256};

/// Digest of an incident's title and description (stored instead of the texts).
fn text_digest(title: &str, description: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(title.as_bytes());
    h.update([0x1f]);
    if let Some(d) = description {
        h.update([1]);
        h.update(d.as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The snapshot of an incident as Sentinel answered it (a PUT's answer or a GET); `None` when
/// it carries no etag (then there is nothing to prove it still holds).
pub(super) fn take(i: &SentinelIncident) -> Option<SentinelSnapshot> {
    let label = |l: &Label| SnapshotLabel {
        name: l.name.clone(),
        auto_assigned: l.kind == LabelKind::AutoAssigned,
    };
    Some(SentinelSnapshot {
        etag: i.etag.clone()?,
        fields: i.fields(),
        owner_object_id: i.owner.object_id,
        owner_upn: i.owner.user_principal_name.clone(),
        owner_email: i.owner.email.clone(),
        owner_assigned_to: i.owner.assigned_to.clone(),
        owner_type: i.owner.owner_type.clone(),
        labels: i.labels.iter().map(label).collect(),
        text_digest: text_digest(&i.title, i.description.as_deref()),
        first_activity: i.first_activity,
        last_activity: i.last_activity,
        incident_number: i.incident_number,
        created: i.created,
        last_modified: i.last_modified,
    })
}

/// The Sentinel incident as of the state's etag, when the state holds a snapshot of exactly
/// that etag. Title and description are Defender's texts, stored as a digest: when it matches
/// the texts planned from `d` they are those, else they are left empty (unknown), which
/// differs from any planned incident, so the PUT goes out and rewrites them. An incident whose
/// Defender owner the Sentinel directory did not know (the state names it) has that owner
/// noted in its description: that text is planned too, so it is matched as well (else every
/// Defender change, our own reverse comment included, would re-PUT it unchanged: issue 12).
pub(super) fn rebuild(st: &IncidentState, d: &DefenderIncident) -> Option<SentinelIncident> {
    let snap = st.snapshot()?;
    let title = plan::title(d);
    let noted = st
        .unknown_owner
        .as_deref()
        .map(|upn| plan::unknown_owner_description(d, upn));
    let description = std::iter::once(plan::description(d))
        .chain(noted)
        .find(|text| text_digest(&title, Some(text)) == snap.text_digest);
    let title = if description.is_some() {
        title
    } else {
        String::new()
    };
    let kind = |auto: bool| {
        if auto {
            LabelKind::AutoAssigned
        } else {
            LabelKind::User
        }
    };
    let f = &snap.fields;
    Some(SentinelIncident {
        name: st.sentinel_name,
        etag: Some(snap.etag.clone()),
        title,
        description,
        severity: f.severity.clone(),
        status: f.status.clone(),
        classification: f.classification.clone(),
        classification_reason: f.classification_reason.clone(),
        classification_comment: f.classification_comment.clone(),
        owner: Owner {
            object_id: snap.owner_object_id,
            user_principal_name: snap.owner_upn.clone(),
            email: snap.owner_email.clone(),
            assigned_to: snap.owner_assigned_to.clone(),
            owner_type: snap.owner_type.clone(),
        },
        labels: snap
            .labels
            .iter()
            .map(|l| Label {
                name: l.name.clone(),
                kind: kind(l.auto_assigned),
            })
            .collect(),
        first_activity: snap.first_activity,
        last_activity: snap.last_activity,
        incident_number: snap.incident_number,
        created: snap.created,
        last_modified: snap.last_modified,
        comments_count: st.sentinel_comments,
        platform_id: st.platform_incident.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dss_test_support::{T0, incident, tenant};

    fn sentinel(d: &DefenderIncident) -> SentinelIncident {
        SentinelIncident {
            name: SentinelIncidentName::for_defender(&d.tenant, &d.id),
            etag: Some("\"e1\"".into()),
            title: plan::title(d),
            description: Some(plan::description(d)),
            severity: SentinelSeverity::High,
            status: SentinelStatus::Active,
            classification: None,
            classification_reason: None,
            classification_comment: Some("note".into()),
            owner: Owner {
                object_id: Some(uuid::Uuid::from_u128(9)),
                user_principal_name: Some("a@contoso.com".into()),
                email: Some("a@contoso.com".into()),
                assigned_to: Some("A".into()),
                owner_type: Some(OwnerType::User),
            },
            labels: vec![
                Label {
                    name: "Defender".into(),
                    kind: LabelKind::User,
                },
                Label {
                    name: "ml".into(),
                    kind: LabelKind::AutoAssigned,
                },
            ],
            first_activity: Some(T0),
            last_activity: Some(T0),
            incident_number: Some(42),
            created: Some(T0),
            last_modified: Some(T0),
            comments_count: None,
            platform_id: None,
        }
    }

    fn state_with(i: &SentinelIncident, d: &DefenderIncident) -> IncidentState {
        let mut st = IncidentState::new(d.tenant.clone(), d.id.clone());
        st.record_sentinel(i.etag.clone(), take(i));
        st
    }

    #[test]
    fn a_snapshot_rebuilds_the_incident_exactly_and_survives_serde() {
        let d = incident(&tenant(), 1, T0);
        let i = sentinel(&d);
        let st = state_with(&i, &d);
        let json = serde_json::to_string(&st).unwrap();
        let back: IncidentState = serde_json::from_str(&json).unwrap();
        assert_eq!(rebuild(&back, &d), Some(i));
    }

    #[test]
    fn nothing_is_rebuilt_without_a_snapshot_of_the_current_etag() {
        let d = incident(&tenant(), 1, T0);
        let i = sentinel(&d);
        // Another writer (an older version) moved the etag without the snapshot.
        let mut v = serde_json::to_value(state_with(&i, &d)).unwrap();
        v["sentinel_etag"] = serde_json::json!("\"e2\"");
        let st: IncidentState = serde_json::from_value(v).unwrap();
        assert_eq!(
            rebuild(&st, &d),
            None,
            "another writer moved the etag without the snapshot"
        );
        let old = serde_json::json!({"sentinel_etag": "\"e1\""});
        let mut v =
            serde_json::to_value(IncidentState::new(d.tenant.clone(), d.id.clone())).unwrap();
        v.as_object_mut().unwrap().remove("sentinel_snapshot");
        v["sentinel_etag"] = old["sentinel_etag"].clone();
        let legacy: IncidentState = serde_json::from_value(v).unwrap();
        assert_eq!(
            rebuild(&legacy, &d),
            None,
            "a state from before snapshots reads Sentinel"
        );
    }

    /// Issue 12 (the echo): an incident whose Defender owner Sentinel's directory does not know
    /// carries the owner note in its description. Rebuilt from its snapshot, it must read as
    /// what the planned PUT would write, or every Defender change (our own reverse comment
    /// included) re-PUTs it unchanged.
    #[test]
    fn an_unknown_owner_incident_rebuilds_to_what_would_be_planned() {
        let mut d = incident(&tenant(), 1, T0);
        let upn = "omar.ali@contoso.com";
        d.assigned_to = Some(upn.into());
        let was = sentinel(&d);
        let mut planned = plan::sentinel_incident(&d, Some(&was), &was.fields(), None);
        plan::unassign_unknown_owner(&mut planned, &d, upn);
        let mut st = state_with(&planned, &d);
        st.unknown_owner = Some(upn.into());
        let c = rebuild(&st, &d).unwrap();
        assert_eq!(c.description, planned.description, "the texts are known");
        let mut again = plan::sentinel_incident(&d, Some(&c), &c.fields(), None);
        plan::unassign_unknown_owner(&mut again, &d, upn);
        assert!(plan::same_writable(&again, &c), "nothing to PUT");
        // The same incident once the owner is known again is rewritten.
        st.unknown_owner = None;
        let c = rebuild(&st, &d).unwrap();
        assert!(c.title.is_empty() && c.description.is_none());
    }

    #[test]
    fn changed_texts_are_left_unknown_so_the_put_rewrites_them() {
        let d = incident(&tenant(), 1, T0);
        let st = state_with(&sentinel(&d), &d);
        let mut renamed = d.clone();
        renamed.display_name = "Renamed".into();
        let c = rebuild(&st, &renamed).unwrap();
        assert!(c.title.is_empty() && c.description.is_none());
        let planned = plan::sentinel_incident(&renamed, Some(&c), &c.fields(), None);
        assert!(!plan::same_writable(&planned, &c));
    }
}
