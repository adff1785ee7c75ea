use crate::common::*;
use dss_simulators::wellknown::STREAM_NAME;
use flate2::{Compression, write::GzEncoder};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::io::Write;

async fn post_raw(env: &Env, url: &str, body: Vec<u8>, gzip: bool) -> StatusCode {
    let mut rb = env
        .http
        .post(url)
        .bearer_auth(env.token(MONITOR, T1))
        .header("content-type", "application/json")
        .body(body);
    if gzip {
        rb = rb.header("content-encoding", "gzip");
    }
    rb.send().await.unwrap().status()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn accepts_the_fixture_plain_and_gzipped_and_keeps_rows() {
    let env = start().await;
    let body = fixture("logs-ingestion.request.json");
    let r = env
        .call(
            Method::POST,
            &env.logs_url(STREAM_NAME),
            Some(&env.token(MONITOR, T1)),
            Some(&body),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let raw = serde_json::to_vec(&body).unwrap();
    assert_eq!(
        post_raw(&env, &env.logs_url(STREAM_NAME), gz(&raw), true).await,
        StatusCode::NO_CONTENT
    );
    let rows = env.sims.ingested_rows(STREAM_NAME);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0], body[0]);
    assert_eq!(env.sims.ingestion_uploads()[STREAM_NAME], 2);
}

#[tokio::test]
async fn size_shape_and_column_rules() {
    let env = start().await;
    let url = env.logs_url(STREAM_NAME);
    let row = json!({"Time": "2021-12-08T23:51:14.1104269Z", "Computer": "x".repeat(1000)});
    let big: Vec<_> = std::iter::repeat_n(row, 1100).collect();
    let raw = serde_json::to_vec(&big).unwrap();
    assert!(raw.len() > 1024 * 1024);
    assert_eq!(
        post_raw(&env, &url, raw.clone(), false).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let compressed = gz(&raw);
    assert!(compressed.len() < 1024 * 1024);
    assert_eq!(
        post_raw(&env, &url, compressed, true).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "decompressed size counts"
    );
    assert_eq!(
        post_raw(&env, &url, br#"{"Time":"x"}"#.to_vec(), false).await,
        StatusCode::BAD_REQUEST,
        "not an array"
    );
    assert_eq!(
        post_raw(&env, &url, b"[{".to_vec(), false).await,
        StatusCode::BAD_REQUEST
    );
    let r = env
        .call(
            Method::POST,
            &url,
            Some(&env.token(MONITOR, T1)),
            Some(&json!([{"Time": "t", "Extra": 1}])),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.headers.get("x-ms-error-code").is_some());
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Extra")
    );
    let bad_version = url.replace("2023-01-01", "2021-01-01");
    assert_eq!(
        post_raw(&env, &bad_version, b"[]".to_vec(), false).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post_raw(
            &env,
            &env.logs_url("Custom-Unknown_CL"),
            b"[]".to_vec(),
            false
        )
        .await,
        StatusCode::BAD_REQUEST
    );
    assert!(env.sims.ingested_rows(STREAM_NAME).is_empty());
}

#[tokio::test]
async fn tokens_from_another_tenant_are_refused() {
    let env = start().await;
    let r = env
        .call(
            Method::POST,
            &env.logs_url(STREAM_NAME),
            Some(&env.token(MONITOR, T2)),
            Some(&json!([])),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// The service cuts every field value over 64 KB; shorter values and other types stay whole.
#[tokio::test]
async fn field_values_over_64_kb_are_truncated_as_stored() {
    let env = start().await;
    let long: String = "é".repeat(40_000); // 80,000 bytes, two per character
    let body =
        json!([{"Time": "2024-01-01T00:00:00Z", "Computer": long, "AdditionalContext": "short"}]);
    assert_eq!(
        post_raw(
            &env,
            &env.logs_url(STREAM_NAME),
            serde_json::to_vec(&body).unwrap(),
            false
        )
        .await,
        StatusCode::NO_CONTENT
    );
    let rows = env.sims.ingested_rows(STREAM_NAME);
    let stored = rows[0]["Computer"].as_str().unwrap();
    assert_eq!(stored.len(), 64 * 1024, "cut to 64 KB");
    assert!(long.starts_with(stored), "the start is kept");
    assert_eq!(rows[0]["AdditionalContext"], "short");
    assert_eq!(rows[0]["Time"], "2024-01-01T00:00:00Z");
}
