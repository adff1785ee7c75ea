//! The retry set (an incident failing for a reason of its own is parked, the watermark passes
//! it, the others flow, SyncHealth lists it, a later cycle clears it) and a page-level
//! transient failure (the watermark holds, the next cycle delivers everything).

use super::invariants::*;
use super::one_tenant;
use defender_sentinel_sync::domain::TenantId;
use defender_sentinel_sync::state::StateStore;
use dss_simulators::{Api, Fault, FaultPlan, FaultScope, wellknown};
use serde_json::Value;
use std::time::Duration;

const T: &str = wellknown::TENANT_ID;

#[tokio::test]
async fn an_incident_sentinel_refuses_is_parked_passed_listed_and_cleared_once_fixed() {
    let w = one_tenant(&[("SYNC_RETRY_BACKOFF_SECONDS", "0.2")]).await;
    let ids = w.sims.seed_capped(T, 10, 31, 3);
    let victim = ids[3].clone();
    let victim_name = sentinel_name(T, &victim);
    // Sentinel refuses every write of this one incident (400: a payload it will not take).
    let refuse = FaultPlan::rate(Fault::BadRequest, 1.0)
        .scoped(FaultScope::Writes)
        .for_path(victim_name.clone());
    w.sims.set_faults(Api::Arm, refuse.clone());

    let first = w.sync_ok().await.return_value;
    assert_eq!(figure(&first, "parked"), 1, "{first}");
    assert_eq!(figure(&first, "written"), 9, "{first}");
    assert!(
        first["figures"]["tenants"][0]["errors"]
            .to_string()
            .contains(&victim),
        "the error names the incident: {first}"
    );
    assert!(w.sims.sentinel_incident(&victim_name).is_none());
    let store = w.state().await;
    let tenant = TenantId::parse(T).unwrap();
    let parked = store.retry_set(&tenant).await.unwrap();
    assert_eq!(
        parked
            .iter()
            .map(|e| e.incident_id.to_string())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&victim)
    );
    let watermark = store
        .checkpoint(&tenant)
        .await
        .unwrap()
        .unwrap()
        .value
        .watermark;
    assert!(
        watermark > parked[0].last_update,
        "the watermark passed the parked incident"
    );
    let health = w.health().await;
    let failed = health["failedIncidents"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{health}");
    assert_eq!(failed[0]["defenderId"], Value::String(victim.clone()));
    assert!(
        failed[0]["error"].as_str().unwrap().contains("400"),
        "SyncHealth shows the error: {health}"
    );
    assert_eq!(health["perTenant"][T]["incidents_failed"], 1, "{health}");

    // Still refused: other (new) incidents keep flowing past it.
    let more = w.sims.seed_capped(T, 3, 32, 3);
    for id in &more {
        touch(&w.sims, T, id);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = w.sync_ok().await.return_value;
    assert_eq!(figure(&second, "written"), 3, "{second}");
    assert_eq!(
        figure(&second, "parked"),
        1,
        "retried and parked again: {second}"
    );
    assert!(
        store
            .checkpoint(&tenant)
            .await
            .unwrap()
            .unwrap()
            .value
            .watermark
            > watermark,
        "the watermark moves on"
    );

    // The refusal ends: the next due retry clears it.
    w.sims.set_faults(Api::Arm, FaultPlan::default());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let third = w.sync_ok().await.return_value;
    assert_eq!(figure(&third, "cleared"), 1, "{third}");
    let health = w.health().await;
    assert_eq!(
        health["failedIncidents"].as_array().unwrap().len(),
        0,
        "{health}"
    );

    assert_converged(&w, &[T]);
    assert_rows(&w, &[T], false);
    assert_checkpoint(&w, T).await;
    assert_idle(&w).await;
}

#[tokio::test]
async fn an_incident_that_cannot_be_mapped_is_parked_and_cleared_once_its_payload_is_fixed() {
    let w = one_tenant(&[("SYNC_RETRY_BACKOFF_SECONDS", "0")]).await;
    let ids = w.sims.seed_capped(T, 4, 33, 2);
    let good = w.sims.defender_incident(T, &ids[1]).unwrap();
    let mut broken = good.clone();
    broken.as_object_mut().unwrap().remove("createdDateTime");
    w.sims.insert_defender_incident(T, broken).unwrap();

    let first = w.sync_ok().await.return_value;
    assert_eq!(figure(&first, "parked"), 1, "{first}");
    assert_eq!(figure(&first, "written"), 3, "{first}");
    let health = w.health().await;
    let failed = health["failedIncidents"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{health}");
    assert_eq!(failed[0]["defenderId"], Value::String(ids[1].clone()));
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("createdDateTime"),
        "{health}"
    );

    w.sims.insert_defender_incident(T, good).unwrap();
    let second = w.sync_ok().await.return_value;
    assert_eq!(figure(&second, "cleared"), 1, "{second}");
    assert_eq!(
        w.health().await["failedIncidents"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_converged(&w, &[T]);
    assert_rows(&w, &[T], false);
    assert_checkpoint(&w, T).await;
    assert_idle(&w).await;
}

#[tokio::test]
async fn graph_503s_for_a_whole_cycle_hold_the_watermark_and_the_next_cycle_delivers() {
    let w = one_tenant(&[]).await;
    w.sims.seed_capped(T, 5, 41, 3);
    w.sync_ok().await;
    let store = w.state().await;
    let tenant = TenantId::parse(T).unwrap();
    let before = store.checkpoint(&tenant).await.unwrap().unwrap().value;

    let later = w.sims.seed_capped(T, 6, 42, 3);
    for id in &later {
        touch(&w.sims, T, id);
    }
    w.sims
        .set_faults(Api::Graph, FaultPlan::rate(Fault::ServiceUnavailable, 1.0));
    let failed = w.sync().await.return_value;
    assert_eq!(failed["completed"], false, "{failed}");
    assert_eq!(figure(&failed, "written"), 0, "{failed}");
    assert_eq!(
        store.checkpoint(&tenant).await.unwrap().unwrap().value,
        before,
        "the watermark holds"
    );
    assert_eq!(w.sims.sentinel_incidents().len(), 5);
    let health = w.health().await;
    assert_eq!(
        health["perTenant"][T]["last_cycle_completed"], false,
        "{health}"
    );

    w.sims.set_faults(Api::Graph, FaultPlan::default());
    let ok = w.sync_ok().await.return_value;
    assert_eq!(figure(&ok, "written"), 6, "{ok}");
    assert_converged(&w, &[T]);
    assert_rows(&w, &[T], false);
    assert_checkpoint(&w, T).await;
    assert_idle(&w).await;
}
