//! What the Sentinel incidents carry, for generated incidents and the Graph fixture.

use super::common::*;
use crate::support::world::World;
use dss_simulators::{DefenderAction, wellknown};
use serde_json::Value;

/// Title, link, severity, status, labels and activity times of one synced incident.
fn assert_mapped(world: &World, tenant: &str, d: &Value) {
    let id = d["id"].as_str().unwrap();
    let s = sentinel_of(world, tenant, id);
    let p = &s["properties"];
    assert_eq!(
        s["name"],
        name_of(tenant, id),
        "the ARM name is the stable UUIDv5"
    );
    let display = d["displayName"].as_str().unwrap();
    assert!(
        p["title"].as_str().unwrap().contains(display),
        "title {} lacks {display}",
        p["title"]
    );
    let link = format!("https://security.microsoft.com/incidents/{id}?tid={tenant}");
    assert!(
        p["description"].as_str().unwrap().starts_with(&link),
        "description {} does not start with {link}",
        p["description"]
    );
    assert_eq!(
        p["severity"],
        expected_severity(d["severity"].as_str().unwrap()),
        "severity of {id}"
    );
    assert_eq!(
        p["status"],
        expected_status(d["status"].as_str().unwrap()),
        "status of {id}"
    );
    let tags = d["customTags"]
        .as_array()
        .or(d["tags"].as_array())
        .cloned()
        .unwrap_or_default();
    let mut want: Vec<String> = tags
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .chain(["Defender".to_owned()])
        .collect();
    want.sort();
    assert_eq!(labels(&s), want, "labels of {id}");
    let (first, last) = activity(d);
    assert_eq!(
        ts(&p["firstActivityTimeUtc"]),
        first,
        "first activity of {id}"
    );
    assert_eq!(ts(&p["lastActivityTimeUtc"]), last, "last activity of {id}");
}

#[tokio::test]
async fn sentinel_incidents_carry_the_defender_content_for_generated_and_fixture_incidents() {
    let world = World::start().await;
    let (t1, t2) = (wellknown::TENANT_ID, wellknown::TENANT_ID_2);
    let ids = world.sims.seed(t1, 8, 11);
    act(
        &world,
        t1,
        &ids[0],
        DefenderAction::Assign {
            assigned_to: Some(wellknown::ANALYST_UPN.into()),
        },
    );
    act(
        &world,
        t1,
        &ids[0],
        DefenderAction::Tag {
            custom_tags: vec!["vip".into(), "phishing".into()],
        },
    );
    let tp = DefenderAction::Resolve {
        classification: Some("truePositive".into()),
        determination: Some("malware".into()),
        resolving_comment: Some("Contained by EDR.".into()),
    };
    act(&world, t1, &ids[1], tp);
    let fp = DefenderAction::Resolve {
        classification: Some("falsePositive".into()),
        determination: Some("notEnoughDataToValidate".into()),
        resolving_comment: None,
    };
    act(&world, t1, &ids[2], fp);
    let bp = DefenderAction::Resolve {
        classification: Some("informationalExpectedActivity".into()),
        determination: Some("securityTesting".into()),
        resolving_comment: None,
    };
    act(&world, t1, &ids[3], bp);
    act(
        &world,
        t1,
        &ids[4],
        DefenderAction::SetStatus {
            status: "inProgress".into(),
        },
    );
    let fixture_ids = world
        .sims
        .load_graph_list(t2, &fixture("graph-list-incidents.json"))
        .unwrap();
    let fx = fixture_ids[0].clone();
    touch(&world, t2, &fx);

    let reply = world.sync_ok().await;
    assert!(
        reply.logs.iter().all(|l| !l.starts_with("error:")),
        "{:?}",
        reply.logs
    );
    assert_eq!(
        world.sims.sentinel_incidents().len(),
        ids.len() + fixture_ids.len(),
        "one Sentinel incident per Defender incident"
    );
    for d in world.sims.defender_incidents(t1) {
        assert_mapped(&world, t1, &d);
    }
    assert_mapped(&world, t2, &defender_of(&world, t2, &fx));

    // A known directory user: owner with the directory object id.
    let owner = &sentinel_of(&world, t1, &ids[0])["properties"]["owner"];
    assert_eq!(owner["objectId"], wellknown::ANALYST_OBJECT_ID, "{owner}");
    assert!(
        owner["userPrincipalName"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(wellknown::ANALYST_UPN),
        "{owner}"
    );

    // Classification + reason, determination and resolving comment in the classification comment.
    let closed = |id: &str| sentinel_of(&world, t1, id)["properties"].clone();
    let p = closed(&ids[1]);
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
        )
    );
    let comment = p["classificationComment"].as_str().unwrap();
    assert!(
        comment.contains("malware") && comment.contains("Contained by EDR."),
        "{comment}"
    );
    let p = closed(&ids[2]);
    assert_eq!(
        (
            p["classification"].as_str(),
            p["classificationReason"].as_str()
        ),
        (Some("FalsePositive"), Some("InaccurateData"))
    );
    let p = closed(&ids[3]);
    assert_eq!(
        (
            p["classification"].as_str(),
            p["classificationReason"].as_str()
        ),
        (Some("BenignPositive"), Some("SuspiciousButExpected"))
    );

    // The fixture: its owner is not in the Sentinel directory (named in the description), its
    // comment is mirrored once with the marker, its determination reaches the comment field.
    let s = sentinel_of(&world, t2, &fx);
    let p = &s["properties"];
    assert!(
        p["description"]
            .as_str()
            .unwrap()
            .contains("KaiC@contoso.onmicrosoft.com"),
        "{}",
        p["description"]
    );
    assert!(
        p["owner"]["objectId"].is_null() && p["owner"]["userPrincipalName"].is_null(),
        "{}",
        p["owner"]
    );
    let classification = (
        p["classification"].as_str(),
        p["classificationReason"].as_str(),
        p["classificationComment"].as_str(),
    );
    assert_eq!(
        classification,
        (
            Some("TruePositive"),
            Some("SuspiciousActivity"),
            Some("Defender determination: multiStagedAttack.")
        )
    );
    let mirrored = comments(&world, s["name"].as_str().unwrap());
    assert_eq!(mirrored.len(), 1, "{mirrored:?}");
    assert!(
        mirrored[0].starts_with("[Defender]") && mirrored[0].contains("Demo incident"),
        "{mirrored:?}"
    );
}
