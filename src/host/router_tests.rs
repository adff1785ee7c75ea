use super::plugins::{CycleReport, HttpReply, SyncRunner, WebhookHandler};
use super::*;
use crate::domain::TenantId;
use crate::state::memory::MemoryStateStore;
use crate::state::{StateStore, TenantHealth};
use axum::body::Body;
use axum::http::Request;
use http_body_util_shim::collect;
use serde_json::{Value, json};
use std::sync::Mutex;
use tower::ServiceExt;

const TENANT: &str = "11111111-1111-1111-1111-111111111111";

/// Reads a response body (axum re-exports what is needed; no extra dependency).
mod http_body_util_shim {
    pub async fn collect(body: axum::body::Body) -> Vec<u8> {
        axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("body")
            .to_vec()
    }
}

fn info(timeout: Duration) -> HandlerInfo {
    HandlerInfo {
        version: "test",
        started_at: OffsetDateTime::UNIX_EPOCH,
        tenants: vec![TENANT.into()],
        workspace: SentinelWorkspace {
            subscription_id: "sub".into(),
            resource_group: "rg".into(),
            workspace_name: "ws".into(),
        },
        alert_ingestion: false,
        sentinel_target: "arm",
        function_timeout: timeout,
        schedule: Some("0 */5 * * * *".into()),
    }
}

fn ready(services: Services) -> Router {
    let (state, setup) = HostState::new(info(Duration::from_secs(300)));
    setup.ready(services);
    router(state)
}

async fn post(app: Router, path: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header("content-type", "application/json; charset=utf-8")
        .header(INVOCATION_ID_HEADER, "0f8fad5b-d9cb-469f-a165-70867728950e")
        .body(Body::from(body.to_string()))
        .expect("request");
    let res = app.oneshot(req).await.expect("response");
    let status = res.status();
    let bytes = collect(res.into_body()).await;
    (status, serde_json::from_slice(&bytes).expect("JSON reply"))
}

fn timer() -> Value {
    json!({"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"DefenderSync"}}})
}

fn http_req(method: &str) -> Value {
    json!({"Data":{"req":{"Url":"http://localhost/api/x","Method":method,"Query":{},"Headers":{"Content-Type":["application/json"]},"Params":{}}},"Metadata":{}})
}

#[derive(Default)]
struct RecordingRunner {
    deadlines: Mutex<Vec<tokio::time::Instant>>,
}

#[async_trait::async_trait]
impl SyncRunner for RecordingRunner {
    async fn run_cycle(&self, deadline: tokio::time::Instant) -> CycleReport {
        self.deadlines.lock().expect("lock").push(deadline);
        CycleReport {
            completed: false,
            logs: vec!["graph throttled".into()],
            figures: json!({"written": 3}),
        }
    }
}

struct Echo;

#[async_trait::async_trait]
impl WebhookHandler for Echo {
    async fn handle(
        &self,
        request: payload::HttpRequestData,
        _deadline: tokio::time::Instant,
    ) -> HttpReply {
        HttpReply::json(202, &json!({"body": request.body})).with_log("applied")
    }
}

#[tokio::test]
async fn readiness_answers_and_unknown_functions_get_a_json_404_naming_them() {
    let (state, _setup) = HostState::new(info(Duration::from_secs(300)));
    let res = router(state.clone())
        .oneshot(Request::get("/").body(Body::empty()).expect("req"))
        .await
        .expect("res");
    assert_eq!(res.status(), StatusCode::OK);
    let (status, body) = post(router(state), "/NoSuchFunction", timer()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("NoSuchFunction")
    );
}

#[tokio::test]
async fn defender_sync_without_an_engine_says_so_in_logs() {
    let (status, body) = post(ready(Services::default()), "/DefenderSync", timer()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["Logs"][0]
            .as_str()
            .expect("log")
            .contains("sync engine is not built"),
        "{body}"
    );
    assert_eq!(body["Outputs"], json!({}));
}

#[tokio::test]
async fn defender_sync_runs_the_plugged_engine_with_the_deadline_and_reports_a_failed_cycle_as_200()
{
    let runner = Arc::new(RecordingRunner::default());
    let before = tokio::time::Instant::now();
    let app = ready(Services {
        sync: Some(runner.clone()),
        ..Default::default()
    });
    let (status, body) = post(app, "/DefenderSync", timer()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["ReturnValue"],
        json!({"completed": false, "figures": {"written": 3}})
    );
    let logs = body["Logs"].to_string();
    assert!(
        logs.contains("graph throttled") && logs.contains("did not complete"),
        "{logs}"
    );
    let deadline = runner.deadlines.lock().expect("lock")[0];
    let budget = deadline - before;
    assert!(
        budget < Duration::from_secs(241) && budget > Duration::from_secs(239),
        "{budget:?}"
    );
}

#[tokio::test]
async fn a_bad_envelope_is_answered_200_with_the_error_in_logs_and_400_for_http_functions() {
    let (status, body) = post(
        ready(Services::default()),
        "/DefenderSync",
        json!({"Data":{},"Metadata":{}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["Logs"][0]
            .as_str()
            .expect("log")
            .contains("Data.timer")
    );
    let (status, body) = post(
        ready(Services::default()),
        "/SentinelWebhook",
        json!({"Data":{"req":{"Headers":"x"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["Outputs"]["res"]["statusCode"], 400);
}

#[tokio::test]
async fn the_webhook_answers_501_until_reverse_sync_is_plugged_in() {
    let (_, body) = post(
        ready(Services::default()),
        "/SentinelWebhook",
        http_req("POST"),
    )
    .await;
    assert_eq!(body["Outputs"]["res"]["statusCode"], 501);
    let mut req = http_req("POST");
    req["Data"]["req"]["Body"] = json!("{\"a\":1}");
    let (_, body) = post(
        ready(Services {
            webhook: Some(Arc::new(Echo)),
            ..Default::default()
        }),
        "/SentinelWebhook",
        req,
    )
    .await;
    assert_eq!(body["Outputs"]["res"]["statusCode"], 202);
    assert_eq!(
        body["Outputs"]["res"]["body"],
        "{\"body\":\"{\\\"a\\\":1}\"}"
    );
    assert_eq!(body["Logs"], json!(["applied"]));

    // A large envelope (parsed on a blocking thread) reaches the handler whole.
    let big = "b".repeat(600 * 1024);
    let mut req = http_req("POST");
    req["Data"]["req"]["Body"] = json!(big);
    let (_, body) = post(
        ready(Services {
            webhook: Some(Arc::new(Echo)),
            ..Default::default()
        }),
        "/SentinelWebhook",
        req,
    )
    .await;
    assert_eq!(body["Outputs"]["res"]["statusCode"], 202);
    let echoed: Value =
        serde_json::from_str(body["Outputs"]["res"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["body"], json!(big));
}

#[tokio::test]
async fn sync_health_shows_facts_and_the_stores_tenant_figures() {
    let store = Arc::new(MemoryStateStore::default());
    let tenant = TenantId::parse(TENANT).expect("tenant");
    let figures = TenantHealth {
        incidents_seen: 7,
        last_cycle_completed: true,
        ..Default::default()
    };
    store
        .put_tenant_health(&tenant, &figures)
        .await
        .expect("put");
    let (_, body) = post(
        ready(Services {
            store: Some(store),
            ..Default::default()
        }),
        "/SyncHealth",
        http_req("GET"),
    )
    .await;
    let res = &body["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200);
    assert_eq!(res["headers"]["Content-Type"], "application/json");
    let health: Value = serde_json::from_str(res["body"].as_str().expect("body")).expect("json");
    assert_eq!(health["tenants"], json!([TENANT]));
    assert_eq!(health["workspace"]["workspaceName"], "ws");
    assert_eq!(health["sentinelTarget"], "arm");
    assert_eq!(health["stateStore"], "configured");
    assert_eq!(health["perTenant"][TENANT]["incidents_seen"], 7);
    assert_eq!(health["functionTimeoutSeconds"], 300.0);
}

#[tokio::test]
async fn invocations_wait_for_setup_and_report_its_failure() {
    let (state, setup) = HostState::new(info(Duration::from_secs(300)));
    let app = router(state);
    let call = tokio::spawn(post(app, "/DefenderSync", timer()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    setup.failed("no credential");
    let (status, body) = call.await.expect("join");
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["Logs"][0]
            .as_str()
            .expect("log")
            .contains("no credential"),
        "{body}"
    );
}

/// A handler that must never be reached.
struct Unreachable;

#[async_trait::async_trait]
impl WebhookHandler for Unreachable {
    async fn handle(
        &self,
        _request: payload::HttpRequestData,
        _deadline: tokio::time::Instant,
    ) -> HttpReply {
        HttpReply::json(500, &json!({"error": "the handler was called"}))
    }
}

#[tokio::test]
async fn an_oversized_webhook_envelope_is_answered_413_unparsed_and_other_functions_keep_the_host_limit()
 {
    let services = || Services {
        webhook: Some(Arc::new(Unreachable)),
        ..Default::default()
    };
    let mut req = http_req("POST");
    req["Data"]["req"]["Body"] = json!("x".repeat(WEBHOOK_ENVELOPE_LIMIT));
    let (status, body) = post(ready(services()), "/SentinelWebhook", req.clone()).await;
    assert_eq!(status, StatusCode::OK, "answered through Outputs.res");
    assert_eq!(body["Outputs"]["res"]["statusCode"], 413, "{body}");
    assert!(body["Logs"][0].as_str().expect("log").contains("413"));
    // The same envelope is within the host's limit for another function (SyncHealth ignores it).
    let (status, _) = post(ready(services()), "/SyncHealth", req).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bounded_reads_keep_at_most_the_limit_and_drain_the_rest() {
    let chunks = |n: usize| {
        futures::stream::iter(
            (0..n).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'a'; 1000]))),
        )
    };
    let body = Body::from_stream(chunks(10));
    assert!(matches!(
        read_bounded(body, 10_000, None).await,
        Bounded::Whole(b, None) if b.len() == 10_000
    ));
    let body = Body::from_stream(chunks(10));
    assert!(matches!(
        read_bounded(body, 9_999, None).await,
        Bounded::TooLarge(10_000)
    ));

    // Large bodies share a budget: with room for one, a second waits until the first is done.
    let limit = 1000 * 1000;
    let budget = Arc::new(tokio::sync::Semaphore::new(limit / 1024 + 1));
    let first = read_bounded(Body::from_stream(chunks(400)), limit, Some(budget.clone())).await;
    let Bounded::Whole(b, Some(permit)) = first else {
        panic!("a large body takes a share of the budget");
    };
    assert_eq!(b.len(), 400_000);
    let second = tokio::spawn(read_bounded(
        Body::from_stream(chunks(400)),
        limit,
        Some(budget.clone()),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !second.is_finished(),
        "the second large body waits for the budget"
    );
    drop(permit);
    assert!(matches!(
        second.await.expect("join"),
        Bounded::Whole(b, Some(_)) if b.len() == 400_000
    ));
    // A small body never asks.
    let small = read_bounded(Body::from_stream(chunks(10)), limit, Some(budget)).await;
    assert!(matches!(small, Bounded::Whole(_, None)));
}

#[tokio::test]
async fn past_the_bound_the_kept_bytes_and_the_budget_are_given_back_before_the_rest_is_read() {
    let limit = 1000 * 1000;
    let budget = Arc::new(tokio::sync::Semaphore::new(limit / 1024 + 1));
    let full = budget.available_permits();
    // The body passes the bound, then stalls: the rest has not arrived yet.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let read = tokio::spawn(read_bounded(
        Body::from_stream(stream),
        limit,
        Some(budget.clone()),
    ));
    tx.send(Ok(bytes::Bytes::from(vec![b'a'; 600_000])))
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        budget.available_permits() < full,
        "a large body holds its share"
    );
    tx.send(Ok(bytes::Bytes::from(vec![b'a'; 600_000])))
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!read.is_finished(), "the rest is still being read");
    assert_eq!(
        budget.available_permits(),
        full,
        "over the bound: the share is back while the rest is drained"
    );
    tx.send(Ok(bytes::Bytes::from(vec![b'a'; 10])))
        .await
        .expect("send");
    drop(tx);
    assert!(matches!(
        read.await.expect("join"),
        Bounded::TooLarge(1_200_010)
    ));
}
