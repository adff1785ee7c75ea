use crate::common::*;
use dss_simulators::{Api, BucketSpec, Fault, FaultPlan, FaultScope, SimConfig, ThrottleConfig};
use reqwest::{Method, StatusCode};
use std::time::{Duration, Instant};

fn tiny() -> ThrottleConfig {
    let b = Some(BucketSpec {
        capacity: 3.0,
        refill_per_sec: 0.5,
    });
    ThrottleConfig {
        graph: b,
        arm_reads: b,
        arm_writes: Some(BucketSpec {
            capacity: 2.0,
            refill_per_sec: 0.5,
        }),
        logs: b,
    }
}

#[tokio::test]
async fn real_limits_scale_down() {
    let s = ThrottleConfig::real().scaled(0.1);
    assert_eq!(
        s.graph,
        Some(BucketSpec {
            capacity: 15.0,
            refill_per_sec: 0.25
        })
    );
    assert_eq!(
        ThrottleConfig::real().arm_writes,
        Some(BucketSpec {
            capacity: 200.0,
            refill_per_sec: 10.0
        })
    );
}

#[tokio::test]
async fn graph_throttles_per_app_per_tenant_with_fractional_retry_after() {
    let env = start().await;
    env.sims.set_throttle(tiny());
    for _ in 0..3 {
        assert_eq!(
            env.graph(Method::GET, "/v1.0/security/incidents", T1, None)
                .await
                .status,
            StatusCode::OK
        );
    }
    let r = env
        .graph(Method::GET, "/v1.0/security/incidents", T1, None)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["error"]["code"], "TooManyRequests");
    assert_eq!(r.body["error"]["message"], "Please retry again later.");
    let ra = r.headers["retry-after"].to_str().unwrap();
    assert!(ra.contains('.'), "fractional: {ra}");
    assert!(ra.parse::<f64>().unwrap() > 0.0);
    assert_eq!(
        env.graph(Method::GET, "/v1.0/security/incidents", T2, None)
            .await
            .status,
        StatusCode::OK,
        "other tenant, other bucket"
    );
    assert_eq!(
        env.graph(Method::GET, "/v1.0/users/admin@contoso.com", T1, None)
            .await
            .status,
        StatusCode::OK,
        "users: not the /security budget"
    );
    assert!(env.sims.counters().op("graph", "GET incidents").throttled >= 1);
}

#[tokio::test]
async fn arm_writes_and_reads_have_separate_buckets_and_throttling_can_be_off() {
    let env = start().await;
    env.sims.set_throttle(tiny());
    for _ in 0..2 {
        assert!(
            env.arm(
                Method::PUT,
                &format!("/{}", new_name()),
                Some(&minimal_incident("w"))
            )
            .await
            .status
            .is_success()
        );
    }
    let r = env
        .arm(
            Method::PUT,
            &format!("/{}", new_name()),
            Some(&minimal_incident("w")),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let ra: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(ra >= 1);
    assert_eq!(
        env.arm(Method::GET, "", None).await.status,
        StatusCode::OK,
        "reads unaffected"
    );
    env.sims.set_throttle(ThrottleConfig::off());
    for _ in 0..10 {
        assert!(
            env.arm(
                Method::PUT,
                &format!("/{}", new_name()),
                Some(&minimal_incident("w"))
            )
            .await
            .status
            .is_success()
        );
    }
}

#[tokio::test]
async fn exact_fault_sequences_then_normal_service() {
    let env = start().await;
    env.sims.set_faults(
        Api::Graph,
        FaultPlan::sequence([
            Fault::InternalError,
            Fault::ServiceUnavailable,
            Fault::TooManyRequests { retry_after: 1.5 },
            Fault::Pass,
        ]),
    );
    let mut got = Vec::new();
    for _ in 0..5 {
        let r = env
            .graph(Method::GET, "/v1.0/security/incidents", T1, None)
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.headers["retry-after"], "1.500");
        }
        got.push(r.status.as_u16());
    }
    assert_eq!(got, [500, 503, 429, 200, 200]);
}

#[tokio::test]
async fn reset_drops_the_connection_and_after_apply_faults_still_write() {
    let env = start().await;
    env.sims.set_faults(
        Api::Arm,
        FaultPlan::sequence([
            Fault::Reset,
            Fault::InternalErrorAfterApply,
            Fault::ResetAfterApply,
        ])
        .scoped(FaultScope::Writes),
    );
    let url = |n: &str| format!("{}/{n}?api-version=2024-03-01", env.incidents_url());
    let send = |n: String| {
        let env = &env;
        let u = url(&n);
        async move {
            env.http
                .put(u)
                .bearer_auth(env.token(ARM, T1))
                .json(&minimal_incident("f"))
                .send()
                .await
        }
    };
    let (a, b, c) = (new_name(), new_name(), new_name());
    assert!(send(a.clone()).await.is_err(), "connection reset");
    assert!(env.sims.sentinel_incident(&a).is_none(), "not applied");
    assert_eq!(
        send(b.clone()).await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(
        env.sims.sentinel_incident(&b).is_some(),
        "applied before the 500"
    );
    assert!(send(c.clone()).await.is_err());
    assert!(
        env.sims.sentinel_incident(&c).is_some(),
        "applied before the reset"
    );
    assert_eq!(
        send(new_name()).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        env.sims.counters().op("arm", "PUT incidents/{id}").resets,
        2
    );
}

/// Slow answers (a plan's `slow_ms` at `slow_rate`) are delayed, answered, and counted.
#[tokio::test]
async fn slow_answers_are_delayed_and_counted() {
    let env = start().await;
    env.sims.set_faults(
        Api::Graph,
        FaultPlan::default().with_slow(Duration::from_millis(120), 1.0),
    );
    let t = Instant::now();
    let r = env
        .graph(Method::GET, "/v1.0/security/incidents", T1, None)
        .await;
    assert!(t.elapsed() >= Duration::from_millis(120));
    assert_eq!(r.status.as_u16(), 200, "slow, then answered");
    let c = env.sims.counters().op("graph", "GET incidents");
    assert_eq!((c.slowed, c.ok), (1, 1));
}

#[tokio::test]
async fn latency_is_added_and_seeded_rates_replay() {
    let env = start().await;
    env.sims.set_faults(
        Api::Graph,
        FaultPlan::default().with_latency(Duration::from_millis(150)),
    );
    let t = Instant::now();
    env.graph(Method::GET, "/v1.0/security/incidents", T1, None)
        .await;
    assert!(t.elapsed() >= Duration::from_millis(150));
    let mut runs = Vec::new();
    for _ in 0..2 {
        let env = start_with(SimConfig {
            fault_seed: 99,
            throttle: ThrottleConfig::off(),
            ..SimConfig::default()
        })
        .await;
        env.sims
            .set_faults(Api::Graph, FaultPlan::rate(Fault::ServiceUnavailable, 0.4));
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(
                env.graph(Method::GET, "/v1.0/security/incidents", T1, None)
                    .await
                    .status
                    .as_u16(),
            );
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&503) && runs[0].contains(&200));
}
