//! Unified-platform mode: ingested alert rows → the analytics rule → platform alerts with custom
//! details and incidents in the workspace tenant's Graph, grouped per source incident, after the
//! configured delay; merges on command.

use crate::common::*;
use dss_simulators::{DefenderAction, SimConfig, UnifiedConfig, unified, wellknown};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CUST_A: &str = "aaaaaaaa-0000-0000-0000-00000000000a";
const CUST_B: &str = "bbbbbbbb-0000-0000-0000-00000000000b";

fn row(tenant: &str, incident: &str, alert: &str, kind: &str) -> Value {
    json!({"TimeGenerated": "2026-01-01T00:00:00Z", "RowKind": kind, "SourceTenantId": tenant,
           "DefenderIncidentId": incident, "AlertId": alert, "AlertTitle": format!("title {alert}"),
           "AlertSeverity": "high"})
}

async fn ingest(env: &Env, rows: &[Value]) {
    let r = env
        .call(
            Method::POST,
            &env.logs_url(wellknown::STREAM_NAME),
            Some(&env.token(MONITOR, T1)),
            Some(&Value::Array(rows.to_vec())),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

/// GET on Graph in the workspace tenant, asking for evolvable enum members
/// (`microsoftSentinel` is one).
async fn workspace_get(env: &Env, path: &str) -> Resp {
    let url = format!("{}{path}", env.sims.urls().graph);
    let token = env.token(GRAPH, wellknown::TENANT_ID);
    env.call(
        Method::GET,
        &url,
        Some(&token),
        None,
        &[("Prefer", "include-unknown-enum-members")],
    )
    .await
}

async fn workspace_incidents(env: &Env) -> Vec<Value> {
    let r = workspace_get(env, "/v1.0/security/incidents?$expand=alerts").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["value"].as_array().cloned().unwrap_or_default()
}

fn detail(alert: &Value, key: &str) -> String {
    alert["additionalData"][key][0].as_str().unwrap().to_owned()
}

async fn start_unified(delay_ms: u64) -> Env {
    let env = start_with(SimConfig::default().with_stream(wellknown::STREAM_NAME, &[])).await;
    env.sims.set_unified(Some(UnifiedConfig {
        delay_ms,
        ..Default::default()
    }));
    env
}

#[tokio::test]
async fn alerts_become_one_incident_per_source_incident_and_never_cross_tenants() {
    let env = start_unified(0).await;
    // Same source incident id "7" in two customer tenants: two incidents, never one.
    ingest(
        &env,
        &[
            row(CUST_A, "7", "a1", "alert"),
            row(CUST_A, "7", "a1", "evidence"),
            row(CUST_A, "7", "a2", "alert"),
            row(CUST_B, "7", "b1", "alert"),
            row(CUST_A, "8", "a3", "alert"),
        ],
    )
    .await;
    let incs = workspace_incidents(&env).await;
    assert_eq!(incs.len(), 3, "{incs:#?}");
    let mut keys: Vec<(String, String, usize)> = incs
        .iter()
        .map(|i| {
            let alerts = i["alerts"].as_array().unwrap();
            let first = &alerts[0];
            for a in alerts {
                assert_eq!(a["detectorId"], unified::RULE_ID);
                assert_eq!(a["serviceSource"], "microsoftSentinel");
                assert_eq!(a["incidentId"], i["id"]);
                assert_eq!(detail(a, "SourceTenantId"), detail(first, "SourceTenantId"));
                assert_eq!(
                    detail(a, "SourceIncidentId"),
                    detail(first, "SourceIncidentId")
                );
            }
            (
                detail(first, "SourceTenantId"),
                detail(first, "SourceIncidentId"),
                alerts.len(),
            )
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            (CUST_A.to_owned(), "7".to_owned(), 2),
            (CUST_A.to_owned(), "8".to_owned(), 1),
            (CUST_B.to_owned(), "7".to_owned(), 1),
        ]
    );
    // The source tenants' own Graph is untouched: the platform writes the workspace tenant only.
    let other = env
        .graph(Method::GET, "/v1.0/security/incidents", T2, None)
        .await;
    assert_eq!(other.body["value"].as_array().map(Vec::len), Some(0));
    // Platform alerts are listed with their custom details through alerts_v2 as well.
    let alerts = workspace_get(
        &env,
        "/v1.0/security/alerts_v2?$filter=serviceSource eq 'microsoftSentinel'",
    )
    .await;
    assert_eq!(alerts.status, StatusCode::OK, "{}", alerts.body);
    assert_eq!(alerts.body["value"].as_array().map(Vec::len), Some(4));
}

#[tokio::test]
async fn nothing_shows_before_the_delay_and_a_later_alert_joins_the_open_incident() {
    let env = start_unified(300).await;
    ingest(&env, &[row(CUST_A, "1", "a1", "alert")]).await;
    assert_eq!(env.sims.unified_pending(), 1);
    assert!(workspace_incidents(&env).await.is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let incs = workspace_incidents(&env).await;
    assert_eq!(incs.len(), 1);
    assert_eq!(env.sims.unified_pending(), 0);
    ingest(&env, &[row(CUST_A, "1", "a2", "alert")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let incs = workspace_incidents(&env).await;
    assert_eq!(incs.len(), 1);
    assert_eq!(incs[0]["alerts"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_closed_incident_is_not_reopened_and_a_merge_redirects_the_loser() {
    let env = start_unified(0).await;
    ingest(&env, &[row(CUST_A, "1", "a1", "alert")]).await;
    ingest(&env, &[row(CUST_A, "2", "a2", "alert")]).await;
    let incs = workspace_incidents(&env).await;
    assert_eq!(incs.len(), 2);
    let id_of = |src: &str| {
        incs.iter()
            .find(|i| detail(&i["alerts"][0], "SourceIncidentId") == src)
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (one, two) = (id_of("1"), id_of("2"));
    // The platform merges incident two into one (control API, as the correlation engine or an
    // analyst would).
    env.sims
        .defender_action(
            wellknown::TENANT_ID,
            &two,
            DefenderAction::Merge { into: one.clone() },
        )
        .unwrap();
    let r = env
        .graph(
            Method::GET,
            &format!("/v1.0/security/incidents/{two}"),
            wellknown::TENANT_ID,
            None,
        )
        .await;
    assert_eq!(r.body["status"], "redirected");
    assert_eq!(r.body["redirectIncidentId"], one.as_str());
    // Closing incident one: a later alert of its source starts a new incident
    // (reopenClosedIncident = false).
    let r = env
        .graph(
            Method::PATCH,
            &format!("/v1.0/security/incidents/{one}"),
            wellknown::TENANT_ID,
            Some(&json!({"status": "resolved"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    ingest(&env, &[row(CUST_A, "1", "a9", "alert")]).await;
    let incs = workspace_incidents(&env).await;
    assert_eq!(incs.len(), 3);
}

#[tokio::test]
async fn rows_of_one_alert_within_one_delay_count_once_with_the_latest_state() {
    let env = start_unified(300).await;
    let mut first = row(CUST_A, "3", "a1", "alert");
    first["AlertTitle"] = json!("first state");
    let mut second = row(CUST_A, "3", "a1", "alert");
    second["AlertTitle"] = json!("latest state");
    ingest(&env, &[first]).await;
    ingest(&env, &[second]).await;
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let incs = workspace_incidents(&env).await;
    assert_eq!(incs.len(), 1);
    let alerts = incs[0]["alerts"].as_array().unwrap();
    assert_eq!(
        alerts.len(),
        1,
        "intermediate states are dropped: {alerts:#?}"
    );
    assert_eq!(alerts[0]["title"], "latest state");
}

/// The documented batching on a simulated clock: rows ingested within one 5-minute window are
/// applied together 5 minutes after the window ends (so 5–10 minutes after ingestion), only the
/// latest state of an alert in a window is shown, and nothing moves until the clock does.
#[tokio::test]
async fn batches_on_a_simulated_clock_show_the_last_state_of_each_window_5_to_10_minutes_later() {
    const MIN: u64 = 60_000;
    let env = start_with(SimConfig::default().with_stream(wellknown::STREAM_NAME, &[])).await;
    env.sims.set_unified(Some(UnifiedConfig {
        delay_ms: 5 * MIN,
        batch_ms: 5 * MIN,
        simulated_clock: true,
        ..Default::default()
    }));
    let titled = |alert: &str, title: &str| {
        let mut r = row(CUST_A, "4", alert, "alert");
        r["AlertTitle"] = json!(title);
        r
    };
    // t = 1 min: first state of a1; t = 4 min: its second state, and a2. Same window [0, 5).
    assert_eq!(env.sims.unified_advance(MIN), MIN);
    ingest(&env, &[titled("a1", "a1 first")]).await;
    env.sims.unified_advance(3 * MIN);
    ingest(&env, &[titled("a1", "a1 second"), titled("a2", "a2 only")]).await;
    // t = 6 min: a1's third state, in the next window [5, 10).
    env.sims.unified_advance(2 * MIN);
    ingest(&env, &[titled("a1", "a1 third")]).await;
    // Real time passing moves nothing.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(workspace_incidents(&env).await.is_empty());
    // t = 9:59: the first window is not due yet (due at 10 min).
    env.sims.unified_advance(4 * MIN - 1000);
    assert!(workspace_incidents(&env).await.is_empty());
    assert_eq!(env.sims.unified_pending(), 4);
    // t = 10 min: the first window shows, its intermediate state of a1 dropped.
    env.sims.unified_advance(1000);
    let incs = workspace_incidents(&env).await;
    assert_eq!(incs.len(), 1, "{incs:#?}");
    let mut titles: Vec<String> = incs[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    assert_eq!(titles, vec!["a1 second", "a2 only"]);
    assert_eq!(env.sims.unified_pending(), 1);
    // t = 15 min: the second window (a1's third state) joins the same incident.
    env.sims.unified_advance(5 * MIN);
    let incs = workspace_incidents(&env).await;
    assert_eq!(incs.len(), 1);
    assert_eq!(incs[0]["alerts"].as_array().map(Vec::len), Some(3));
    assert_eq!(env.sims.unified_now_ms(), 15 * MIN);
}
