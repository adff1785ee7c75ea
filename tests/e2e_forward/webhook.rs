//! The playbook call: the automation-rule trigger body the simulator builds for a Sentinel
//! change, delivered through the fake host to SentinelWebhook (the full suite is `tests/e2e_webhook.rs`).

use super::common::*;
use crate::support::world::World;
use dss_simulators::{SentinelAction, wellknown};

#[tokio::test]
async fn the_playbook_call_is_parsed_and_applied_to_defender() {
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
    assert_eq!(res.status, 200, "{}", res.body);
    let json: serde_json::Value = serde_json::from_str(&res.body).unwrap();
    assert_eq!(json["result"], "applied");
    assert!(
        res.reply.logs.iter().any(|l| l.contains(&name)),
        "the reply's log line names the incident: {:?}",
        res.reply.logs
    );
    let d = world.sims.defender_incident(t, &ids[0]).unwrap();
    assert_eq!(d["assignedTo"], wellknown::ANALYST_UPN);

    for bad in ["{not json", "[]", r#"{"workspaceId":"w"}"#] {
        let res = world.webhook(bad).await;
        assert_eq!(res.status, 400, "{bad}: {}", res.body);
    }
}
