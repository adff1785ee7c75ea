//! Alerts and evidence into Logs Ingestion: one row per alert and per evidence item, the DCR
//! columns only, unique row ids, only new alerts shipped by later cycles.

use super::common::*;
use crate::support::world::World;
use defender_sentinel_sync::adapters::logs::STREAM_COLUMNS;
use dss_simulators::{DefenderAction, wellknown};
use serde_json::{Value, json};
use std::collections::HashSet;

fn rows(world: &World) -> Vec<Value> {
    world.sims.ingested_rows(wellknown::STREAM_NAME)
}

/// Alert and evidence rows a Defender incident's alerts make.
fn expected_rows(d: &Value) -> usize {
    d["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| 1 + a["evidence"].as_array().map_or(0, Vec::len))
        .sum()
}

#[tokio::test]
async fn every_alert_and_evidence_item_arrives_once_and_later_cycles_ship_only_new_alerts() {
    let world = World::start().await;
    let t = wellknown::TENANT_ID;
    let ids = world.sims.seed_capped(t, 5, 51, 4);
    world.sync_ok().await;

    let all = rows(&world);
    let defender = world.sims.defender_incidents(t);
    let want: usize = defender.iter().map(expected_rows).sum();
    assert!(want > ids.len(), "the generated incidents carry evidence");
    assert_eq!(all.len(), want, "one row per alert and per evidence item");
    let row_ids: HashSet<&str> = all.iter().map(|r| r["RowId"].as_str().unwrap()).collect();
    assert_eq!(row_ids.len(), all.len(), "row ids are unique");
    let columns: HashSet<&str> = STREAM_COLUMNS.iter().map(|(c, _)| *c).collect();
    for r in &all {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(
            keys.iter().all(|k| columns.contains(k)),
            "a column outside the DCR stream: {keys:?}"
        );
        for reserved in [
            "TenantId",
            "Title",
            "Type",
            "id",
            "UniqueId",
            "_ResourceId",
            "_SubscriptionId",
        ] {
            assert!(!keys.contains(&reserved), "reserved column {reserved}");
        }
        let id = r["DefenderIncidentId"].as_str().unwrap();
        assert_eq!(r["SourceTenantId"], t);
        assert_eq!(r["SentinelIncidentName"], name_of(t, id));
        assert!(r["AlertId"].is_string() && r["RawJson"].is_string(), "{r}");
    }
    for d in &defender {
        let id = d["id"].as_str().unwrap();
        for a in d["alerts"].as_array().unwrap() {
            let mine: Vec<&Value> = all.iter().filter(|r| r["AlertId"] == a["id"]).collect();
            assert_eq!(
                mine.iter().filter(|r| r["RowKind"] == "alert").count(),
                1,
                "alert row of {}",
                a["id"]
            );
            let evidence = a["evidence"].as_array().map_or(0, Vec::len);
            assert_eq!(
                mine.iter().filter(|r| r["RowKind"] == "evidence").count(),
                evidence,
                "evidence rows of {}",
                a["id"]
            );
            assert!(mine.iter().all(|r| r["DefenderIncidentId"] == id));
        }
    }

    // A new alert on one incident: only its rows are shipped.
    let before: HashSet<String> = defender_of(&world, t, &ids[0])["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    let after = world
        .sims
        .defender_action(t, &ids[0], DefenderAction::AddAlert { alert: None })
        .unwrap();
    let new_alert = after["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| !before.contains(a["id"].as_str().unwrap()))
        .expect("a new alert")
        .clone();
    world.sync_ok().await;
    let now = rows(&world);
    let shipped = &now[all.len()..];
    assert_eq!(
        shipped.len(),
        1 + new_alert["evidence"].as_array().map_or(0, Vec::len),
        "{shipped:?}"
    );
    assert!(
        shipped.iter().all(|r| r["AlertId"] == new_alert["id"]),
        "only the new alert's rows: {shipped:?}"
    );
}

/// An alert whose JSON is far over the service's 64 KB per field arrives whole: its text is
/// spread over `RawJson`, `RawJson2`, … (the simulator cuts any field over 64 KB, as the service
/// does), the parts join into the JSON Graph sent, and `RawTruncated` is false.
#[tokio::test]
async fn an_alert_over_the_field_limit_arrives_whole_over_numbered_columns() {
    let world = World::start().await;
    let t = wellknown::TENANT_ID;
    let ids = world.sims.seed_capped(t, 1, 52, 1);
    let mut big = defender_of(&world, t, &ids[0])["alerts"][0].clone();
    let description = "Suspicious PowerShell → ".repeat(8_000); // about 200 KB
    big["id"] = json!("da-big-alert");
    big["description"] = json!(description);
    world
        .sims
        .defender_action(t, &ids[0], DefenderAction::AddAlert { alert: Some(big) })
        .unwrap();
    world.sync_ok().await;

    let all = rows(&world);
    let row = all
        .iter()
        .find(|r| r["AlertId"] == "da-big-alert" && r["RowKind"] == "alert")
        .expect("the big alert's row");
    assert_eq!(row["RawTruncated"], false);
    let mut raw = String::new();
    for (name, _) in STREAM_COLUMNS
        .iter()
        .filter(|(n, _)| n.starts_with("RawJson"))
    {
        if let Some(part) = row[*name].as_str() {
            assert!(part.len() < 64_000, "{name}: {} bytes", part.len());
            raw.push_str(part);
        }
    }
    let parsed: Value = serde_json::from_str(&raw).expect("the joined parts are the alert's JSON");
    assert_eq!(parsed["id"], "da-big-alert");
    assert_eq!(parsed["description"], description.as_str());
}
