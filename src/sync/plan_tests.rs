use super::*;
use crate::sync::merge::{MergeInput, MergePolicy, merge};
use dss_test_support::{T0, incident, tenant};

fn target_for(d: &DefenderIncident) -> SentinelFields {
    let input = MergeInput {
        base: None,
        defender: &d.fields(),
        sentinel: None,
        defender_modified: d.last_update,
        sentinel_modified: None,
    };
    let p = MergePolicy {
        conflict: ConflictPolicyName::LatestWins,
        severity_to_defender: false,
    };
    merge(input, &p).unwrap().sentinel_target
}

#[test]
fn the_incident_carries_everything_sentinel_needs() {
    let mut d = incident(&tenant(), 42, T0);
    d.custom_tags = vec!["ransomware".into()];
    d.assigned_to = Some("Alice@Contoso.com".into());
    let user = UserRef {
        object_id: uuid::Uuid::from_u128(7),
        user_principal_name: "alice@contoso.com".into(),
        mail: Some("alice.smith@contoso.com".into()),
        display_name: Some("Alice".into()),
    };
    let i = sentinel_incident(&d, None, &target_for(&d), Some(&user));
    assert_eq!(i.name, SentinelIncidentName::for_defender(&d.tenant, &d.id));
    assert_eq!(i.title, "[Defender #42] Multi-stage incident 42");
    let desc = i.description.unwrap();
    assert!(desc.starts_with(&format!(
        "https://security.microsoft.com/incidents/42?tid={}",
        tenant()
    )));
    assert!(desc.contains("Summary") && desc.contains("Something happened"));
    assert_eq!(i.severity, SentinelSeverity::High);
    assert_eq!(i.status, SentinelStatus::New);
    assert_eq!(i.owner.object_id, Some(uuid::Uuid::from_u128(7)));
    assert_eq!(
        i.owner.user_principal_name.as_deref(),
        Some("Alice@Contoso.com")
    );
    assert_eq!(i.owner.email.as_deref(), Some("alice.smith@contoso.com"));
    let names: Vec<&str> = i.labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["ransomware", "Defender"]);
    assert_eq!(i.first_activity, Some(T0 - time::Duration::hours(1)));
    assert_eq!(i.last_activity, Some(T0 - time::Duration::minutes(10)));
    assert_eq!(i.etag, None);
}

#[test]
fn a_long_description_is_cut_with_a_visible_marker() {
    let mut d = incident(&tenant(), 1, T0);
    d.description = Some("é".repeat(9_000));
    let text = description(&d);
    assert_eq!(text.chars().count(), DESCRIPTION_LIMIT);
    assert!(text.ends_with(TRUNCATION_MARKER));
}

#[test]
fn the_current_etag_autoassigned_labels_and_owner_object_id_are_kept() {
    let d = {
        let mut d = incident(&tenant(), 5, T0);
        d.assigned_to = Some("bob@contoso.com".into());
        d.status = DefenderStatus::Redirected;
        d
    };
    let mut current = sentinel_incident(&d, None, &target_for(&d), None);
    current.etag = Some("\"e1\"".into());
    current.owner.object_id = Some(uuid::Uuid::from_u128(9));
    current.owner.user_principal_name = Some("BOB@contoso.com".into());
    current.labels.push(Label {
        name: "ml-cluster".into(),
        kind: LabelKind::AutoAssigned,
    });
    let next = sentinel_incident(&d, Some(&current), &target_for(&d), None);
    assert_eq!(next.etag.as_deref(), Some("\"e1\""));
    assert_eq!(next.owner.object_id, Some(uuid::Uuid::from_u128(9)));
    assert!(
        next.labels
            .iter()
            .any(|l| l.name == "ml-cluster" && l.kind == LabelKind::AutoAssigned)
    );
    assert!(next.labels.iter().any(|l| l.name == REDIRECTED_LABEL));
    assert!(same_writable(&next, &current));
    let mut changed = next.clone();
    changed.title.push('!');
    assert!(!same_writable(&changed, &current));
}

#[test]
fn windows_start_at_the_watermark_minus_overlap_or_the_lookback() {
    let now = T0;
    let w = initial_window(None, Duration::days(1), Duration::minutes(5), now);
    assert_eq!(
        (w.updated_from, w.updated_to),
        (now - Duration::days(1), Some(now))
    );
    let cp = Checkpoint {
        watermark: now - Duration::hours(1),
        ids_at_watermark: Default::default(),
    };
    let w = initial_window(Some(&cp), Duration::days(1), Duration::minutes(5), now);
    assert_eq!(w.updated_from, now - Duration::minutes(65));
}

#[test]
fn split_halves_time_then_creation_time() {
    let w = IncidentWindow {
        updated_from: T0,
        updated_to: Some(T0 + Duration::hours(2)),
        created_from: None,
        created_to: None,
    };
    let (a, b) = split_window(&w).unwrap();
    assert_eq!(
        (a.updated_from, a.updated_to, b.updated_from, b.updated_to),
        (
            T0,
            Some(T0 + Duration::hours(1)),
            T0 + Duration::hours(1),
            w.updated_to
        )
    );
    // One instant: split by createdDateTime instead.
    let instant = IncidentWindow {
        updated_from: T0,
        updated_to: Some(T0 + Duration::microseconds(1)),
        created_from: None,
        created_to: None,
    };
    let (a, b) = split_window(&instant).unwrap();
    assert_eq!(
        (a.updated_from, a.updated_to),
        (instant.updated_from, instant.updated_to)
    );
    assert_eq!(a.created_to, b.created_from);
    assert!(a.created_from.is_some() && b.created_to == instant.updated_to);
    let tiny = IncidentWindow {
        created_from: Some(T0),
        created_to: Some(T0 + Duration::nanoseconds(500)),
        ..instant
    };
    assert!(split_window(&tiny).is_none());
}

#[test]
fn the_checkpoint_moves_only_past_delivered_instants() {
    let end = T0 + Duration::hours(1);
    let delivered = vec![
        (T0, "1".to_owned()),
        (T0, "2".to_owned()),
        (T0 + Duration::minutes(1), "3".to_owned()),
    ];
    // Everything handled: the watermark moves to the window end.
    let c = advance_checkpoint(None, end, None, &delivered).unwrap();
    assert_eq!(c.watermark, end);
    // A hold at T0: the watermark stops there and names what was delivered at that instant.
    let c = advance_checkpoint(None, end, Some(T0), &delivered).unwrap();
    assert_eq!(c.watermark, T0);
    assert_eq!(
        c.ids_at_watermark
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["1", "2"]
    );
    // Never backwards; at the same instant the ids accumulate.
    let cur = Checkpoint {
        watermark: T0,
        ids_at_watermark: ["9".to_owned()].into(),
    };
    let c = advance_checkpoint(Some(&cur), end, Some(T0 - Duration::hours(1)), &delivered).unwrap();
    assert_eq!(c, cur);
    let c = advance_checkpoint(Some(&cur), end, Some(T0), &delivered).unwrap();
    assert_eq!(c.ids_at_watermark.len(), 3);
}

#[test]
fn a_group_owner_is_kept_while_defender_names_no_owner() {
    let group = Owner {
        object_id: Some(uuid::Uuid::from_u128(5)),
        assigned_to: Some("SOC Tier 1".into()),
        owner_type: Some(OwnerType::Group),
        ..Owner::default()
    };
    assert_eq!(
        owner(None, Some(&group), None),
        group,
        "kept, with its type"
    );
    let replaced = owner(Some("alice.smith@contoso.com"), Some(&group), None);
    assert_eq!(
        replaced.user_principal_name.as_deref(),
        Some("alice.smith@contoso.com"),
        "a Defender owner replaces it"
    );
    assert_eq!(replaced.owner_type, Some(OwnerType::User));
    let user = Owner {
        object_id: Some(uuid::Uuid::from_u128(6)),
        user_principal_name: Some("bob@contoso.com".into()),
        owner_type: Some(OwnerType::User),
        ..Owner::default()
    };
    assert_eq!(
        owner(None, Some(&user), None),
        Owner::default(),
        "a user owner is still unassigned"
    );
}

#[test]
fn a_window_is_short_when_fewer_items_came_than_counted_or_an_uncounted_one_is_full() {
    use super::{WindowRead::*, judge_window};
    assert_eq!(judge_window(Some(300), 300), Complete);
    assert_eq!(
        judge_window(Some(300), 320),
        Complete,
        "incidents that moved into the window since it was counted"
    );
    assert_eq!(
        judge_window(Some(300), 120),
        Short,
        "Graph stopped silently"
    );
    assert_eq!(judge_window(Some(0), 0), Complete);
    assert_eq!(judge_window(None, 499), Complete, "nothing says it was cut");
    assert_eq!(
        judge_window(None, MAX_WINDOW_INCIDENTS),
        Short,
        "paging stopped where a window may end: read it in halves"
    );
}

#[test]
fn a_portal_link_is_parsed_back_to_its_tenant_and_incident() {
    let t = tenant();
    let id = DefenderIncidentId::parse("42").unwrap();
    let text = format!(
        "Some text.\n\nDefender incident: {}\nmore",
        portal_link(&t, &id)
    );
    assert_eq!(parse_portal_link(&text), Some((t.clone(), id)));
    assert_eq!(parse_portal_link("no link here"), None);
    assert_eq!(
        parse_portal_link("https://security.microsoft.com/incidents/42?tid=not-a-tenant"),
        None
    );
}
