//! The unified Defender portal target end to end (issue 14): the built handler under the fake
//! Functions host with `SENTINEL_TARGET=unified`, against the simulators in unified-platform
//! mode (ingested alert rows → the analytics rule → incidents in the WORKSPACE tenant's Graph),
//! with its state in Azurite. Two customer tenants are the sources; the workspace is a third.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

#[path = "e2e_forward/common.rs"]
#[allow(dead_code, unused_imports)]
mod common;

use common::*;
use dss_simulators::{DefenderAction, UnifiedConfig, wellknown};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::world::{World, WorldOptions};

const T1: &str = wellknown::TENANT_ID;
const T2: &str = wellknown::TENANT_ID_2;
/// The workspace's tenant: where the platform creates its incidents.
const WS: &str = "5a7d0c3e-9a1b-4c2d-8e3f-0123456789ab";

async fn unified_world() -> World {
    unified_world_with_delay(0).await
}

async fn unified_world_with_delay(delay_ms: u64) -> World {
    unified_world_with(UnifiedConfig {
        delay_ms,
        ..UnifiedConfig::default()
    })
    .await
}

async fn unified_world_with(platform: UnifiedConfig) -> World {
    let world = World::start_with(WorldOptions {
        env: vec![
            ("SENTINEL_TARGET".into(), "unified".into()),
            ("SYNC_RETRY_BACKOFF_SECONDS".into(), "0".into()),
        ],
        workspace_tenant: Some(WS.into()),
        ..WorldOptions::default()
    })
    .await;
    world.sims.set_unified(Some(platform));
    world
}

/// Incidents seeded in `tenant`, made active, unassigned and untagged.
fn seed(world: &World, tenant: &str, n: usize, seed: u64) -> Vec<String> {
    let ids = world.sims.seed_capped(tenant, n, seed, 2);
    for id in &ids {
        let status = "active".to_owned();
        act(world, tenant, id, DefenderAction::SetStatus { status });
        act(
            world,
            tenant,
            id,
            DefenderAction::Assign { assigned_to: None },
        );
        let custom_tags = Vec::new();
        act(world, tenant, id, DefenderAction::Tag { custom_tags });
    }
    ids
}

/// The source (tenant, incident id) of every alert of a platform incident.
fn sources(p: &Value) -> BTreeSet<(String, String)> {
    p["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let d = &a["additionalData"];
            (
                d["SourceTenantId"][0].as_str().unwrap().to_owned(),
                d["SourceIncidentId"][0].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The workspace tenant's incidents that are not redirected.
fn open_platform(world: &World) -> Vec<Value> {
    world
        .sims
        .defender_incidents(WS)
        .into_iter()
        .filter(|p| p["status"] != "redirected")
        .collect()
}

/// The platform incident holding source incident `tenant`/`id`'s alerts.
fn platform_of(world: &World, tenant: &str, id: &str) -> Value {
    let key = (tenant.to_owned(), id.to_owned());
    open_platform(world)
        .into_iter()
        .find(|p| sources(p).contains(&key))
        .unwrap_or_else(|| panic!("no platform incident for {tenant}/{id}"))
}

fn pid(p: &Value) -> String {
    p["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_customer_incident_becomes_its_own_platform_incident_and_changes_flow_both_ways() {
    let world = unified_world().await;
    let a = seed(&world, T1, 1, 141);
    let b = seed(&world, T2, 1, 142);

    // First cycle: the alerts are shipped; the platform makes the incidents from them.
    world.sync_ok().await;
    // The sync never creates a Sentinel incident in this mode.
    assert!(world.sims.sentinel_incidents().is_empty());
    assert_eq!(world.arm_writes(), 0);
    // The next cycle finds them by the custom details and keeps them in sync.
    let reply = world.sync_ok().await.return_value;
    let incs = open_platform(&world);
    assert_eq!(incs.len(), 2, "{incs:#?}\n{reply}");
    let mut all: Vec<BTreeSet<(String, String)>> = incs.iter().map(sources).collect();
    all.sort();
    let mut want = vec![
        BTreeSet::from([(T1.to_owned(), a[0].clone())]),
        BTreeSet::from([(T2.to_owned(), b[0].clone())]),
    ];
    want.sort();
    assert_eq!(
        all, want,
        "one platform incident per source incident, never across tenants"
    );
    // The customers' own tenants got no incident from the platform.
    assert!(
        world
            .sims
            .defender_incidents(T1)
            .iter()
            .all(|i| i["id"] == a[0].as_str())
    );

    // Defender → platform: an analyst in customer 1 assigns and tags.
    let owner = Some(wellknown::ANALYST_UPN.to_owned());
    act(
        &world,
        T1,
        &a[0],
        DefenderAction::Assign { assigned_to: owner },
    );
    let custom_tags = vec!["wave-1".to_owned()];
    act(&world, T1, &a[0], DefenderAction::Tag { custom_tags });
    let reply = world.sync_ok().await.return_value;
    let p1 = platform_of(&world, T1, &a[0]);
    assert_eq!(p1["assignedTo"], wellknown::ANALYST_UPN, "{p1}\n{reply}");
    assert_eq!(p1["customTags"], json!(["wave-1"]), "{p1}");
    let p2 = platform_of(&world, T2, &b[0]);
    assert_eq!(
        p2["assignedTo"],
        Value::Null,
        "customer 2's incident untouched: {p2}"
    );

    // Platform → Defender: an analyst in the unified portal closes customer 2's incident.
    let close = DefenderAction::Resolve {
        classification: Some("truePositive".into()),
        determination: Some("malware".into()),
        resolving_comment: Some("Contained from the unified portal.".into()),
    };
    world.sims.defender_action(WS, &pid(&p2), close).unwrap();
    let reply = world.sync_ok().await.return_value;
    let d2 = defender_of(&world, T2, &b[0]);
    assert_eq!(d2["status"], "resolved", "{d2}\n{reply}");
    assert_eq!(d2["classification"], "truePositive", "{d2}");
    let d1 = defender_of(&world, T1, &a[0]);
    assert_eq!(d1["status"], "active", "customer 1 untouched: {d1}");

    // A comment in the unified portal reaches the customer's Defender incident.
    let comment = "Checked the mailbox rules.".to_owned();
    world
        .sims
        .defender_action(WS, &pid(&p1), DefenderAction::Comment { comment })
        .unwrap();
    let reply = world.sync_ok().await.return_value;
    let texts: Vec<String> = defender_of(&world, T1, &a[0])["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["comment"].as_str().map(str::to_owned))
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Checked the mailbox rules.")),
        "{texts:?}\n{reply}"
    );
    // Still exactly two platform incidents: nothing was created twice.
    assert_eq!(open_platform(&world).len(), 2);
    // No echo: the next cycle writes nothing anywhere (Graph of any tenant, ARM).
    world.sims.reset_counters();
    let reply = world.sync_ok().await.return_value;
    assert_eq!(
        graph_writes(&world),
        0,
        "no write without a change: {reply}"
    );
    assert_eq!(world.arm_writes(), 0);
}

/// Graph calls other than reads since the last counter reset (any tenant).
fn graph_writes(world: &World) -> u64 {
    world
        .sims
        .counters()
        .by_api
        .get("graph")
        .into_iter()
        .flatten()
        .filter(|(op, _)| !op.starts_with("GET"))
        .map(|(_, c)| c.calls)
        .sum()
}

#[tokio::test]
async fn a_platform_merge_moves_the_pair_to_the_survivor_and_customers_never_merge() {
    let world = unified_world().await;
    let a = seed(&world, T1, 2, 151);
    let b = seed(&world, T2, 1, 152);
    world.sync_ok().await;
    world.sync_ok().await;
    assert_eq!(open_platform(&world).len(), 3);
    let (p0, p1) = (
        pid(&platform_of(&world, T1, &a[0])),
        pid(&platform_of(&world, T1, &a[1])),
    );

    // The platform (or an analyst there) merges customer 1's second incident into its first.
    world
        .sims
        .defender_action(WS, &p1, DefenderAction::Merge { into: p0.clone() })
        .unwrap();
    let reply = world.sync_ok().await;
    assert_eq!(reply.return_value["completed"], true);
    let loser = world.sims.defender_incident(WS, &p1).unwrap();
    assert_eq!(loser["status"], "redirected");
    assert_eq!(loser["redirectIncidentId"], p0.as_str());

    // The pair moved: a comment on the merged source incident lands on the survivor.
    let comment = "Note on the second incident.".to_owned();
    act(&world, T1, &a[1], DefenderAction::Comment { comment });
    let reply = world.sync_ok().await.return_value;
    let survivor = world.sims.defender_incident(WS, &p0).unwrap();
    let texts: Vec<&str> = survivor["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["comment"].as_str())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Note on the second incident.")),
        "{texts:?}\n{reply}"
    );
    // The survivor follows the incident it was made for: a change of the merged one does not
    // overwrite it.
    let custom_tags = vec!["merged-only".to_owned()];
    act(&world, T1, &a[1], DefenderAction::Tag { custom_tags });
    let custom_tags = vec!["primary".to_owned()];
    act(&world, T1, &a[0], DefenderAction::Tag { custom_tags });
    world.sync_ok().await;
    let survivor = world.sims.defender_incident(WS, &p0).unwrap();
    assert_eq!(survivor["customTags"], json!(["primary"]), "{survivor}");
    assert_eq!(
        defender_of(&world, T1, &a[1])["customTags"],
        json!(["merged-only"]),
        "the merged source keeps its own tags"
    );

    // No platform incident ever holds two customers' alerts.
    for p in world.sims.defender_incidents(WS) {
        let tenants: BTreeSet<String> = sources(&p).into_iter().map(|(t, _)| t).collect();
        assert!(tenants.len() <= 1, "{p}");
    }
    let p2 = platform_of(&world, T2, &b[0]);
    assert_eq!(sources(&p2).len(), 1);
}

/// The platform's batching (documented 5–10 minutes, scaled down here): the sync ships the
/// alerts, finds nothing while the platform has not made the incident, keeps the source incident
/// in its retry set, and updates the incident in the first cycle after it appears, with what
/// changed in Defender meanwhile. Prints the measured latency.
#[tokio::test]
async fn the_sync_waits_for_the_platform_and_then_catches_up() {
    let delay = std::time::Duration::from_millis(1200);
    let world = unified_world_with_delay(delay.as_millis() as u64).await;
    let a = seed(&world, T1, 1, 161);
    let shipped = std::time::Instant::now();
    world.sync_ok().await;
    assert!(open_platform(&world).is_empty(), "nothing before the delay");
    assert!(world.sims.unified_pending() > 0);
    // A Defender change while the platform is still working.
    let owner = Some(wellknown::ANALYST_UPN.to_owned());
    act(
        &world,
        T1,
        &a[0],
        DefenderAction::Assign { assigned_to: owner },
    );
    let reply = world.sync_ok().await.return_value;
    assert!(open_platform(&world).is_empty(), "still nothing: {reply}");
    assert_eq!(world.arm_writes(), 0);

    let mut cycles = 2;
    let found = loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        world.sync_ok().await;
        cycles += 1;
        let p = open_platform(&world);
        if let Some(p) = p
            .first()
            .filter(|p| p["assignedTo"] == wellknown::ANALYST_UPN)
        {
            break p.clone();
        }
        assert!(cycles < 12, "the platform incident never caught up: {p:#?}");
    };
    let took = shipped.elapsed();
    println!(
        "unified latency: platform delay {} ms, alerts shipped → incident in sync {} ms, {cycles} cycles",
        delay.as_millis(),
        took.as_millis()
    );
    assert!(took >= delay, "not before the platform made it");
    assert_eq!(
        sources(&found),
        BTreeSet::from([(T1.to_owned(), a[0].clone())])
    );
    assert_eq!(open_platform(&world).len(), 1, "made once, found once");
}

/// A split: an alert of the source incident arriving after the rule's grouping lookback makes a
/// second platform incident. The sync keeps the first as the pair, closes the extra one with a
/// comment pointing to it, and never applies that close to the customer's incident.
#[tokio::test]
async fn a_platform_split_is_closed_with_a_pointer_and_the_source_stays_open() {
    let world = unified_world_with(UnifiedConfig {
        delay_ms: 0,
        lookback_secs: 1,
        ..UnifiedConfig::default()
    })
    .await;
    let a = seed(&world, T1, 1, 171);
    world.sync_ok().await;
    world.sync_ok().await;
    let first = pid(&platform_of(&world, T1, &a[0]));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    act(&world, T1, &a[0], DefenderAction::AddAlert { alert: None });
    world.sync_ok().await; // ships the new alert: the platform makes a second incident
    world.sync_ok().await; // the poll finds it
    let reply = world.sync_ok().await.return_value;
    let all = world.sims.defender_incidents(WS);
    assert_eq!(all.len(), 2, "{all:#?}");
    let extra = all.iter().find(|p| pid(p) != first).unwrap();
    assert_eq!(extra["status"], "resolved", "{extra}\n{reply}");
    let notes: Vec<&str> = extra["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["comment"].as_str())
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains(&first), "{notes:?}");
    let kept = world.sims.defender_incident(WS, &first).unwrap();
    assert_eq!(kept["status"], "active", "{kept}");
    let d = defender_of(&world, T1, &a[0]);
    assert_eq!(
        d["status"], "active",
        "the extra's close never reaches the customer: {d}"
    );
    // Our close of the extra fires the automation rule too: its webhook call is refused (the
    // extra is not the source's pair) and the customer's incident stays open.
    let body = world
        .sims
        .unified_trigger_body(&pid(extra), "Update")
        .unwrap();
    let (status, reply) = post_webhook(&world, &body).await;
    assert_eq!(status, 404, "{reply}");
    let d = defender_of(&world, T1, &a[0]);
    assert_eq!(d["status"], "active", "{d}");
}

/// A restart forgets the adapter's in-memory index: the pair comes back from the state (the
/// etag it keeps names the platform incident) and from the alerts, so the restarted handler
/// neither makes a second platform incident nor loses a pair, and a restart does not make it
/// write anything by itself.
#[tokio::test]
async fn a_restart_between_cycles_keeps_every_pair_and_duplicates_nothing() {
    let mut world = unified_world().await;
    let a = seed(&world, T1, 2, 171);
    let b = seed(&world, T2, 1, 172);
    world.sync_ok().await;
    world.sync_ok().await;
    assert_eq!(open_platform(&world).len(), 3);
    let before: BTreeSet<String> = open_platform(&world).iter().map(pid).collect();

    world.host.restart().await.expect("handler restarts");
    world.sims.reset_counters();
    let reply = world.sync_ok().await.return_value;
    assert_eq!(
        graph_writes(&world),
        0,
        "a restart alone writes nothing: {reply}"
    );

    // Both directions still reach the same platform incidents after the restart.
    let custom_tags = vec!["after-restart".to_owned()];
    act(&world, T1, &a[1], DefenderAction::Tag { custom_tags });
    let p2 = platform_of(&world, T2, &b[0]);
    let close = DefenderAction::Resolve {
        classification: Some("falsePositive".into()),
        determination: Some("other".into()),
        resolving_comment: None,
    };
    world.sims.defender_action(WS, &pid(&p2), close).unwrap();
    world.host.restart().await.expect("handler restarts again");
    let reply = world.sync_ok().await.return_value;
    let p1 = platform_of(&world, T1, &a[1]);
    assert_eq!(p1["customTags"], json!(["after-restart"]), "{p1}\n{reply}");
    let d2 = defender_of(&world, T2, &b[0]);
    assert_eq!(d2["status"], "resolved", "{d2}\n{reply}");
    let after: BTreeSet<String> = world
        .sims
        .defender_incidents(WS)
        .iter()
        .filter(|p| p["status"] != "redirected")
        .map(pid)
        .collect();
    assert_eq!(after, before, "no platform incident added or lost: {reply}");
    let d1 = defender_of(&world, T1, &a[0]);
    assert_eq!(d1["status"], "active", "{d1}");
}

/// Posts `body` to SentinelWebhook as the host does (the playbook's call, with the secret).
async fn post_webhook(world: &World, body: &Value) -> (u16, Value) {
    let call = dss_fake_host::HttpCall::new("POST")
        .header("Content-Type", "application/json")
        .header("X-Sync-Secret", support::WEBHOOK_SECRET)
        .body(body.to_string());
    let res = world
        .host
        .invoke_http("SentinelWebhook", &call)
        .await
        .expect("a valid reply");
    (
        res.status,
        serde_json::from_str(&res.body).unwrap_or(Value::Null),
    )
}

/// The webhook with the unified target: an automation rule fires on the platform incident and
/// its playbook posts the Sentinel incident trigger body, which names the platform incident in
/// `providerIncidentId`. The close made there reaches the source Defender tenant in that call,
/// before any timer cycle, and only that customer's incident; a replay writes nothing; a body
/// naming an unknown platform incident, another workspace or no platform incident is refused
/// without a write.
#[tokio::test]
async fn a_platform_close_posted_to_the_webhook_reaches_the_source_tenant_at_once() {
    let world = unified_world().await;
    let a = seed(&world, T1, 1, 181);
    let b = seed(&world, T2, 1, 182);
    world.sync_ok().await;
    world.sync_ok().await;
    let p1 = pid(&platform_of(&world, T1, &a[0]));

    let close = DefenderAction::Resolve {
        classification: Some("truePositive".into()),
        determination: Some("phishing".into()),
        resolving_comment: Some("Closed from the unified portal.".into()),
    };
    world.sims.defender_action(WS, &p1, close).unwrap();
    let comment = "Mail purged from every mailbox.".to_owned();
    world
        .sims
        .defender_action(WS, &p1, DefenderAction::Comment { comment })
        .unwrap();
    let body = world.sims.unified_trigger_body(&p1, "Update").unwrap();
    assert_eq!(
        body["object"]["properties"]["providerName"],
        "Microsoft XDR"
    );
    let (status, reply) = post_webhook(&world, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"], "applied", "{reply}");
    // No timer cycle ran since the close: the webhook call itself wrote it.
    let d1 = defender_of(&world, T1, &a[0]);
    assert_eq!(d1["status"], "resolved", "{d1}");
    assert_eq!(d1["classification"], "truePositive", "{d1}");
    assert!(
        d1["comments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["comment"]
                .as_str()
                .is_some_and(|t| t.contains("Mail purged from every mailbox."))),
        "{d1}"
    );
    let d2 = defender_of(&world, T2, &b[0]);
    assert_eq!(d2["status"], "active", "the other customer untouched: {d2}");

    // A replay finds both sides agreeing: nothing written.
    world.sims.reset_counters();
    let (status, reply) = post_webhook(&world, &body).await;
    assert_eq!(
        (status, &reply["result"]),
        (200, &json!("unchanged")),
        "{reply}"
    );
    assert_eq!(graph_writes(&world), 0, "{reply}");

    // Forged or foreign bodies: refused, nothing written anywhere.
    let mut unknown = body.clone();
    unknown["object"]["properties"]["providerIncidentId"] = json!("987654");
    let (status, reply) = post_webhook(&world, &unknown).await;
    assert_eq!(
        status, 404,
        "an incident the platform does not have: {reply}"
    );
    let mut other = body.clone();
    let id = other["object"]["id"]
        .as_str()
        .unwrap()
        .replace("/workspaces/", "/workspaces/other-");
    other["object"]["id"] = json!(id);
    other["object"]["name"] = Value::Null;
    let (status, reply) = post_webhook(&world, &other).await;
    assert_eq!(status, 403, "another workspace: {reply}");
    let mut bare = body.clone();
    bare["object"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("providerIncidentId");
    let (status, reply) = post_webhook(&world, &bare).await;
    assert_eq!(status, 400, "no platform incident named: {reply}");
    assert_eq!(graph_writes(&world), 0);
    assert_eq!(world.arm_writes(), 0);
    assert_eq!(defender_of(&world, T2, &b[0])["status"], "active");
}

/// Honest latency, in simulated time: the platform batches as documented (5-minute windows
/// applied 5 minutes after they end, so 5–10 minutes after ingestion, intermediate states
/// dropped) on a simulated clock, and `DefenderSync` runs every 5 minutes (the README's
/// schedule). Changes are made 2 minutes after a cycle. Measured and printed: creation (alerts
/// shipped → the sync has the platform incident), Defender → platform, platform → Defender by
/// the timer, and platform → Defender by the webhook. A cycle's own run time is not simulated
/// time (seconds against minutes).
#[tokio::test]
async fn latency_in_simulated_time_is_the_platforms_batching_for_creation_and_one_interval_for_changes()
 {
    const MIN: u64 = 60_000;
    const TICK: u64 = 5 * MIN;
    /// Runs a cycle at each TICK of simulated time (the change was made 2 minutes after the
    /// last one, at `changed`) until `reached`; answers the simulated time from the change.
    async fn cycles_until(
        world: &World,
        changed: u64,
        what: &str,
        reached: impl Fn(&World) -> bool,
    ) -> u64 {
        loop {
            let now = world.sims.unified_advance(TICK - 2 * MIN);
            world.sync_ok().await;
            if reached(world) {
                return now - changed;
            }
            assert!(now - changed <= 3 * TICK, "never: {what}");
            world.sims.unified_advance(2 * MIN);
        }
    }
    let world = unified_world_with(UnifiedConfig {
        delay_ms: 5 * MIN,
        batch_ms: 5 * MIN,
        simulated_clock: true,
        ..UnifiedConfig::default()
    })
    .await;
    let sims = &world.sims;
    let fmt = |ms: u64| format!("{}:{:02} min", ms / MIN, ms % MIN / 1000);
    sims.unified_advance(MIN);
    let a = seed(&world, T1, 1, 191);
    // Creation: the first cycle ships the alerts; cycles every TICK until the sync has the
    // platform incident in sync (it shows the source's owner, set before the first cycle).
    let owner = Some(wellknown::ANALYST_UPN.to_owned());
    act(
        &world,
        T1,
        &a[0],
        DefenderAction::Assign { assigned_to: owner },
    );
    let shipped = sims.unified_now_ms();
    world.sync_ok().await;
    let created = loop {
        let now = sims.unified_advance(TICK);
        world.sync_ok().await;
        let p = open_platform(&world);
        if p.first()
            .is_some_and(|p| p["assignedTo"] == wellknown::ANALYST_UPN)
        {
            break now - shipped;
        }
        assert!(now - shipped <= 6 * TICK, "never created: {p:#?}");
    };
    let p1 = pid(&platform_of(&world, T1, &a[0]));

    // Defender → platform: a tag 2 minutes after a cycle, visible after the next cycle.
    let changed = sims.unified_advance(2 * MIN);
    let custom_tags = vec!["latency".to_owned()];
    act(&world, T1, &a[0], DefenderAction::Tag { custom_tags });
    let to_platform = cycles_until(&world, changed, "the tag reached the platform", |w| {
        platform_of(w, T1, &a[0])["customTags"] == json!(["latency"])
    })
    .await;

    // Platform → Defender by the timer's poll.
    let changed = sims.unified_advance(2 * MIN);
    let comment = "Seen on the platform.".to_owned();
    sims.defender_action(WS, &p1, DefenderAction::Comment { comment })
        .unwrap();
    let has_comment = |text: &str| {
        defender_of(&world, T1, &a[0])["comments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["comment"].as_str().is_some_and(|t| t.contains(text)))
    };
    let to_defender = cycles_until(&world, changed, "the comment reached Defender", |_| {
        has_comment("Seen on the platform.")
    })
    .await;

    // Platform → Defender by the webhook: the automation rule's playbook posts at once.
    let changed = sims.unified_advance(2 * MIN);
    let close = DefenderAction::Resolve {
        classification: Some("falsePositive".into()),
        determination: Some("other".into()),
        resolving_comment: None,
    };
    sims.defender_action(WS, &p1, close).unwrap();
    let body = sims.unified_trigger_body(&p1, "Update").unwrap();
    let (status, reply) = post_webhook(&world, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(defender_of(&world, T1, &a[0])["status"], "resolved");
    let by_webhook = sims.unified_now_ms() - changed;

    println!(
        "unified latency (simulated; platform batches 5-min windows + 5 min, DefenderSync every 5 min): \
         creation {}, Defender → platform {}, platform → Defender {} by the timer, {} by the webhook",
        fmt(created),
        fmt(to_platform),
        fmt(to_defender),
        fmt(by_webhook)
    );
    // Creation waits for the platform (5–10 min) and then for a cycle (up to one interval).
    assert!(
        (5 * MIN..=10 * MIN + TICK).contains(&created),
        "creation {}",
        fmt(created)
    );
    assert!(created >= 5 * MIN, "never before the platform's batch");
    // Later changes: up to one interval either way by the timer, at once by the webhook.
    assert!(to_platform <= TICK, "{}", fmt(to_platform));
    assert!(to_defender <= TICK, "{}", fmt(to_defender));
    assert_eq!(by_webhook, 0);
}

/// The source → platform pair is a field of the state record of its own: written by the sync,
/// read back after a restart (no alert scan needed to find the pair again), and a state written
/// before the field existed (the pair in the old etag form `{id}@{lastUpdateDateTime}`) is read
/// once and upgraded to the field.
#[tokio::test]
async fn the_pair_is_a_state_field_and_an_old_etag_form_state_is_upgraded_once() {
    use defender_sentinel_sync::domain::{DefenderIncidentId, SentinelIncidentName, TenantId};
    use defender_sentinel_sync::state::{Precondition, StateStore};
    let mut world = unified_world().await;
    let a = seed(&world, T1, 1, 201);
    world.sync_ok().await;
    world.sync_ok().await;
    let p1 = pid(&platform_of(&world, T1, &a[0]));
    let name = SentinelIncidentName::for_defender(
        &TenantId::parse(T1).unwrap(),
        &DefenderIncidentId::parse(&a[0]).unwrap(),
    );
    let store = world.state().await;
    let st = store.incident(&name).await.unwrap().unwrap();
    assert_eq!(
        st.value.platform_incident.as_ref().map(|id| id.as_str()),
        Some(p1.as_str()),
        "the pair is in its own field"
    );
    let etag = st.value.sentinel_etag().unwrap().to_owned();
    assert!(!etag.contains('@'), "the etag names no incident: {etag}");

    // Make it a state of the old form: no field, the pair in the etag (snapshot kept valid).
    let mut old = st.value.clone();
    let old_etag = format!("{p1}@{etag}");
    let mut snap = old.snapshot().cloned().expect("a snapshot of the etag");
    snap.etag = old_etag.clone();
    old.record_sentinel(Some(old_etag), Some(snap));
    old.platform_incident = None;
    store
        .put_incident(&old, Precondition::Matches(st.etag.clone()))
        .await
        .unwrap();

    // A restarted handler (empty index) applies a Defender change to the right platform
    // incident from that state, without scanning the alerts to find the pair.
    world.host.restart().await.expect("handler restarts");
    world.sims.reset_counters();
    let custom_tags = vec!["upgraded".to_owned()];
    act(&world, T1, &a[0], DefenderAction::Tag { custom_tags });
    let reply = world.sync_ok().await.return_value;
    let p = world.sims.defender_incident(WS, &p1).unwrap();
    assert_eq!(p["customTags"], json!(["upgraded"]), "{p}\n{reply}");
    let scans: u64 = world
        .sims
        .counters()
        .by_api
        .get("graph")
        .into_iter()
        .flatten()
        .filter(|(op, _)| op.contains("alerts_v2"))
        .map(|(_, c)| c.calls)
        .sum();
    assert_eq!(scans, 0, "the pair came from the state: {reply}");
    let st = store.incident(&name).await.unwrap().unwrap();
    assert_eq!(
        st.value.platform_incident.as_ref().map(|id| id.as_str()),
        Some(p1.as_str()),
        "upgraded to the field"
    );
    assert!(!st.value.sentinel_etag().unwrap().contains('@'));
    assert_eq!(
        open_platform(&world).len(),
        1,
        "no second platform incident"
    );
}

/// After a platform merge, a change to the merged source incident (not the one the survivor was
/// made for) still flows: it reaches the survivor as a note naming the source and what changed,
/// without overwriting the survivor's fields, once, and the note is not mirrored back to either
/// customer's Defender incident.
#[tokio::test]
async fn a_merged_sources_field_change_reaches_the_survivor_as_a_note() {
    let world = unified_world().await;
    let a = seed(&world, T1, 2, 211);
    world.sync_ok().await;
    world.sync_ok().await;
    let (p0, p1) = (
        pid(&platform_of(&world, T1, &a[0])),
        pid(&platform_of(&world, T1, &a[1])),
    );
    world
        .sims
        .defender_action(WS, &p1, DefenderAction::Merge { into: p0.clone() })
        .unwrap();
    world.sync_ok().await;
    // A first write of the merged source onto the survivor (its pair moved there).
    let custom_tags = vec!["merged-1".to_owned()];
    act(&world, T1, &a[1], DefenderAction::Tag { custom_tags });
    world.sync_ok().await;

    // The merged source is closed and retagged in its customer's Defender.
    let close = DefenderAction::Resolve {
        classification: Some("falsePositive".into()),
        determination: Some("other".into()),
        resolving_comment: None,
    };
    act(&world, T1, &a[1], close);
    let custom_tags = vec!["merged-2".to_owned()];
    act(&world, T1, &a[1], DefenderAction::Tag { custom_tags });
    let reply = world.sync_ok().await.return_value;
    let survivor = world.sims.defender_incident(WS, &p0).unwrap();
    assert_eq!(survivor["status"], "active", "not overwritten: {survivor}");
    let notes: Vec<String> = survivor["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["comment"].as_str())
        .filter(|t| t.contains(&format!("Defender incident #{} of tenant", a[1])))
        .map(str::to_owned)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:#?}\n{reply}");
    assert!(notes[0].contains("→ Closed"), "{}", notes[0]);
    assert!(notes[0].contains("merged-2"), "{}", notes[0]);

    // Nothing more on the next cycles: no second note, no write anywhere, and the note is in
    // neither customer incident's comments.
    world.sync_ok().await;
    world.sims.reset_counters();
    let reply = world.sync_ok().await.return_value;
    assert_eq!(graph_writes(&world), 0, "{reply}");
    let survivor = world.sims.defender_incident(WS, &p0).unwrap();
    let count = survivor["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["comment"]
                .as_str()
                .is_some_and(|t| t.contains("(merged into this incident)"))
        })
        .count();
    assert_eq!(count, 1, "{survivor}");
    for id in &a {
        let d = defender_of(&world, T1, id);
        assert!(
            !d["comments"]
                .to_string()
                .contains("merged into this incident"),
            "{d}"
        );
    }
}
