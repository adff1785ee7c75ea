use crate::common::*;
use defender_sentinel_sync::adapters::logs::{LogsClient, MAX_CALL_BYTES, STREAM_COLUMNS};
use defender_sentinel_sync::config::LogsSettings;
use defender_sentinel_sync::credentials::scopes;
use defender_sentinel_sync::domain::*;
use defender_sentinel_sync::ports::{AlertRecord, Classify, ErrorClass, LogsIngest};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

const T: &str = "2070ecc9-b4d5-4ae4-adaa-936fa1954fa8";

fn client(mock: &Mock) -> LogsClient {
    client_for(mock, scopes::logs_audience_for(&mock.base))
}

fn client_for(mock: &Mock, audience: url::Url) -> LogsClient {
    let settings = LogsSettings {
        endpoint: mock.base.clone(),
        dcr_immutable_id: "dcr-000a00a000a00000a000000aa000a0aa".into(),
        stream_name: "Custom-DefenderAlerts_CL".into(),
        audience,
    };
    LogsClient::new(
        &settings,
        tenant(T),
        Arc::new(StaticTokens::default()),
        Duration::from_secs(5),
    )
    .unwrap()
    .with_retry_policy(fast_retries())
}

fn gunzip(body: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn gunzipped_len(body: &[u8]) -> usize {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    out.len()
}

/// The fixture's alert (4 evidence items) under a new id, with `pad` bytes of extra raw JSON.
fn records(n: usize, pad: usize) -> Vec<AlertRecord> {
    let incident = fixture("graph-list-incidents.json")["value"][0].clone();
    let tenant = tenant("b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c");
    let incident_id = DefenderIncidentId::parse("2972395").unwrap();
    (0..n)
        .map(|i| {
            let mut raw = incident["alerts"][0].clone();
            raw["id"] = json!(format!("alert-{i}"));
            raw["padding"] = json!("p".repeat(pad));
            let evidence = raw["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| Evidence {
                    kind: e["@odata.type"]
                        .as_str()
                        .unwrap()
                        .rsplit('.')
                        .next()
                        .unwrap()
                        .into(),
                    verdict: e["verdict"].as_str().map(Into::into),
                    remediation_status: None,
                    roles: vec![],
                    key: None,
                    raw: RawJson::from_value(e),
                })
                .collect();
            AlertRecord {
                sentinel_name: SentinelIncidentName::for_defender(&tenant, &incident_id),
                tenant: tenant.clone(),
                incident_id: incident_id.clone(),
                alert: Alert {
                    id: format!("alert-{i}"),
                    title: "Suspicious execution of hidden file".into(),
                    severity: DefenderSeverity::Low,
                    status: "new".into(),
                    service_source: "microsoftDefenderForEndpoint".into(),
                    detection_source: Some("antivirus".into()),
                    category: Some("DefenseEvasion".into()),
                    created: None,
                    last_update: None,
                    first_activity: None,
                    last_activity: None,
                    mitre_techniques: vec!["T1564.001".into()],
                    evidence,
                    raw: RawJson::from_value(&raw),
                },
            }
        })
        .collect()
}

#[tokio::test]
async fn rows_are_posted_gzipped_to_the_stream_with_the_monitor_token() {
    let mock = Mock::start(|_, _| Reply::status(204)).await;
    client(&mock).ship_alerts(&records(2, 0)).await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        "/dataCollectionRules/dcr-000a00a000a00000a000000aa000a0aa/streams/Custom-DefenderAlerts_CL"
    );
    assert_eq!(r.query("api-version").as_deref(), Some("2023-01-01"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("authorization"),
        Some(bearer(T, "https://monitor.azure.com/.default").as_str())
    );
    let rows = gunzip(&r.body);
    assert_eq!(rows.len(), 10, "2 alerts × (1 + 4 evidence)");
    let declared: HashSet<&str> = STREAM_COLUMNS.iter().map(|(n, _)| *n).collect();
    for row in &rows {
        assert!(
            row.as_object()
                .unwrap()
                .keys()
                .all(|k| declared.contains(k.as_str()))
        );
    }
    let kinds: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["EvidenceType"].as_str())
        .collect();
    assert_eq!(
        &kinds[..4],
        &[
            "deviceEvidence",
            "fileEvidence",
            "processEvidence",
            "registryKeyEvidence"
        ]
    );
}

#[tokio::test]
async fn batches_stay_under_the_limit_and_every_row_arrives_once() {
    let mock = Mock::start(|_, _| Reply::status(204)).await;
    let logs = client(&mock).with_max_call_bytes(40_000);
    logs.ship_alerts(&records(30, 2_000)).await.unwrap();
    let reqs = mock.requests();
    assert!(reqs.len() > 3, "{} calls", reqs.len());
    let mut ids = HashSet::new();
    for r in &reqs {
        assert!(gunzipped_len(&r.body) <= 40_000);
        assert!(r.body.len() <= 40_000);
        for row in gunzip(&r.body) {
            assert!(
                ids.insert(row["RowId"].as_str().unwrap().to_owned()),
                "duplicate row"
            );
        }
    }
    assert_eq!(ids.len(), 150);
}

#[tokio::test]
async fn a_413_halves_the_batch_until_it_fits() {
    // The service says 413 to any call of more than 3 rows.
    let mock = Mock::start(|r, _| {
        if gunzip(&r.body).len() > 3 {
            Reply::status(413)
        } else {
            Reply::status(204)
        }
    })
    .await;
    client(&mock).ship_alerts(&records(2, 0)).await.unwrap();
    let delivered: usize = mock
        .requests()
        .iter()
        .map(|r| gunzip(&r.body).len())
        .filter(|n| *n <= 3)
        .sum();
    assert_eq!(delivered, 10);
    assert!(
        mock.requests().iter().any(|r| gunzip(&r.body).len() > 3),
        "the first, too large call was made"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_rejections_reported() {
    let mock = Mock::start(|_, i| match i {
        0 => Reply::status(503),
        1 => Reply::status(429).with_header("Retry-After", "0.01"),
        2 => Reply::status(204),
        _ => Reply::json(
            400,
            json!({"error": {"code": "InvalidStream", "message": "stream not declared"}}),
        ),
    })
    .await;
    let logs = client(&mock);
    logs.ship_alerts(&records(1, 0)).await.unwrap();
    assert_eq!(mock.requests().len(), 3);
    let err = logs.ship_alerts(&records(1, 0)).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Rejected);
    assert!(err.to_string().contains("stream not declared"), "{err}");
}

#[tokio::test]
async fn an_alert_bigger_than_a_call_is_cut_not_dropped() {
    let mock = Mock::start(|_, _| Reply::status(204)).await;
    client(&mock)
        .ship_alerts(&records(1, MAX_CALL_BYTES + 10))
        .await
        .unwrap();
    let reqs = mock.requests();
    let rows: Vec<Value> = reqs.iter().flat_map(|r| gunzip(&r.body)).collect();
    assert_eq!(rows.len(), 5);
    let alert = rows.iter().find(|r| r["RowKind"] == "alert").unwrap();
    assert_eq!(alert["RawTruncated"], true);
    assert!(
        reqs.iter()
            .all(|r| gunzipped_len(&r.body) <= MAX_CALL_BYTES)
    );
}

#[tokio::test]
async fn the_token_is_asked_for_the_configured_audience() {
    let mock = Mock::start(|_, _| Reply::status(204)).await;
    let gov = url::Url::parse("https://monitor.azure.us").unwrap();
    client_for(&mock, gov)
        .ship_alerts(&records(1, 0))
        .await
        .unwrap();
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some(bearer(T, "https://monitor.azure.us/.default").as_str()),
        "Azure Government's Logs Ingestion audience"
    );
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let foreign = foreign_host().await;
    let to = foreign
        .base
        .join("/dataCollectionRules/x/streams/y")
        .unwrap();
    let mock =
        Mock::start(move |_, _| Reply::status(308).with_header("location", to.as_str())).await;
    assert!(client(&mock).ship_alerts(&records(1, 0)).await.is_err());
    assert!(
        foreign.requests().is_empty(),
        "the redirect was followed: {:?}",
        foreign.requests()
    );
}
