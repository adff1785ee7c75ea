//! The playbook call: the automation-rule trigger body the simulator builds for a Sentinel
//! change, delivered through the fake host to SentinelWebhook.

use super::common::*;
use crate::support::world::World;
use dss_simulators::{SentinelAction, wellknown};

#[tokio::test]
async fn the_playbook_call_is_parsed_and_answered_not_built_until_reverse_sync() {
    let world = World::start().await;
    let t = wellknown::TENANT_ID;
    let ids = world.sims.seed_capped(t, 1, 81, 1);
    world.sync_ok().await;
    let name = name_of(t, &ids[0]);
    let body = world
        .sims
        .sentinel_action(
            &name,
            SentinelAction::SetOwner {
                owner: Some(wellknown::ANALYST_UPN.into()),
            },
        )
        .unwrap();
    assert_eq!(body["object"]["name"], name.as_str());

    let res = world.webhook(&body.to_string()).await;
    assert_eq!(res.status, 501, "{}", res.body);
    let json: serde_json::Value = serde_json::from_str(&res.body).unwrap();
    assert_eq!(json["error"], "reverse sync is not built yet");
    assert!(
        res.reply.logs.iter().any(|l| l.contains(&name)),
        "the parsed body names the incident: {:?}",
        res.reply.logs
    );

    for bad in ["{not json", "[]", r#"{"workspaceId":"w"}"#] {
        let res = world.webhook(bad).await;
        assert_eq!(res.status, 400, "{bad}: {}", res.body);
    }
}
