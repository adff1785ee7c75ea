//! The three-way merge through the real system: analyst changes in Sentinel survive Defender
//! changes of other fields; true conflicts follow SYNC_CONFLICT_POLICY.

use super::common::*;
use crate::support::world::{World, WorldOptions};
use dss_simulators::{DefenderAction, SentinelAction, wellknown};

const T: &str = wellknown::TENANT_ID;

/// A world with `n` active incidents of tenant 1, synced once.
async fn synced_world(policy: &str, n: usize) -> (World, Vec<String>) {
    let env = vec![
        ("SYNC_CONFLICT_POLICY".to_owned(), policy.to_owned()),
        ("DEFENDER_TENANT_IDS".to_owned(), T.to_owned()),
    ];
    let world = World::start_with(WorldOptions {
        env,
        ..Default::default()
    })
    .await;
    let ids = world.sims.seed_capped(T, n, 41, 2);
    for id in &ids {
        act(
            &world,
            T,
            id,
            DefenderAction::SetStatus {
                status: "active".into(),
            },
        );
        act(
            &world,
            T,
            id,
            DefenderAction::SetSeverity {
                severity: "low".into(),
            },
        );
    }
    world.sync_ok().await;
    (world, ids)
}

fn sentinel_act(world: &World, id: &str, action: SentinelAction) {
    world
        .sims
        .sentinel_action(&name_of(T, id), action)
        .unwrap_or_else(|e| panic!("Sentinel action on {id}: {e}"));
}

#[tokio::test]
async fn sentinel_analyst_changes_survive_defender_changes_of_other_fields() {
    let (world, ids) = synced_world("latest-wins", 3).await;
    sentinel_act(
        &world,
        &ids[0],
        SentinelAction::SetOwner {
            owner: Some(wellknown::ANALYST_UPN.into()),
        },
    );
    sentinel_act(
        &world,
        &ids[1],
        SentinelAction::SetLabels {
            labels: vec!["Defender".into(), "triage".into()],
        },
    );
    let active = SentinelAction::SetStatus {
        status: "Active".into(),
        classification: None,
        classification_reason: None,
        classification_comment: None,
    };
    sentinel_act(&world, &ids[2], active);
    for id in &ids {
        act(
            &world,
            T,
            id,
            DefenderAction::SetSeverity {
                severity: "high".into(),
            },
        );
    }
    world.sync_ok().await;
    for id in &ids {
        assert_eq!(
            sentinel_of(&world, T, id)["properties"]["severity"],
            "High",
            "Defender's change of {id} arrived"
        );
    }
    let owner = &sentinel_of(&world, T, &ids[0])["properties"]["owner"];
    assert_eq!(
        owner["objectId"],
        wellknown::ANALYST_OBJECT_ID,
        "the analyst's owner survived: {owner}"
    );
    assert_eq!(
        labels(&sentinel_of(&world, T, &ids[1])),
        vec!["Defender".to_owned(), "triage".to_owned()]
    );
    assert_eq!(
        sentinel_of(&world, T, &ids[2])["properties"]["status"],
        "Active",
        "the analyst's status survived"
    );
    // Nothing flips back on the next cycle.
    world.sims.reset_counters();
    world.sync_ok().await;
    assert_eq!(
        world.arm_writes(),
        0,
        "{:?}",
        world.sims.counters().by_api.get("arm")
    );
    assert_eq!(
        sentinel_of(&world, T, &ids[2])["properties"]["status"],
        "Active"
    );
}

/// Both sides change the tags: Defender customTags vs Sentinel labels.
async fn tag_conflict(policy: &str) -> (World, String) {
    let (world, ids) = synced_world(policy, 1).await;
    let id = ids[0].clone();
    sentinel_act(
        &world,
        &id,
        SentinelAction::SetLabels {
            labels: vec!["Defender".into(), "from-sentinel".into()],
        },
    );
    // Defender changes after Sentinel: latest-wins would pick Defender; the policies must not care.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    act(
        &world,
        T,
        &id,
        DefenderAction::Tag {
            custom_tags: vec!["from-defender".into()],
        },
    );
    world.sync_ok().await;
    (world, id)
}

fn conflict_notes(world: &World, id: &str) -> Vec<String> {
    comments(world, &name_of(T, id))
        .into_iter()
        .filter(|m| m.contains("conflict"))
        .collect()
}

#[tokio::test]
async fn a_true_conflict_follows_defender_wins() {
    let (world, id) = tag_conflict("defender-wins").await;
    assert_eq!(
        labels(&sentinel_of(&world, T, &id)),
        vec!["Defender".to_owned(), "from-defender".to_owned()],
        "Sentinel (the loser) is overwritten"
    );
    let notes = conflict_notes(&world, &id);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("from-sentinel")
            && notes[0].contains("from-defender")
            && notes[0].contains("defender-wins"),
        "{notes:?}"
    );
    world.sync_ok().await;
    assert_eq!(
        conflict_notes(&world, &id).len(),
        1,
        "the note is written once"
    );
}

#[tokio::test]
async fn a_true_conflict_follows_sentinel_wins() {
    let (world, id) = tag_conflict("sentinel-wins").await;
    assert_eq!(
        labels(&sentinel_of(&world, T, &id)),
        vec!["Defender".to_owned(), "from-sentinel".to_owned()],
        "the analyst's Sentinel labels are kept"
    );
    let notes = conflict_notes(&world, &id);
    assert_eq!(
        notes.len(),
        1,
        "the overridden Defender change is recorded: {notes:?}"
    );
    assert!(
        notes[0].contains("from-sentinel")
            && notes[0].contains("from-defender")
            && notes[0].contains("sentinel-wins"),
        "{notes:?}"
    );
    world.sims.reset_counters();
    world.sync_ok().await;
    assert_eq!(
        world.arm_writes(),
        0,
        "no ping-pong: {:?}",
        world.sims.counters().by_api.get("arm")
    );
    assert_eq!(
        labels(&sentinel_of(&world, T, &id)),
        vec!["Defender".to_owned(), "from-sentinel".to_owned()]
    );
    assert_eq!(
        conflict_notes(&world, &id).len(),
        1,
        "the note is written once"
    );
}
