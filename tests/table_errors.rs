//! Status mapping of the Table client against a stub server (Azurite cannot throttle):
//! 429/503 ServerBusy → Throttled with Retry-After, 5xx and dropped connections → Transient.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{HeaderMap, StatusCode};
use defender_sentinel_sync::adapters::table::TableClientOptions;
use defender_sentinel_sync::config::StorageConfig;
use defender_sentinel_sync::domain::TenantId;
use defender_sentinel_sync::state::table::TableStateStore;
use defender_sentinel_sync::state::*;
use std::sync::Arc;
use std::time::Duration;

/// Serves every request with `status`, `headers` and an OData error body; returns the endpoint.
async fn stub(
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    code: &'static str,
) -> String {
    let app = axum::Router::new().fallback(move || {
        let headers = headers.clone();
        async move {
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                h.insert(k, v.parse().unwrap());
            }
            let body = format!(r#"{{"odata.error":{{"code":"{code}","message":{{"lang":"en-US","value":"stub says no"}}}}}}"#);
            (status, h, body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/devstoreaccount1")
}

fn store(endpoint: &str) -> TableStateStore {
    let cs = format!(
        "AccountName=devstoreaccount1;AccountKey={};TableEndpoint={endpoint}",
        support::azurite::KEY
    );
    let cfg = StorageConfig::parse_connection_string(&cs).unwrap();
    let options = TableClientOptions {
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    TableStateStore::connect(
        &cfg,
        "stub",
        Arc::new(support::NoTokens),
        TenantId::parse("t").unwrap(),
        options,
    )
    .unwrap()
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let s = store(
        &stub(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("Retry-After", "2")],
            "TooManyRequests",
        )
        .await,
    );
    let res = s.sentinel_checkpoint().await;
    assert!(
        matches!(res, Err(StateError::Throttled { retry_after: Some(d) }) if d == Duration::from_secs(2)),
        "{res:?}"
    );
    let s = store(
        &stub(
            StatusCode::SERVICE_UNAVAILABLE,
            vec![("x-ms-error-code", "ServerBusy")],
            "ServerBusy",
        )
        .await,
    );
    assert!(matches!(
        s.ensure_ready().await,
        Err(StateError::Throttled { retry_after: None })
    ));
}

/// Found by fuzzing the shared parser (`Retry-After: 1e300` panicked in
/// `Duration::from_secs_f64`): the Table client read the header the same way.
#[tokio::test]
async fn a_retry_after_too_large_for_a_duration_is_the_longest_wait_not_a_panic() {
    let s = store(
        &stub(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("Retry-After", "1e300")],
            "TooManyRequests",
        )
        .await,
    );
    let res = s.sentinel_checkpoint().await;
    assert!(
        matches!(res, Err(StateError::Throttled { retry_after: Some(d) }) if d == Duration::MAX),
        "{res:?}"
    );
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_transient() {
    let s = store(&stub(StatusCode::INTERNAL_SERVER_ERROR, vec![], "InternalError").await);
    assert!(
        matches!(s.ensure_ready().await, Err(StateError::Transient(m)) if m.contains("InternalError"))
    );
    // Nothing listens on a port we just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = store(&format!("http://127.0.0.1:{port}/devstoreaccount1"));
    assert!(matches!(
        s.checkpoint(&TenantId::parse("t").unwrap()).await,
        Err(StateError::Transient(_))
    ));
}

#[tokio::test]
async fn permission_mismatch_names_the_role() {
    let s = store(
        &stub(
            StatusCode::FORBIDDEN,
            vec![],
            "AuthorizationPermissionMismatch",
        )
        .await,
    );
    match s
        .put_tenant_health(&TenantId::parse("t").unwrap(), &TenantHealth::default())
        .await
    {
        Err(StateError::Auth(m)) => assert!(
            m.contains("AuthorizationPermissionMismatch")
                && m.contains("Storage Table Data Contributor"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}
