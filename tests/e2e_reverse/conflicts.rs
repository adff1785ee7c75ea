//! Both sides change the same field between two cycles: each conflict policy decides, the
//! loser is told in a comment on its own side, and the next cycle is idle.

use super::*;

/// Tags changed on both sides (`sentinel_last`: the Sentinel change is the later one); returns
/// the world after the cycle that meets the conflict, the incident, and that cycle's reply.
async fn tag_conflict(policy: &str, sentinel_last: bool) -> (World, String, Value) {
    let (world, ids) = synced(1, 71, &[("SYNC_CONFLICT_POLICY", policy)]).await;
    let id = ids[0].clone();
    let sentinel = |w: &World| {
        let labels = vec!["Defender".to_owned(), "from-sentinel".to_owned()];
        sentinel_act(w, T, &id, SentinelAction::SetLabels { labels });
    };
    let defender = |w: &World| {
        let custom_tags = vec!["from-defender".to_owned()];
        act(w, T, &id, DefenderAction::Tag { custom_tags });
    };
    if sentinel_last {
        defender(&world);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        sentinel(&world);
    } else {
        sentinel(&world);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        defender(&world);
    }
    let reply = world.sync_ok().await.return_value;
    (world, id, reply)
}

fn tags(world: &World, id: &str) -> Value {
    defender_of(world, T, id)["customTags"].clone()
}

fn sentinel_conflict_notes(world: &World, id: &str) -> Vec<String> {
    comments(world, &name_of(T, id))
        .into_iter()
        .filter(|m| m.contains("conflict"))
        .collect()
}

fn defender_conflict_notes(world: &World, id: &str) -> Vec<String> {
    defender_comments(world, T, id)
        .into_iter()
        .filter(|c| c.starts_with("[Sentinel]") && c.contains("conflict"))
        .collect()
}

#[tokio::test]
async fn sentinel_wins_writes_sentinel_tags_to_defender_and_the_override_is_noted_once() {
    let (world, id, reply) = tag_conflict("sentinel-wins", false).await;
    // Forward sync meets the conflict first (it runs before the poll): it keeps Sentinel's
    // labels and records the overridden Defender change in a Sentinel comment; the poll then
    // takes Sentinel's tags to Defender.
    let p = poll(&reply);
    assert_eq!(n(p, "defenderWrites"), 1, "{p}");
    assert_eq!(tags(&world, &id), serde_json::json!(["from-sentinel"]));
    let notes = sentinel_conflict_notes(&world, &id);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("from-defender") && notes[0].contains("sentinel-wins"),
        "{notes:?}"
    );
    assert_eq!(
        labels(&sentinel_of(&world, T, &id)),
        vec!["Defender".to_owned(), "from-sentinel".to_owned()]
    );
    assert_idle(&world).await;
    assert_eq!(sentinel_conflict_notes(&world, &id).len(), 1, "noted once");
    assert!(defender_conflict_notes(&world, &id).len() <= 1);
}

#[tokio::test]
async fn defender_wins_leaves_defender_alone_and_overwrites_sentinel() {
    let (world, id, reply) = tag_conflict("defender-wins", true).await;
    assert_eq!(n(poll(&reply), "defenderWrites"), 0, "{reply}");
    assert_eq!(tags(&world, &id), serde_json::json!(["from-defender"]));
    assert!(defender_conflict_notes(&world, &id).is_empty());
    assert_eq!(
        labels(&sentinel_of(&world, T, &id)),
        vec!["Defender".to_owned(), "from-defender".to_owned()]
    );
    assert_idle(&world).await;
}

#[tokio::test]
async fn latest_wins_takes_the_later_sentinel_change_to_defender() {
    let (world, id, reply) = tag_conflict("latest-wins", true).await;
    assert_eq!(n(poll(&reply), "defenderWrites"), 1, "{reply}");
    assert_eq!(tags(&world, &id), serde_json::json!(["from-sentinel"]));
    assert_eq!(
        labels(&sentinel_of(&world, T, &id)),
        vec!["Defender".to_owned(), "from-sentinel".to_owned()]
    );
    assert_idle(&world).await;
}
