use crate::common::*;
use defender_sentinel_sync::adapters::graph::GraphClient;
use defender_sentinel_sync::config::ClientLimits;
use defender_sentinel_sync::credentials::scopes;
use defender_sentinel_sync::domain::*;
use defender_sentinel_sync::ports::{
    Classify, DefenderApi, DefenderPatch, ErrorClass, IncidentWindow,
};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::macros::datetime;

const T: &str = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c";
const USERS_T: &str = "11111111-2222-3333-4444-555555555555";

fn client(mock: &Mock) -> GraphClient {
    GraphClient::new(
        mock.base.clone(),
        Arc::new(StaticTokens::default()),
        tenant(USERS_T),
        &ClientLimits::default(),
        Duration::from_secs(5),
    )
    .unwrap()
    .with_retry_policy(fast_retries())
}

fn window() -> IncidentWindow {
    IncidentWindow {
        updated_from: datetime!(2024-05-01 10:00 UTC),
        updated_to: Some(datetime!(2024-05-01 11:00 UTC)),
        created_from: None,
        created_to: None,
    }
}

fn id(s: &str) -> DefenderIncidentId {
    DefenderIncidentId::parse(s).unwrap()
}

fn second_page() -> serde_json::Value {
    let mut inc = fixture("graph-list-incidents.json")["value"][0].clone();
    inc["id"] = json!("2972396");
    json!({"value": [inc, {"id": "12/34", "status": "active"}]})
}

#[tokio::test]
async fn list_sends_the_window_query_and_pages_on_the_graph_host() {
    let mock = Mock::start(|r, _| {
        if r.query("$skiptoken").is_some() {
            Reply::json(200, second_page())
        } else {
            let mut page = fixture("graph-list-incidents.json");
            // nextLink is absolute; the mock's own origin is only known from the request's Host.
            let host = r.header("host").unwrap();
            page["@odata.nextLink"] = json!(format!(
                "http://{host}/v1.0/security/incidents?$skiptoken=abc"
            ));
            Reply::json(200, page)
        }
    })
    .await;
    let g = client(&mock);
    let page = g.list_incidents(&tenant(T), &window(), true).await.unwrap();
    assert_eq!(page.incidents.len(), 1);
    assert_eq!(
        page.incidents[0].alerts.as_ref().unwrap()[0].evidence.len(),
        4
    );
    let next = page.next_link.clone().unwrap();
    let page2 = g.next_page(&tenant(T), &next).await.unwrap();
    assert_eq!(page2.incidents[0].id.as_str(), "2972396");
    assert_eq!(
        page2.unmappable.len(),
        1,
        "the bad item is reported, not fatal"
    );
    assert_eq!(page2.unmappable[0].0, "12/34");

    let reqs = mock.requests();
    let first = &reqs[0];
    assert_eq!(first.method, "GET");
    assert_eq!(first.path, "/v1.0/security/incidents");
    assert_eq!(
        first.query("$filter").as_deref(),
        Some(
            "lastUpdateDateTime ge 2024-05-01T10:00:00Z and lastUpdateDateTime lt 2024-05-01T11:00:00Z"
        )
    );
    assert_eq!(first.query("$expand").as_deref(), Some("alerts"));
    assert_eq!(first.query("$top").as_deref(), Some("50"));
    assert!(
        !first.raw_query.contains('+'),
        "spaces are %20: {}",
        first.raw_query
    );
    assert_eq!(
        first.header("authorization"),
        Some(bearer(T, &scopes::of(&mock.base)).as_str()),
        "the token is for the configured Graph endpoint's own audience"
    );
    assert_eq!(first.header("prefer"), Some("include-unknown-enum-members"));
    assert_eq!(reqs[1].query("$skiptoken").as_deref(), Some("abc"));
    assert_eq!(
        reqs[1].header("prefer"),
        Some("include-unknown-enum-members")
    );
}

#[tokio::test]
async fn without_expand_there_is_no_expand_and_no_alerts() {
    let mock = Mock::start(|_, _| {
        Reply::json(
            200,
            json!({"value": [fixture("graph-update-incident.response.json")]}),
        )
    })
    .await;
    let page = client(&mock)
        .list_incidents(&tenant(T), &window(), false)
        .await
        .unwrap();
    assert_eq!(page.incidents[0].alerts, None);
    assert_eq!(mock.requests()[0].query("$expand"), None);
}

#[tokio::test]
async fn a_next_link_off_the_graph_host_is_refused() {
    let mock = Mock::start(|_, _| {
        let mut page = fixture("graph-list-incidents.json");
        page["@odata.nextLink"] =
            json!("https://evil.example/v1.0/security/incidents?$skiptoken=abc");
        Reply::json(200, page)
    })
    .await;
    let g = client(&mock);
    let err = g
        .list_incidents(&tenant(T), &window(), true)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Rejected);
    assert!(err.to_string().contains("evil.example"), "{err}");
    let err = g
        .next_page(
            &tenant(T),
            "https://evil.example/v1.0/security/incidents?x=1",
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Rejected);
    assert_eq!(
        mock.requests().len(),
        1,
        "the foreign link was never requested"
    );
}

#[tokio::test]
async fn throttling_with_fractional_retry_after_is_waited_out() {
    let mock = Mock::start(|_, i| {
        if i == 0 {
            Reply::json(429, fixture("graph-throttled-429.json")).with_header("Retry-After", "0.25")
        } else {
            Reply::json(200, json!({"value": [], "@odata.count": 7}))
        }
    })
    .await;
    let g = client(&mock);
    let started = Instant::now();
    assert_eq!(
        g.count_incidents(&tenant(T), &window()).await.unwrap(),
        Some(7)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "waited {:?}",
        started.elapsed()
    );
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].query("$count").as_deref(), Some("true"));
    assert_eq!(reqs[1].query("$top").as_deref(), Some("1"));
    let c = g.counts();
    assert_eq!((c.calls, c.retries, c.throttled), (2, 1, 1));
}

#[tokio::test]
async fn persistent_5xx_is_transient_after_bounded_attempts_and_long_hints_are_returned() {
    let mock = Mock::start(|r, _| {
        if r.path.ends_with("/1") {
            Reply::status(503)
        } else {
            Reply::json(429, fixture("graph-throttled-429.json")).with_header("Retry-After", "120")
        }
    })
    .await;
    let g = client(&mock);
    let err = g.get_incident(&tenant(T), &id("1")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(mock.requests().len(), 3, "max_attempts = 3");
    let err = g.get_incident(&tenant(T), &id("2")).await.unwrap_err();
    assert!(
        matches!(err, defender_sentinel_sync::ports::DefenderError::Throttled { retry_after: Some(d) } if d == Duration::from_secs(120)),
        "{err:?}"
    );
    assert_eq!(
        mock.requests().len(),
        4,
        "a 120 s hint is not slept on in-process"
    );
}

#[tokio::test]
async fn get_incident_maps_404_to_none_and_401_to_auth() {
    let mock = Mock::start(|r, i| match (r.path.as_str(), i) {
        ("/v1.0/security/incidents/404", _) => {
            Reply::json(404, json!({"error": {"code": "NotFound", "message": "no"}}))
        }
        ("/v1.0/security/incidents/401", _) => Reply::json(
            401,
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "bad"}}),
        ),
        (_, 2) => Reply::status(500),
        _ => Reply::json(
            200,
            fixture("graph-list-incidents.json")["value"][0].clone(),
        ),
    })
    .await;
    let g = client(&mock);
    assert_eq!(g.get_incident(&tenant(T), &id("404")).await.unwrap(), None);
    assert_eq!(
        g.get_incident(&tenant(T), &id("401"))
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Auth
    );
    let inc = g
        .get_incident(&tenant(T), &id("2972395"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inc.alerts.unwrap().len(), 1);
    let last = mock.requests().pop().unwrap();
    assert_eq!(last.query("$expand").as_deref(), Some("alerts"));
    assert_eq!(mock.requests().len(), 4, "the 500 was retried once");
}

/// The `$expand` fallback reads the one incident with its alerts: `alerts_v2` has no documented
/// `incidentId` filter.
#[tokio::test]
async fn alerts_for_incident_reads_the_incident_with_its_alerts() {
    let mock = Mock::start(|r, _| {
        if r.path.ends_with("/404404") {
            return Reply::json(404, json!({"error": {"code": "NotFound", "message": "no"}}));
        }
        let mut inc = fixture("graph-list-incidents.json")["value"][0].clone();
        let mut second = inc["alerts"][0].clone();
        second["id"] = json!("second");
        inc["alerts"].as_array_mut().unwrap().push(second);
        Reply::json(200, inc)
    })
    .await;
    let alerts = client(&mock)
        .alerts_for_incident(&tenant(T), &id("2972395"))
        .await
        .unwrap();
    assert_eq!(
        alerts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        vec!["da637551227677560813_-961444813", "second"]
    );
    let first = &mock.requests()[0];
    assert_eq!(first.method, "GET");
    assert_eq!(first.path, "/v1.0/security/incidents/2972395");
    assert_eq!(first.query("$expand").as_deref(), Some("alerts"));
    assert_eq!(first.query("$filter"), None);
    let none = client(&mock)
        .alerts_for_incident(&tenant(T), &id("404404"))
        .await;
    assert!(
        none.unwrap().is_empty(),
        "an incident gone meanwhile has no alerts"
    );
}

#[tokio::test]
async fn patch_uses_the_write_vocabulary_and_maps_the_answer() {
    let mock =
        Mock::start(|_, _| Reply::json(200, fixture("graph-update-incident.response.json"))).await;
    let g = client(&mock);
    let patch = DefenderPatch {
        classification: Some(DefenderClassification::TruePositive),
        determination: Some(Determination::MultiStagedAttack),
        custom_tags: Some(vec!["Demo".into()]),
        ..Default::default()
    };
    let inc = g
        .update_incident(&tenant(T), &id("29"), &patch)
        .await
        .unwrap();
    assert_eq!(
        inc.last_modified_by.as_deref(),
        Some("API-App:admin@contoso.com")
    );
    let req = &mock.requests()[0];
    assert_eq!(req.method, "PATCH");
    assert_eq!(req.path, "/v1.0/security/incidents/29");
    // The fixture request, in the canonical (camelCase) write spelling.
    assert_eq!(
        req.json(),
        json!({"classification": "truePositive", "determination": "multiStagedAttack", "customTags": ["Demo"]})
    );

    let closing = DefenderPatch {
        status: Some(DefenderStatus::Resolved),
        determination: Some(Determination::parse_alias("clean")),
        assigned_to: Some(None),
        ..Default::default()
    };
    g.update_incident(&tenant(T), &id("29"), &closing)
        .await
        .unwrap();
    assert_eq!(
        mock.requests()[1].json(),
        json!({"status": "resolved", "determination": "notMalicious", "assignedTo": null})
    );

    let redirect = DefenderPatch {
        status: Some(DefenderStatus::Redirected),
        ..Default::default()
    };
    let err = g
        .update_incident(&tenant(T), &id("29"), &redirect)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Rejected);
    assert_eq!(mock.requests().len(), 2, "redirected is never sent");
}

#[tokio::test]
async fn comment_post_matches_the_fixture_and_is_not_retried_on_5xx() {
    let mock = Mock::start(|r, _| {
        if r.path.contains("/500/") {
            Reply::status(500)
        } else {
            Reply::json(200, fixture("graph-incident-comment.response.json"))
        }
    })
    .await;
    let g = client(&mock);
    let comments = g
        .add_comment(&tenant(T), &id("7"), "Demo for docs")
        .await
        .unwrap();
    assert_eq!(comments.len(), 2);
    assert_eq!(comments[1].text, "Demo for docs");
    assert_eq!(comments[1].author.as_deref(), Some("secAdmin@contoso.com"));
    let req = &mock.requests()[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/v1.0/security/incidents/7/comments")
    );
    assert_eq!(req.json(), fixture("graph-incident-comment.request.json"));
    assert_eq!(
        g.add_comment(&tenant(T), &id("500"), "x")
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Transient
    );
    assert_eq!(
        mock.requests().len(),
        2,
        "a POST is not repeated after a 500 (it may have been applied)"
    );
}

#[tokio::test]
async fn users_resolve_in_the_sentinel_tenant_and_are_cached_both_ways() {
    let mock = Mock::start(|r, _| {
        if r.path.ends_with("kai@contoso.com") {
            Reply::json(200, json!({"id": "2046feea-040d-4a46-9e2b-91c2941bfa70", "userPrincipalName": "kai@contoso.com", "mail": "kai@contoso.com"}))
        } else {
            Reply::json(404, json!({"error": {"code": "Request_ResourceNotFound", "message": "no"}}))
        }
    })
    .await;
    let g = client(&mock);
    let u = g.resolve_user("kai@contoso.com").await.unwrap().unwrap();
    assert_eq!(
        u.object_id.to_string(),
        "2046feea-040d-4a46-9e2b-91c2941bfa70"
    );
    assert_eq!(g.resolve_user("KAI@contoso.com").await.unwrap(), Some(u));
    assert_eq!(g.resolve_user("ghost@contoso.com").await.unwrap(), None);
    assert_eq!(g.resolve_user("ghost@contoso.com").await.unwrap(), None);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2, "one look-up per user");
    assert_eq!(reqs[0].path, "/v1.0/users/kai@contoso.com");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(bearer(USERS_T, &scopes::of(&mock.base)).as_str())
    );
}

#[tokio::test]
async fn refused_connections_are_retried_then_transient_even_for_a_post() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    drop(listener); // nothing listens there now
    let g = GraphClient::new(
        base,
        Arc::new(StaticTokens::default()),
        tenant(USERS_T),
        &ClientLimits::default(),
        Duration::from_secs(2),
    )
    .unwrap()
    .with_retry_policy(fast_retries());
    assert_eq!(
        g.get_incident(&tenant(T), &id("1"))
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Transient
    );
    assert_eq!(g.counts().calls, 3);
    // Never sent, so safe to resend even though a comment POST is not idempotent.
    assert_eq!(
        g.add_comment(&tenant(T), &id("1"), "x")
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Transient
    );
    assert_eq!(g.counts().calls, 6);
}

/// Graph's correlation header is `client-request-id` (ARM's `x-ms-client-request-id` is not
/// Graph's): a fresh GUID on every request, retries included.
#[tokio::test]
async fn graph_requests_carry_client_request_id() {
    let mock = Mock::start(|_, i| match i {
        0 => Reply::status(503),
        _ => Reply::json(
            200,
            fixture("graph-list-incidents.json")["value"][0].clone(),
        ),
    })
    .await;
    client(&mock)
        .get_incident(&tenant(T), &id("2972395"))
        .await
        .unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let ids: Vec<&str> = reqs
        .iter()
        .map(|r| r.header("client-request-id").expect("client-request-id"))
        .collect();
    for id in &ids {
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
    assert_ne!(ids[0], ids[1], "one per attempt");
    assert!(
        reqs.iter()
            .all(|r| r.header("x-ms-client-request-id").is_none())
    );
}

/// A 403 on a user look-up names the permission that look-up needs (User.Read.All in the
/// Sentinel tenant), not the incident permission.
#[tokio::test]
async fn a_403_on_user_look_ups_names_user_read_all() {
    let mock = Mock::start(|_, _| {
        Reply::json(
            403,
            json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}}),
        )
    })
    .await;
    let err = client(&mock)
        .resolve_user("kai@contoso.com")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("User.Read.All"), "{text}");
    assert!(!text.contains("SecurityIncident"), "{text}");
    assert_eq!(err.class(), ErrorClass::Auth);
}

#[tokio::test]
async fn no_next_link_off_the_graph_origin_is_requested_or_gets_the_token() {
    let foreign = foreign_host().await;
    let links = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let served = links.clone();
    let mock = Mock::start(move |_, i| {
        let mut page = fixture("graph-list-incidents.json");
        page["@odata.nextLink"] = json!(served.lock().unwrap()[i].clone());
        Reply::json(200, page)
    })
    .await;
    let candidates = foreign_links(&mock, &foreign, "/v1.0/security/incidents?$skiptoken=abc");
    links.lock().unwrap().extend(candidates.iter().cloned());
    let g = client(&mock);
    for link in &candidates {
        let err = g
            .list_incidents(&tenant(T), &window(), true)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Rejected, "{link}: {err}");
        let err = g.next_page(&tenant(T), link).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Rejected, "{link}: {err}");
    }
    assert_eq!(mock.requests().len(), candidates.len());
    assert!(
        foreign.requests().is_empty(),
        "the other host was called: {:?}",
        foreign.requests()
    );
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let foreign = foreign_host().await;
    let to = foreign.base.join("/v1.0/security/incidents").unwrap();
    let mock =
        Mock::start(move |_, _| Reply::status(307).with_header("location", to.as_str())).await;
    let g = client(&mock);
    assert!(g.list_incidents(&tenant(T), &window(), true).await.is_err());
    assert!(g.get_incident(&tenant(T), &id("1")).await.is_err());
    assert!(
        foreign.requests().is_empty(),
        "the redirect was followed: {:?}",
        foreign.requests()
    );
}

/// JSON text with a lone surrogate (`\ud800`) cannot become a Rust string: the item carrying it
/// is reported as unmappable, the rest of the page maps.
#[tokio::test]
async fn an_item_with_a_lone_surrogate_is_reported_not_the_page() {
    let mock = Mock::start(|_, _| {
        let good = fixture("graph-update-incident.response.json");
        let body = format!(
            r#"{{"value":[{{"id":"77","displayName":"bad \ud800 \udfff title","status":"active"}},{good}]}}"#
        );
        Reply {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body,
            delay: Duration::ZERO,
        }
    })
    .await;
    let page = client(&mock)
        .list_incidents(&tenant(T), &window(), false)
        .await
        .unwrap();
    assert_eq!(page.incidents.len(), 1);
    assert_eq!(page.unmappable.len(), 1);
    assert_eq!(page.unmappable[0].0, "77");
}

/// An answer slower than the call timeout (`SYNC_CALL_TIMEOUT_SECONDS`) is cut off there: a
/// read is asked again and answered; a comment POST is not resent (the service may have
/// applied it) and fails as transient, for the next cycle.
#[tokio::test]
async fn an_answer_slower_than_the_call_timeout_is_cut_off_a_read_retried_a_post_not_resent() {
    let slow = Duration::from_secs(3);
    let mock = Mock::start(move |r, i| match (r.method.as_str(), i) {
        ("GET", 0) => Reply::status(200).after(slow),
        ("GET", _) => Reply::json(
            200,
            fixture("graph-list-incidents.json")["value"][0].clone(),
        ),
        _ => Reply::json(201, fixture("graph-incident-comment.response.json")).after(slow),
    })
    .await;
    let g = GraphClient::new(
        mock.base.clone(),
        Arc::new(StaticTokens::default()),
        tenant(USERS_T),
        &ClientLimits::default(),
        Duration::from_millis(300),
    )
    .unwrap()
    .with_retry_policy(fast_retries());
    let started = Instant::now();
    let got = g.get_incident(&tenant(T), &id("29")).await.unwrap();
    assert!(got.is_some());
    assert!(
        started.elapsed() < slow,
        "cut off at the timeout, not waited out"
    );
    assert_eq!(mock.requests().len(), 2, "the read was asked again");
    let started = Instant::now();
    let err = g.add_comment(&tenant(T), &id("7"), "x").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert!(started.elapsed() < slow);
    assert_eq!(mock.requests().len(), 3, "the POST was not resent");
}
