//! Applying: the analyst's change reaches Defender once; replays, out-of-order calls and the
//! echo of our own writes write nothing; concurrent calls and a racing DefenderSync serialise;
//! throttling answers 429 with the upstream's Retry-After and applies nothing.

use super::*;
use dss_simulators::{Api, DefenderAction, Fault, FaultPlan, FaultScope};

#[tokio::test]
async fn an_analyst_close_reaches_defender_once_and_a_replay_writes_nothing() {
    let world = World::start().await;
    let (id, name) = one_synced(&world, 94).await;
    let body = analyst_closes(&world, &name).to_string();
    world.sims.reset_counters();

    let res = post(&world, &body, &[]).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let j = json(&res);
    assert_eq!(j["result"], "applied");
    assert_eq!(j["patched"], true);
    let d = world
        .sims
        .defender_incident(wellknown::TENANT_ID, &id)
        .unwrap();
    assert_eq!(d["status"], "resolved");
    assert_eq!(d["classification"], "truePositive");
    assert_eq!(defender_writes(&world), 1, "one PATCH");

    world.sims.reset_counters();
    for _ in 0..3 {
        let res = post(&world, &body, &[]).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(json(&res)["result"], "unchanged");
    }
    assert_eq!(defender_writes(&world), 0, "a replay writes nothing");
    // The next timer cycle sees Defender's change as ours: nothing goes back to Sentinel.
    world.sync_ok().await;
    assert_eq!(sentinel_writes(&world), 0, "{:?}", world.sims.counters());
    assert_eq!(defender_writes(&world), 0);
}

#[tokio::test]
async fn an_older_webhook_arriving_late_writes_nothing() {
    let world = World::start().await;
    let (id, name) = one_synced(&world, 95).await;
    let older = world
        .sims
        .sentinel_action(
            &name,
            SentinelAction::SetOwner {
                owner: Some(wellknown::ANALYST_UPN.into()),
            },
        )
        .unwrap()
        .to_string();
    // Sentinel's lastModifiedTimeUtc has whole-millisecond resolution at best: make it move.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let newer = analyst_closes(&world, &name).to_string();
    world.sims.reset_counters();

    let res = post(&world, &newer, &[]).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(json(&res)["result"], "applied");
    let writes = defender_writes(&world);
    assert!(writes >= 1, "the newer call applies both changes");
    let res = post(&world, &older, &[]).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let j = json(&res);
    assert_eq!(j["result"], "unchanged", "{j}");
    assert_eq!(j["stale_body"], true, "{j}");
    assert_eq!(
        defender_writes(&world),
        writes,
        "the late call wrote nothing"
    );
    let d = world
        .sims
        .defender_incident(wellknown::TENANT_ID, &id)
        .unwrap();
    assert_eq!(d["status"], "resolved", "the newer state stays");
    assert_eq!(d["assignedTo"], wellknown::ANALYST_UPN);
}

#[tokio::test]
async fn the_echo_of_our_own_forward_writes_writes_nothing_to_defender() {
    let world = World::start().await;
    let t = wellknown::TENANT_ID;
    world.sims.record_automation_triggers(true);
    let (id, name) = one_synced(&world, 96).await;
    world
        .sims
        .defender_action(
            t,
            &id,
            DefenderAction::Tag {
                custom_tags: vec!["from-defender".into()],
            },
        )
        .unwrap();
    world.sync_ok().await;
    let echoes = world.sims.drain_automation_triggers();
    assert!(
        echoes.len() >= 2,
        "the automation rule fired on our create and our update: {}",
        echoes.len()
    );
    world.sims.reset_counters();
    for body in &echoes {
        assert_eq!(body["object"]["name"], name.as_str());
        let res = post(&world, &body.to_string(), &[]).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(json(&res)["result"], "unchanged", "{}", res.body);
    }
    assert_eq!(
        defender_writes(&world),
        0,
        "an echo writes nothing to Defender"
    );
    assert_eq!(sentinel_writes(&world), 0);
}

#[tokio::test]
async fn two_concurrent_webhooks_for_one_incident_write_once() {
    let world = World::start().await;
    let (id, name) = one_synced(&world, 97).await;
    world
        .sims
        .sentinel_action(
            &name,
            SentinelAction::Comment {
                message: "isolated the host".into(),
            },
        )
        .unwrap();
    let body = analyst_closes(&world, &name).to_string();
    world.sims.reset_counters();

    let (a, b) = tokio::join!(post(&world, &body, &[]), post(&world, &body, &[]));
    assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.body, b.body);
    let mut results = [json(&a)["result"].clone(), json(&b)["result"].clone()];
    results.sort_by_key(|v| v.to_string());
    assert_eq!(results, ["applied", "unchanged"].map(Value::from));
    let d = world
        .sims
        .defender_incident(wellknown::TENANT_ID, &id)
        .unwrap();
    assert_eq!(d["status"], "resolved");
    let mirrored = d["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["comment"]
                .as_str()
                .unwrap_or("")
                .contains("isolated the host")
        })
        .count();
    assert_eq!(
        mirrored, 1,
        "the analyst comment is posted once: {}",
        d["comments"]
    );
    assert_eq!(
        defender_writes(&world),
        2,
        "one PATCH and one comment, no duplicate"
    );
}

#[tokio::test]
async fn a_webhook_racing_defender_sync_loses_nothing_and_duplicates_nothing() {
    let world = World::start().await;
    let t = wellknown::TENANT_ID;
    let (id, name) = one_synced(&world, 98).await;
    // Defender changes the tags (the timer brings them to Sentinel), Sentinel closes (the
    // webhook brings it to Defender): both at once on one incident.
    world
        .sims
        .defender_action(
            t,
            &id,
            DefenderAction::Tag {
                custom_tags: vec!["race-tag".into()],
            },
        )
        .unwrap();
    let body = analyst_closes(&world, &name).to_string();
    world.sims.reset_counters();

    let (sync, res) = tokio::join!(world.sync(), post(&world, &body, &[]));
    assert_eq!(sync.return_value["completed"], true, "{:?}", sync.logs);
    assert!(
        [200, 503].contains(&res.status),
        "applied, or told to retry after a lost race: {}",
        res.body
    );
    if res.status == 503 {
        assert!(res.headers.contains_key("Retry-After"));
        let again = post(&world, &body, &[]).await;
        assert_eq!(again.status, 200, "{}", again.body);
    }
    // Settle: one more cycle and one more delivery change nothing more.
    world.sync_ok().await;
    let res = post(&world, &body, &[]).await;
    assert_eq!(json(&res)["result"], "unchanged", "{}", res.body);

    let d = world.sims.defender_incident(t, &id).unwrap();
    assert_eq!(d["status"], "resolved", "the analyst's close is not lost");
    let s = world.sims.sentinel_incident(&name).unwrap();
    assert_eq!(
        s["properties"]["status"], "Closed",
        "the close stays in Sentinel"
    );
    let labels: Vec<&str> = s["properties"]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["labelName"].as_str())
        .collect();
    assert!(
        labels.contains(&"race-tag"),
        "Defender's tag is not lost: {labels:?}"
    );
    let patches: u64 = world
        .sims
        .counters()
        .by_api
        .get("graph")
        .map(|ops| {
            ops.iter()
                .filter(|(op, _)| op.starts_with("PATCH"))
                .map(|(_, n)| n.ok)
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(
        patches,
        1,
        "Defender is PATCHed once: {:?}",
        world.sims.counters()
    );
}

#[tokio::test]
async fn a_throttled_upstream_answers_429_with_its_retry_after_and_applies_nothing() {
    let world = World::start().await;
    let (id, name) = one_synced(&world, 99).await;
    let body = analyst_closes(&world, &name).to_string();
    world.sims.reset_counters();

    // Graph throttles with a wait longer than the handler waits in-process.
    world.sims.set_faults(
        Api::Graph,
        FaultPlan::rate(Fault::TooManyRequests { retry_after: 120.0 }, 1.0),
    );
    let res = post(&world, &body, &[]).await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert_eq!(
        res.headers.get("Retry-After").map(String::as_str),
        Some("120")
    );
    assert_eq!(defender_status(&world, &id), "active", "nothing applied");

    // ARM throttles the read of the incident.
    world
        .sims
        .set_faults(Api::Graph, FaultPlan::rate(Fault::Pass, 1.0));
    world.sims.set_faults(
        Api::Arm,
        FaultPlan::rate(Fault::TooManyRequests { retry_after: 90.0 }, 1.0)
            .scoped(FaultScope::Reads),
    );
    let res = post(&world, &body, &[]).await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert_eq!(
        res.headers.get("Retry-After").map(String::as_str),
        Some("90")
    );
    assert_eq!(defender_writes(&world), 0, "nothing half-applied");

    // Graph down (5xx after the in-process retries): 503 with a Retry-After.
    world
        .sims
        .set_faults(Api::Arm, FaultPlan::rate(Fault::Pass, 1.0));
    world.sims.set_faults(
        Api::Graph,
        FaultPlan::rate(Fault::ServiceUnavailable, 1.0).scoped(FaultScope::Writes),
    );
    let res = post(&world, &body, &[]).await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.headers.contains_key("Retry-After"));
    assert_eq!(defender_status(&world, &id), "active");

    // The playbook's retry, once the upstream recovers, applies it.
    world
        .sims
        .set_faults(Api::Graph, FaultPlan::rate(Fault::Pass, 1.0));
    let res = post(&world, &body, &[]).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(json(&res)["result"], "applied");
    assert_eq!(defender_status(&world, &id), "resolved");
}
