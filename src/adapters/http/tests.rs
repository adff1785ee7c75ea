use super::*;
use reqwest::header::{HeaderName, HeaderValue};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn retryable_statuses_are_exactly_the_azure_default_set() {
    for code in [408u16, 429, 500, 502, 503, 504] {
        let s = StatusCode::from_u16(code).unwrap();
        assert!(
            matches!(classify(s, &HeaderMap::new()), RetryAction::Retry { .. }),
            "{code}"
        );
    }
    for code in [400u16, 401, 403, 404, 409, 413, 501] {
        assert_eq!(
            classify(StatusCode::from_u16(code).unwrap(), &HeaderMap::new()),
            RetryAction::DontRetry,
            "{code}"
        );
    }
    assert_eq!(
        classify(StatusCode::NO_CONTENT, &HeaderMap::new()),
        RetryAction::Success
    );
}

#[test]
fn fractional_retry_after_seconds_are_kept() {
    let h = headers(&[("Retry-After", "2.128")]);
    assert_eq!(
        classify(StatusCode::TOO_MANY_REQUESTS, &h),
        RetryAction::Retry {
            retry_after: Some(RetryAfter::After(Duration::from_millis(2128)))
        }
    );
}

#[test]
fn millisecond_headers_win_over_retry_after() {
    let h = headers(&[("Retry-After", "10"), ("retry-after-ms", "250")]);
    assert_eq!(
        parse_retry_after(&h),
        Some(RetryAfter::After(Duration::from_millis(250)))
    );
    let h = headers(&[("x-ms-retry-after-ms", "1500")]);
    assert_eq!(
        parse_retry_after(&h),
        Some(RetryAfter::After(Duration::from_millis(1500)))
    );
}

/// Found by fuzzing (logs_response): `Duration::from_secs_f64` panicked on a hint too large
/// for a `Duration`. Such a hint is the longest wait, so the caller gives up for this cycle.
#[test]
fn a_hint_too_large_for_a_duration_is_the_longest_wait_not_a_panic() {
    for (name, value) in [
        ("Retry-After", "1e300"),
        (
            "retry-after-ms",
            "6008888888888888888888888888888888888888888888888888888888",
        ),
        ("x-ms-retry-after-ms", "1e300"),
    ] {
        let h = headers(&[(name, value)]);
        assert_eq!(
            parse_retry_after(&h),
            Some(RetryAfter::After(Duration::MAX)),
            "{name}: {value}"
        );
    }
    assert!(!RetryPolicy::default().may_retry(1, Some(Duration::MAX)));
    for bad in ["-1", "NaN", "inf", "1e400"] {
        let h = headers(&[("Retry-After", bad)]);
        assert_eq!(parse_retry_after(&h), None, "{bad}");
    }
}

#[test]
fn http_date_retry_after_is_an_absolute_time() {
    let h = headers(&[("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")]);
    let Some(RetryAfter::At(at)) = parse_retry_after(&h) else {
        panic!("not a date")
    };
    let before = at - Duration::from_secs(5);
    assert_eq!(RetryAfter::At(at).remaining(before), Duration::from_secs(5));
    assert_eq!(
        RetryAfter::At(at).remaining(at + Duration::from_secs(1)),
        Duration::ZERO
    );
}

#[test]
fn garbage_or_negative_retry_after_is_ignored() {
    assert_eq!(
        parse_retry_after(&headers(&[("Retry-After", "soon")])),
        None
    );
    assert_eq!(parse_retry_after(&headers(&[("Retry-After", "-3")])), None);
}

#[test]
fn delay_is_max_of_server_hint_and_jittered_backoff() {
    let p = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(8),
        ..Default::default()
    };
    // Full jitter: 0 gives no wait, 1 (exclusive bound, clamped) the whole backoff.
    assert_eq!(p.delay(1, None, 0.0), Duration::ZERO);
    assert_eq!(p.delay(1, None, 1.0), Duration::from_secs(1));
    assert_eq!(p.delay(3, None, 1.0), Duration::from_secs(4));
    assert_eq!(
        p.delay(10, None, 1.0),
        Duration::from_secs(8),
        "capped at max_delay"
    );
    assert_eq!(p.delay(3, None, 0.5), Duration::from_secs(2));
    // The server's hint is a floor.
    assert_eq!(
        p.delay(1, Some(Duration::from_millis(2128)), 0.5),
        Duration::from_millis(2128)
    );
    assert_eq!(
        p.delay(4, Some(Duration::from_millis(100)), 1.0),
        Duration::from_secs(8)
    );
}

#[test]
fn attempts_are_bounded_and_long_hints_go_back_to_the_caller() {
    let p = RetryPolicy {
        max_attempts: 3,
        max_wait: Duration::from_secs(60),
        ..Default::default()
    };
    assert!(p.may_retry(1, None));
    assert!(p.may_retry(2, Some(Duration::from_secs(60))));
    assert!(!p.may_retry(3, None));
    assert!(!p.may_retry(1, Some(Duration::from_secs(61))));
}

#[test]
fn transport_errors_retry_writes_only_when_never_sent() {
    assert!(transport_retryable(true, false));
    assert!(transport_retryable(false, true));
    assert!(!transport_retryable(false, false));
}

#[test]
fn error_envelope_is_read_or_body_kept() {
    let (code, msg) =
        parse_error_envelope(r#"{"error":{"code":"Conflict","message":"New version exists"}}"#);
    assert_eq!(code.as_deref(), Some("Conflict"));
    assert_eq!(msg, "New version exists");
    let (code, msg) = parse_error_envelope("upstream exploded");
    assert_eq!(code, None);
    assert_eq!(msg, "upstream exploded");
}

#[test]
fn join_keeps_a_base_path_and_encodes_segments() {
    let base = Url::parse("http://127.0.0.1:8080/graph/").unwrap();
    assert_eq!(
        join(&base, &["v1.0", "users", "a#EXT#@b.com"]).as_str(),
        "http://127.0.0.1:8080/graph/v1.0/users/a%23EXT%23@b.com"
    );
    let root = Url::parse("https://graph.microsoft.com").unwrap();
    assert_eq!(
        join(&root, &["v1.0", "security"]).as_str(),
        "https://graph.microsoft.com/v1.0/security"
    );
}

#[test]
fn query_uses_percent_twenty_and_keeps_dollar_names() {
    let url = with_query(
        Url::parse("https://h/x").unwrap(),
        &[("$filter", "a ge 2024-01-01T00:00:00Z"), ("$top", "50")],
    );
    assert_eq!(
        url.as_str(),
        "https://h/x?$filter=a%20ge%202024-01-01T00%3A00%3A00Z&$top=50"
    );
}

#[test]
fn same_origin_compares_scheme_host_and_port() {
    let base = Url::parse("https://graph.microsoft.com").unwrap();
    assert!(same_origin(
        &base,
        &Url::parse("https://GRAPH.microsoft.com:443/v1.0/x?$skip=50").unwrap()
    ));
    assert!(!same_origin(
        &base,
        &Url::parse("https://evil.example/v1.0/x").unwrap()
    ));
    assert!(!same_origin(
        &base,
        &Url::parse("http://graph.microsoft.com/v1.0/x").unwrap()
    ));
    assert!(!same_origin(
        &base,
        &Url::parse("https://graph.microsoft.com:8443/x").unwrap()
    ));
}

#[tokio::test]
async fn token_bucket_allows_the_burst_then_paces() {
    let l = token_bucket(3, 1000.0);
    for _ in 0..3 {
        assert!(l.check().is_ok());
    }
    assert!(l.check().is_err(), "burst exhausted");
    let t = per_tenant_per_minute(2);
    let a = TenantId::parse("a").unwrap();
    let b = TenantId::parse("b").unwrap();
    assert!(t.check_key(&a).is_ok() && t.check_key(&a).is_ok());
    assert!(t.check_key(&a).is_err());
    assert!(t.check_key(&b).is_ok(), "each tenant has its own budget");
}

#[tokio::test]
async fn a_429_holds_its_whole_budget_until_the_retry_after_and_no_other() {
    let holds = Holds::default();
    let graph = per_tenant_per_minute(150);
    let a = TenantId::parse("11111111-1111-1111-1111-111111111111").unwrap();
    let b = TenantId::parse("22222222-2222-2222-2222-222222222222").unwrap();
    let key_a = Limit::Tenant(&graph, &a).budget().unwrap();
    let key_b = Limit::Tenant(&graph, &b).budget().unwrap();
    assert!(Limit::None.budget().is_none());
    holds.hold(key_a.clone(), Duration::from_millis(300));
    // A shorter hint met later by another call does not shorten the hold.
    holds.hold(key_a.clone(), Duration::from_millis(50));
    let t0 = tokio::time::Instant::now();
    holds.wait(&key_b).await;
    assert!(
        t0.elapsed() < Duration::from_millis(50),
        "another tenant's budget is not held"
    );
    holds.wait(&key_a).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    let t1 = tokio::time::Instant::now();
    holds.wait(&key_a).await;
    assert!(t1.elapsed() < Duration::from_millis(50), "the hold ends");
}
