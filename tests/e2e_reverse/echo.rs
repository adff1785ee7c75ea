//! No echo (issue 12): after reverse sync posts an analyst comment to Defender (which moves
//! Defender's `lastUpdateDateTime`), the next cycle's forward pull writes nothing back to
//! Sentinel. Many incidents, so an effect on a fraction of them cannot pass by luck.

use super::*;

/// Writes of the last cycle per API and operation (for the failure message).
fn write_ops(world: &World) -> Vec<String> {
    let c = world.sims.counters();
    c.by_api
        .iter()
        .flat_map(|(api, ops)| {
            ops.iter()
                .filter(|(op, _)| !op.starts_with("GET"))
                .map(move |(op, k)| format!("{api} {op}: {}", k.calls))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cycle_after_many_sentinel_comments_writes_nothing_on_either_side() {
    const N: usize = 60;
    // Incidents as generated (owners, statuses, classifications, alerts vary), as in the bench.
    let world = World::start().await;
    let ids = world.sims.seed_capped(T, N, 91, 3);
    world.sync_ok().await;
    for (i, id) in ids.iter().enumerate() {
        let message = format!("Sentinel analyst note {i}.");
        sentinel_act(&world, T, id, SentinelAction::Comment { message });
    }
    let reply = world.sync_ok().await.return_value;
    let p = poll(&reply);
    assert_eq!((n(p, "comments"), n(p, "failed")), (N as u64, 0), "{p}");
    for id in &ids {
        assert_eq!(defender_comments(&world, T, id).len(), 1, "{id}");
    }
    let before: Vec<Value> = ids.iter().map(|id| sentinel_of(&world, T, id)).collect();
    // Among them, incidents whose Defender owner Sentinel's directory does not know (their
    // description names the owner): the ones that used to be re-PUT.
    let noted = before
        .iter()
        .filter(|s| {
            s["properties"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("Defender owner:"))
        })
        .count();
    assert!(noted >= 3, "the seed holds unknown owners: {noted}");
    world.sims.reset_counters();
    let reply = world.sync_ok().await.return_value;
    let moved: Vec<Value> = ids
        .iter()
        .zip(&before)
        .map(|(id, b)| (sentinel_of(&world, T, id), b))
        .filter(|(s, b)| s["etag"] != b["etag"])
        .map(|(s, _)| s["properties"].clone())
        .collect();
    let ops = write_ops(&world);
    assert!(
        ops.is_empty() && moved.is_empty(),
        "the cycle after the comments writes nothing: {ops:?}\n{reply}\nrewritten: {moved:#?}"
    );
    assert_idle(&world).await;
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            comments(&world, &name_of(T, id)).len(),
            1,
            "incident {i}: the analyst's comment only, nothing mirrored back"
        );
    }
}
