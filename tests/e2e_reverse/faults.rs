//! A comment lands in Defender once even when Graph applied the POST and failed the reply; an
//! incident Graph refuses is parked with its reason and cleared once Graph takes it.

use super::*;
use dss_simulators::{Api, Fault, FaultPlan, FaultScope};

#[tokio::test]
async fn a_comment_lands_once_after_graph_applied_it_and_answered_500() {
    let (world, ids) = synced(1, 81, &[]).await;
    let message = "Escalated to tier 2.".to_owned();
    sentinel_act(&world, T, &ids[0], SentinelAction::Comment { message });
    world.sims.set_faults(
        Api::Graph,
        FaultPlan::sequence([Fault::InternalErrorAfterApply]).scoped(FaultScope::Writes),
    );
    let reply = world.sync().await.return_value;
    let p = poll(&reply);
    assert_eq!(n(p, "failed"), 1, "the POST's 500 holds the incident: {p}");
    assert_eq!(reply["completed"], false, "{reply}");
    assert_eq!(
        defender_comments(&world, T, &ids[0]).len(),
        1,
        "Graph applied it"
    );
    world.sims.set_faults(Api::Graph, FaultPlan::default());
    let reply = world.sync_ok().await.return_value;
    let p = poll(&reply);
    assert_eq!((n(p, "comments"), n(p, "failed")), (0, 0), "{p}");
    let texts = defender_comments(&world, T, &ids[0]);
    assert_eq!(texts.len(), 1, "not posted again: {texts:?}");
    assert!(texts[0].contains("Escalated to tier 2."));
    assert_idle(&world).await;
}

#[tokio::test]
async fn an_incident_graph_refuses_is_parked_with_its_reason_and_cleared_once_taken() {
    let (world, ids) = synced(1, 82, &[]).await;
    let labels = vec!["Defender".to_owned(), "refused".to_owned()];
    sentinel_act(&world, T, &ids[0], SentinelAction::SetLabels { labels });
    world.sims.set_faults(
        Api::Graph,
        FaultPlan::rate(Fault::BadRequest, 1.0)
            .scoped(FaultScope::Writes)
            .for_path(format!("incidents/{}", ids[0])),
    );
    let reply = world.sync_ok().await.return_value;
    let p = poll(&reply);
    assert_eq!((n(p, "parked"), n(p, "defenderWrites")), (1, 0), "{p}");
    assert_eq!(
        p["completed"], true,
        "a parked incident does not hold the poll"
    );
    let health = world.health().await.to_string();
    assert!(
        health.contains("reverse sync"),
        "SyncHealth lists the parked incident with its reason: {health}"
    );
    world.sims.set_faults(Api::Graph, FaultPlan::default());
    let reply = world.sync_ok().await.return_value;
    let p = poll(&reply);
    assert_eq!((n(p, "parked"), n(p, "defenderWrites")), (0, 1), "{p}");
    assert_eq!(
        defender_of(&world, T, &ids[0])["customTags"],
        serde_json::json!(["refused"])
    );
    let health = world.health().await.to_string();
    assert!(!health.contains("reverse sync"), "cleared: {health}");
    assert_idle(&world).await;
}
