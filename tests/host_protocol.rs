//! The handler driven through the fake Functions host, as the real host drives it.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

mod support;

use defender_sentinel_sync::host::FIGURES_PREFIX;
use dss_fake_host::{FakeHost, FirstRun, HttpCall, QueryForm, TimerCall, expect_startup_failure};
use serde_json::{Value, json};

#[tokio::test]
async fn a_failed_cycle_is_a_successful_invocation_with_its_outcome_in_logs_and_return_value() {
    // Every upstream points at a closed loopback port: the cycle cannot complete.
    let app = support::staged_app();
    let host = FakeHost::start(support::spec(app.path()))
        .await
        .expect("handler starts");
    let reply = host
        .invoke_timer("DefenderSync", &TimerCall::default())
        .await
        .expect("valid reply");
    assert!(
        reply.logs.iter().any(|l| l.contains("NOT completed")),
        "{:?}",
        reply.logs
    );
    assert!(
        reply.logs.iter().any(|l| l.starts_with("error:")),
        "{:?}",
        reply.logs
    );
    assert_eq!(reply.return_value["completed"], false);
    // DefenderSync declares no `$return` binding, so the host drops ReturnValue: the outcome
    // must be in the logs the host records.
    assert_eq!(reply.recorded_return_value, None);
    let logged = reply
        .logs
        .iter()
        .find_map(|l| l.strip_prefix(FIGURES_PREFIX))
        .unwrap_or_else(|| panic!("no outcome line in {:?}", reply.logs));
    let logged: Value = serde_json::from_str(logged).expect("the outcome line is JSON");
    assert_eq!(logged, reply.return_value);
    let past_due = TimerCall {
        is_past_due: true,
        schedule_status: Some(FirstRun),
    };
    let reply = host
        .invoke_timer("DefenderSync", &past_due)
        .await
        .expect("valid reply");
    assert!(
        reply.logs.iter().any(|l| l.contains("past due")),
        "{:?}",
        reply.logs
    );

    let out = host.output();
    let tagged = out
        .stdout
        .iter()
        .any(|l| l.contains(&reply.invocation_id) && l.contains("DefenderSync"));
    assert!(
        tagged,
        "no stdout line carries invocation id {}:\n{}",
        reply.invocation_id,
        out.stdout.join("\n")
    );
    assert!(
        out.stderr.is_empty(),
        "stderr is recorded as errors by the host: {:?}",
        out.stderr
    );
}

#[tokio::test]
async fn the_webhook_answers_through_res_for_both_query_forms_with_or_without_a_body() {
    let app = support::staged_app();
    let host = FakeHost::start(support::spec(app.path()))
        .await
        .expect("handler starts");
    let base = HttpCall::new("POST")
        .query("code", "function-key")
        .header("Content-Type", "application/json")
        .header("X-Sync-Secret", support::WEBHOOK_SECRET)
        .body(r#"{"object":{}}"#);
    for (call, reason) in [
        (base.clone(), "`object.id`"),
        (
            base.clone().query_form(QueryForm::JsonString),
            "`object.id`",
        ),
        (
            HttpCall {
                caller_chunked: true,
                ..base.clone()
            },
            "empty",
        ),
        (
            HttpCall {
                headers: vec![("Content-Type".into(), "application/json".into())],
                ..base.clone()
            },
            "no credentials",
        ),
    ] {
        let res = host
            .invoke_http("SentinelWebhook", &call)
            .await
            .expect("valid reply");
        let status = if reason == "no credentials" { 401 } else { 400 };
        assert_eq!(res.status, status, "{res:?}");
        assert_eq!(
            res.headers.get("Content-Type").map(String::as_str),
            Some("application/json")
        );
        assert!(
            res.json().expect("json")["error"]
                .as_str()
                .expect("error")
                .contains(reason),
            "{res:?}"
        );
    }
    let out = host.output().stdout.join("\n");
    assert!(
        !out.contains("function-key"),
        "the function key must never be logged"
    );
    assert!(
        !out.contains(support::WEBHOOK_SECRET),
        "the webhook secret must never be logged"
    );
}

#[tokio::test]
async fn sync_health_reports_configuration_without_secrets() {
    let app = support::staged_app();
    let host = FakeHost::start(support::spec(app.path()))
        .await
        .expect("handler starts");
    let res = host
        .invoke_http("SyncHealth", &HttpCall::new("GET"))
        .await
        .expect("valid reply");
    assert_eq!(res.status, 200);
    let body = res.json().expect("json");
    assert_eq!(body["tenants"], json!([support::TENANT]));
    assert_eq!(body["workspace"]["workspaceName"], "law-sec");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        body["startedAt"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{body}"
    );
    assert_eq!(
        body["functionTimeoutSeconds"], 600.0,
        "host.json of the app root sets 00:10:00"
    );
    assert_eq!(body["setup"], "ready");
    assert_eq!(body["stateStore"], "configured", "SYNC_STATE_STORE=memory");
    assert_eq!(
        body["perTenant"],
        json!({ support::TENANT: null }),
        "no cycle has run yet"
    );
    assert!(!res.body.contains(support::WEBHOOK_SECRET));
    // SyncHealth accepts GET only; the fake host refuses what the host would.
    assert!(
        host.invoke_http("SyncHealth", &HttpCall::new("POST"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_function_timeout_override_reaches_the_handler() {
    let app = support::staged_app();
    let spec =
        support::spec(app.path()).setting("AzureFunctionsJobHost__functionTimeout", "00:00:04");
    let host = FakeHost::start(spec).await.expect("handler starts");
    let res = host
        .invoke_http("SyncHealth", &HttpCall::new("GET"))
        .await
        .expect("valid reply");
    assert_eq!(res.json().expect("json")["functionTimeoutSeconds"], 4.0);
}

#[tokio::test]
async fn bad_envelopes_and_unknown_functions_are_answered_as_the_protocol_says() {
    let app = support::staged_app();
    let host = FakeHost::start(support::spec(app.path()))
        .await
        .expect("handler starts");
    let raw = host
        .post_raw("NoSuchFunction", b"{}".to_vec())
        .await
        .expect("answer");
    assert_eq!(raw.status, 404);
    let body: Value = serde_json::from_slice(&raw.body).expect("json 404");
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("NoSuchFunction")
    );

    let reply = host
        .invoke("DefenderSync", &json!({"Data": {}, "Metadata": {}}))
        .await
        .expect("200 with logs");
    assert!(reply.logs[0].contains("Data.timer"), "{:?}", reply.logs);
    let raw = host
        .post_raw("SentinelWebhook", b"not json".to_vec())
        .await
        .expect("answer");
    assert_eq!(raw.status, 200);
    let body: Value = serde_json::from_slice(&raw.body).expect("json");
    assert_eq!(body["Outputs"]["res"]["statusCode"], 400);
}

#[tokio::test]
async fn a_sigkilled_handler_is_restarted_and_answers_again() {
    let app = support::staged_app();
    let mut host = FakeHost::start(support::spec(app.path()))
        .await
        .expect("handler starts");
    let (old_pid, old_port) = (host.pid(), host.port().expect("port"));
    host.kill().await.expect("killed");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", old_port)).is_err(),
        "the killed handler still listens"
    );
    assert!(
        host.invoke_timer("DefenderSync", &TimerCall::default())
            .await
            .is_err()
    );
    host.restart().await.expect("restarted");
    assert_ne!(host.pid(), old_pid);
    let reply = host
        .invoke_timer("DefenderSync", &TimerCall::default())
        .await
        .expect("valid reply after restart");
    assert!(!reply.logs.is_empty());
}

#[tokio::test]
async fn serve_with_missing_settings_exits_non_zero_naming_each() {
    let app = support::staged_app();
    let mut spec = support::spec(app.path());
    spec.env.remove("AZURE_TENANT_ID");
    spec.env.remove("SENTINEL_WORKSPACE_NAME");
    spec.env
        .insert("GRAPH_ENDPOINT".into(), "http://graph.example.com".into());
    let (status, out) = expect_startup_failure(spec).await.expect("startup fails");
    assert!(!status.contains("exit status: 0"), "{status}");
    for name in [
        "AZURE_TENANT_ID",
        "SENTINEL_WORKSPACE_NAME",
        "GRAPH_ENDPOINT",
    ] {
        assert_eq!(
            out.stderr.iter().filter(|l| l.contains(name)).count(),
            1,
            "{name} not named on one line: {:?}",
            out.stderr
        );
    }
}
