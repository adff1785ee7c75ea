//! Throttling, injected faults, a crash mid-cycle, the deadline and concurrent replays: each
//! converges with no duplicates, then idles.

use super::invariants::*;
use super::{one_tenant, seed_with_comments};
use dss_simulators::{Api, BucketSpec, Fault, FaultPlan, FaultScope, ThrottleConfig, wellknown};
use serde_json::Value;
use std::time::{Duration, Instant};

const T: &str = wellknown::TENANT_ID;

/// Azure's throttling shapes (token buckets; Graph's fractional and ARM's whole-second
/// Retry-After), with buckets small enough to be hit by a few dozen incidents in a test.
fn tight_throttle() -> ThrottleConfig {
    ThrottleConfig {
        graph: Some(BucketSpec {
            capacity: 1.0,
            refill_per_sec: 2.0,
        }),
        arm_reads: Some(BucketSpec {
            capacity: 10.0,
            refill_per_sec: 10.0,
        }),
        arm_writes: Some(BucketSpec {
            capacity: 6.0,
            refill_per_sec: 6.0,
        }),
        logs: Some(BucketSpec {
            capacity: 1.0,
            refill_per_sec: 1.0,
        }),
    }
}

fn sum_throttled(reply: &Value) -> u64 {
    ["graph", "arm", "logs"]
        .iter()
        .filter_map(|api| reply["figures"]["calls"][api]["throttled"].as_u64())
        .sum()
}

#[tokio::test]
async fn throttling_429s_are_honoured_counted_and_the_cycle_converges() {
    let w = one_tenant(&[]).await;
    w.sims.set_throttle(tight_throttle());
    seed_with_comments(&w.sims, 24, 51, 2);
    let replies = sync_until_complete(&w, 4).await;
    let last = replies.last().unwrap();
    let c = w.sims.counters();
    let arm_429: u64 = c.by_api["arm"].values().map(|o| o.throttled).sum();
    let arm_ok: u64 = c.by_api["arm"].values().map(|o| o.ok).sum();
    let all_429: u64 = c
        .by_api
        .values()
        .flat_map(|m| m.values())
        .map(|o| o.throttled)
        .sum();
    assert!(arm_429 > 0, "ARM throttled: {:?}", c.by_api["arm"]);
    let graph_429: u64 = c.by_api["graph"].values().map(|o| o.throttled).sum();
    assert!(
        graph_429 > 0,
        "Graph throttled (fractional Retry-After): {:?}",
        c.by_api["graph"]
    );
    // Retry-After honoured: a client that ignored it would meet far more 429s than successes.
    assert!(arm_429 < arm_ok, "429s {arm_429} vs successes {arm_ok}");
    assert_eq!(
        sum_throttled(last),
        all_429,
        "the reply's call figures count every 429 the handler met: {last}"
    );
    // The Sentinel poll runs after the tenant in every cycle: its 429s are its own figure.
    let poll = |r: &Value| {
        r["figures"]["reverse"]["throttled"]
            .as_u64()
            .unwrap_or_else(|| panic!("no poll figure in {r}"))
    };
    let per_cycle: u64 = replies
        .iter()
        .map(|r| figure(r, "throttled") + poll(r))
        .sum();
    assert_eq!(
        per_cycle, all_429,
        "each cycle's tenant figure and the poll's count their 429s: {replies:?}"
    );
    let health = w.health().await;
    assert_eq!(
        health["perTenant"][T]["throttled_calls"].as_u64(),
        Some(figure(last, "throttled")),
        "SyncHealth: {health}"
    );

    assert_converged(&w, &[T]);
    assert_rows(&w, &[T], false);
    assert_checkpoint(&w, T).await;
    assert_idle(&w).await;
}

#[tokio::test]
async fn seeded_500s_503s_resets_and_writes_applied_before_a_500_converge_without_duplicates() {
    let w = one_tenant(&[("SYNC_RETRY_BACKOFF_SECONDS", "0")]).await;
    w.sims.reseed_faults(7);
    seed_with_comments(&w.sims, 24, 61, 3);
    let rates = |list: Vec<(Fault, f64)>| FaultPlan {
        rates: list,
        ..FaultPlan::default()
    };
    // ARM writes: the first one is applied and then answered 500 for sure, then seeded rates.
    let arm = FaultPlan {
        sequence: [
            Fault::InternalErrorAfterApply,
            Fault::Pass,
            Fault::ResetAfterApply,
        ]
        .into(),
        ..rates(vec![
            (Fault::InternalErrorAfterApply, 0.12),
            (Fault::InternalError, 0.05),
            (Fault::ServiceUnavailable, 0.05),
            (Fault::Reset, 0.04),
            (Fault::ResetAfterApply, 0.04),
        ])
    };
    w.sims.set_faults(Api::Arm, arm.scoped(FaultScope::Writes));
    w.sims.set_faults(
        Api::Graph,
        rates(vec![
            (Fault::ServiceUnavailable, 0.08),
            (Fault::Reset, 0.04),
        ]),
    );
    w.sims.set_faults(
        Api::Logs,
        rates(vec![
            (Fault::InternalErrorAfterApply, 0.2),
            (Fault::ServiceUnavailable, 0.1),
        ]),
    );
    for _ in 0..2 {
        w.sync().await;
    }
    let c = w.sims.counters();
    let faults: u64 = c
        .by_api
        .values()
        .flat_map(|m| m.values())
        .map(|o| o.server_errors + o.resets)
        .sum();
    assert!(faults > 0, "faults were injected: {:?}", c.by_api);
    assert!(
        c.op("arm", "PUT incidents/{id}").server_errors > 0,
        "an incident PUT was applied and answered 500: {:?}",
        c.by_api["arm"]
    );

    for api in [Api::Arm, Api::Graph, Api::Logs] {
        w.sims.set_faults(api, FaultPlan::default());
    }
    sync_until_complete(&w, 3).await;
    assert_converged(&w, &[T]);
    assert_rows(&w, &[T], true);
    assert_checkpoint(&w, T).await;
    assert_idle(&w).await;
}

#[tokio::test]
async fn sigkill_mid_cycle_then_restart_duplicates_nothing_and_loses_nothing() {
    let mut w = one_tenant(&[]).await;
    let n = 40;
    seed_with_comments(&w.sims, n, 71, 2);
    w.sims.set_faults(
        Api::Arm,
        FaultPlan::default().with_latency(Duration::from_millis(150)),
    );
    let running = w.spawn_sync();
    // Kill once the cycle is well under way (some incidents and comments written, not all).
    let waited = Instant::now();
    while w.sims.sentinel_incidents().len() < n / 4 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the cycle never got going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done_before_kill = w.sims.sentinel_incidents().len();
    w.host.kill().await.unwrap();
    assert!(
        running.await.unwrap().is_err(),
        "the invocation died with the handler"
    );
    assert!(
        done_before_kill < n,
        "killed mid-cycle ({done_before_kill} of {n} done)"
    );
    println!("killed with {done_before_kill} of {n} Sentinel incidents written");

    w.host.restart().await.unwrap();
    w.sims.set_faults(Api::Arm, FaultPlan::default());
    sync_until_complete(&w, 2).await;
    assert_converged(&w, &[T]);
    assert_rows(&w, &[T], true);
    assert_checkpoint(&w, T).await;
    assert_idle(&w).await;
}

#[tokio::test]
async fn a_short_function_timeout_stops_the_cycle_cleanly_and_later_cycles_finish() {
    let mut w = one_tenant(&[("AzureFunctionsJobHost__functionTimeout", "00:00:10")]).await;
    // Enough work that one 10 s invocation cannot finish it: 200 incidents × 2 ARM calls
    // (incident, comment) of 700 ms each, 8 at a time per page and 3 pages at a time ≈ 12 s.
    let n = 200;
    seed_with_comments(&w.sims, n, 81, 1);
    w.sims.set_faults(
        Api::Arm,
        FaultPlan::default().with_latency(Duration::from_millis(700)),
    );
    let envelope = w
        .host
        .timer_envelope("DefenderSync", &dss_fake_host::TimerCall::default())
        .unwrap();
    let pid = w.host.pid();
    let started = Instant::now();
    let reply = w
        .host
        .invoke_enforcing_timeout("DefenderSync", &envelope, Duration::from_secs(10))
        .await;
    let reply = reply
        .expect("the handler answers before the host's timeout")
        .return_value;
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "stopped before the deadline: {:?}",
        started.elapsed()
    );
    assert_eq!(reply["completed"], false, "{reply}");
    assert_eq!(w.host.pid(), pid, "the host never had to kill the handler");
    let partial = w.sims.sentinel_incidents().len();
    assert!(
        partial > 0 && partial < n,
        "some work done, not all: {partial}"
    );

    let mut cycles = 1;
    loop {
        let r = w
            .host
            .invoke_enforcing_timeout("DefenderSync", &envelope, Duration::from_secs(10))
            .await;
        let r = r.expect("never killed").return_value;
        cycles += 1;
        if r["completed"] == true {
            break;
        }
        assert!(cycles < 6, "the work finishes in a few cycles: {r}");
    }
    w.sims.set_faults(Api::Arm, FaultPlan::default());
    assert_converged(&w, &[T]);
    assert_rows(&w, &[T], true);
    assert_checkpoint(&w, T).await;
    assert_idle(&w).await;
}

#[tokio::test]
async fn two_concurrent_invocations_of_the_same_cycle_duplicate_nothing_and_converge() {
    let w = one_tenant(&[]).await;
    seed_with_comments(&w.sims, 30, 91, 2);
    let (a, b) = tokio::join!(w.sync(), w.sync());
    for r in [&a, &b] {
        assert!(
            r.return_value["figures"]["tenants"][0]["written"]
                .as_u64()
                .is_some(),
            "{:?}",
            r.return_value
        );
    }
    sync_until_complete(&w, 2).await;
    assert_converged(&w, &[T]);
    assert_rows(&w, &[T], true);
    assert_checkpoint(&w, T).await;
    assert_idle(&w).await;
}
