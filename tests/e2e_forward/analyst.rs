//! Defender analyst actions reach Sentinel on the next cycle; merged incidents are closed and
//! cross-referenced; comments are mirrored once and never back.

use super::common::*;
use crate::support::world::World;
use dss_simulators::{DefenderAction, wellknown};

#[tokio::test]
async fn defender_analyst_actions_propagate_on_the_next_cycle() {
    let world = World::start().await;
    let t = wellknown::TENANT_ID;
    let ids = world.sims.seed_capped(t, 6, 31, 3);
    for id in &ids {
        act(
            &world,
            t,
            id,
            DefenderAction::SetStatus {
                status: "active".into(),
            },
        );
    }
    world.sync_ok().await;

    let resolve = DefenderAction::Resolve {
        classification: Some("truePositive".into()),
        determination: Some("malware".into()),
        resolving_comment: Some("Reimaged the device.".into()),
    };
    act(&world, t, &ids[0], resolve);
    act(
        &world,
        t,
        &ids[1],
        DefenderAction::Assign {
            assigned_to: Some(wellknown::ANALYST_UPN.into()),
        },
    );
    act(
        &world,
        t,
        &ids[2],
        DefenderAction::Tag {
            custom_tags: vec!["ransomware".into()],
        },
    );
    act(
        &world,
        t,
        &ids[3],
        DefenderAction::Comment {
            comment: "Please isolate the host.".into(),
        },
    );
    // What reverse sync writes into Defender carries the Sentinel marker: never mirrored back.
    act(
        &world,
        t,
        &ids[3],
        DefenderAction::Comment {
            comment: "[Sentinel] sam: from the Sentinel side".into(),
        },
    );
    act(
        &world,
        t,
        &ids[4],
        DefenderAction::SetSeverity {
            severity: "high".into(),
        },
    );
    act(
        &world,
        t,
        &ids[5],
        DefenderAction::Merge {
            into: ids[1].clone(),
        },
    );
    let reply = world.sync_ok().await;
    assert!(
        reply.logs.iter().all(|l| !l.starts_with("error:")),
        "{:?}",
        reply.logs
    );

    let p = sentinel_of(&world, t, &ids[0])["properties"].clone();
    assert_eq!(
        (
            p["status"].as_str(),
            p["classification"].as_str(),
            p["classificationReason"].as_str()
        ),
        (
            Some("Closed"),
            Some("TruePositive"),
            Some("SuspiciousActivity")
        ),
        "{p}"
    );
    let c = p["classificationComment"].as_str().unwrap();
    assert!(
        c.contains("malware") && c.contains("Reimaged the device."),
        "{c}"
    );

    let owner = &sentinel_of(&world, t, &ids[1])["properties"]["owner"];
    assert_eq!(owner["objectId"], wellknown::ANALYST_OBJECT_ID, "{owner}");

    assert_eq!(
        labels(&sentinel_of(&world, t, &ids[2])),
        vec!["Defender".to_owned(), "ransomware".to_owned()]
    );
    assert_eq!(
        sentinel_of(&world, t, &ids[4])["properties"]["severity"],
        "High"
    );

    let name3 = name_of(t, &ids[3]);
    let mirrored: Vec<String> = comments(&world, &name3)
        .into_iter()
        .filter(|m| m.contains("isolate the host") || m.contains("from the Sentinel side"))
        .collect();
    assert_eq!(
        mirrored.len(),
        1,
        "mirrored once, the Sentinel-marked one never: {mirrored:?}"
    );
    assert!(
        mirrored[0].starts_with("[Defender]") && mirrored[0].contains("Please isolate the host."),
        "{mirrored:?}"
    );

    // The merged incident: Closed, labelled Redirected, a comment naming the survivor; a comment
    // on the survivor's Sentinel incident naming the merged one.
    let (merged, survivor) = (name_of(t, &ids[5]), name_of(t, &ids[1]));
    let s = sentinel_of(&world, t, &ids[5]);
    assert_eq!(s["properties"]["status"], "Closed");
    assert!(
        labels(&s).contains(&"Redirected".to_owned()),
        "{:?}",
        labels(&s)
    );
    let here = comments(&world, &merged);
    assert!(
        here.iter()
            .any(|m| m.contains(&format!("#{}", ids[1])) && m.contains(&survivor)),
        "{here:?}"
    );
    let there = comments(&world, &survivor);
    assert!(
        there
            .iter()
            .any(|m| m.contains(&format!("#{}", ids[5])) && m.contains(&merged)),
        "{there:?}"
    );

    // Converged: the next cycle writes nothing and posts no comment again.
    let before = (comments(&world, &name3).len(), here.len(), there.len());
    world.sims.reset_counters();
    world.sync_ok().await;
    assert_eq!(
        world.arm_writes(),
        0,
        "{:?}",
        world.sims.counters().by_api.get("arm")
    );
    assert_eq!(
        (
            comments(&world, &name3).len(),
            comments(&world, &merged).len(),
            comments(&world, &survivor).len()
        ),
        before
    );
}

/// A Sentinel analyst gives an incident to a group; a later Defender change rewrites the
/// incident (a full-replace PUT) and the group stays its owner, as a `Group`.
#[tokio::test]
async fn a_group_owner_set_in_sentinel_survives_defender_updates() {
    let world = World::start().await;
    let t = wellknown::TENANT_ID;
    let ids = world.sims.seed_capped(t, 1, 33, 2);
    act(
        &world,
        t,
        &ids[0],
        DefenderAction::Assign { assigned_to: None },
    );
    world.sync_ok().await;
    let name = name_of(t, &ids[0]);
    world
        .sims
        .sentinel_action(
            &name,
            dss_simulators::SentinelAction::SetOwner {
                owner: Some(wellknown::SOC_GROUP_OBJECT_ID.into()),
            },
        )
        .unwrap();
    let high = defender_of(&world, t, &ids[0])["severity"] == "high";
    let (severity, sentinel_severity) = if high {
        ("low", "Low")
    } else {
        ("high", "High")
    };
    act(
        &world,
        t,
        &ids[0],
        DefenderAction::SetSeverity {
            severity: severity.into(),
        },
    );
    let reply = world.sync_ok().await;
    assert!(
        reply.logs.iter().all(|l| !l.starts_with("error:")),
        "{:?}",
        reply.logs
    );
    let s = sentinel_of(&world, t, &ids[0]);
    assert_eq!(
        s["properties"]["severity"], sentinel_severity,
        "the Defender change was written"
    );
    let owner = &s["properties"]["owner"];
    assert_eq!(owner["objectId"], wellknown::SOC_GROUP_OBJECT_ID, "{owner}");
    assert_eq!(owner["ownerType"], "Group");
    assert_eq!(owner["assignedTo"], wellknown::SOC_GROUP_NAME);
}
