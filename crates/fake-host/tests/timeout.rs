//! The fake host enforces functionTimeout as the host does: SIGKILL and restart.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use dss_fake_host::{FakeHost, FakeHostError, HandlerSpec, TimerCall};
use std::time::Duration;

fn app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp");
    for name in ["Slow", "Fast"] {
        let f = dir.path().join(name);
        std::fs::create_dir_all(&f).expect("mkdir");
        let def = r#"{"bindings":[{"name":"timer","type":"timerTrigger","direction":"in","schedule":"0 * * * * *"}]}"#;
        std::fs::write(f.join("function.json"), def).expect("write");
    }
    dir
}

#[tokio::test]
async fn an_invocation_past_function_timeout_kills_and_restarts_the_handler() {
    let dir = app();
    let spec = HandlerSpec::new(env!("CARGO_BIN_EXE_stub_handler"), dir.path(), dir.path());
    let mut host = FakeHost::start(spec).await.expect("stub starts");
    let first_pid = host.pid();
    let envelope = host
        .timer_envelope("Slow", &TimerCall::default())
        .expect("envelope");
    let result = host
        .invoke_enforcing_timeout("Slow", &envelope, Duration::from_millis(300))
        .await;
    assert!(
        matches!(result, Err(FakeHostError::TimedOut(_))),
        "{result:?}"
    );
    assert_ne!(host.pid(), first_pid, "a new handler process");
    let reply = host
        .invoke_timer("Fast", &TimerCall::default())
        .await
        .expect("the new handler answers");
    assert_eq!(reply.logs, vec!["stub".to_owned()]);
}
