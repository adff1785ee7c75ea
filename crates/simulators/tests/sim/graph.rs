use crate::common::*;
use dss_simulators::{DefenderAction, GraphConfig, wellknown};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn ids(r: &Resp) -> Vec<String> {
    r.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn incident(id: u64, created: &str, updated: &str) -> Value {
    json!({"id": id.to_string(), "displayName": format!("inc {id}"), "status": "active", "severity": "low",
           "classification": "unknown", "determination": "unknown", "createdDateTime": created, "lastUpdateDateTime": updated,
           "comments": [], "customTags": [], "assignedTo": null})
}

async fn three(env: &Env) {
    for (id, c, u) in [
        (
            11,
            "2024-05-01T08:00:00.0000000Z",
            "2024-05-01T12:00:00.0000000Z",
        ),
        (
            12,
            "2024-05-01T09:00:00.0000000Z",
            "2024-05-01T10:00:00.0000000Z",
        ),
        (
            13,
            "2024-05-01T10:00:00.0000000Z",
            "2024-05-01T11:00:00.0000000Z",
        ),
    ] {
        env.sims
            .insert_defender_incident(T1, incident(id, c, u))
            .unwrap();
    }
}

#[tokio::test]
async fn fixture_loads_as_is_and_expand_returns_alerts_with_evidence() {
    let env = start().await;
    let fx = fixture("graph-list-incidents.json");
    env.sims.load_graph_list(T1, &fx).unwrap();
    let r = env
        .graph(
            Method::GET,
            "/v1.0/security/incidents/2972395?$expand=alerts",
            T1,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["alerts"][0]["evidence"],
        fx["value"][0]["alerts"][0]["evidence"]
    );
    assert_eq!(r.body["displayName"], fx["value"][0]["displayName"]);
    assert_eq!(
        r.body["alerts"][0]["evidence"][0]["@odata.type"],
        "#microsoft.graph.security.deviceEvidence"
    );
    let r = env
        .graph(Method::GET, "/v1.0/security/incidents/2972395", T1, None)
        .await;
    assert!(r.body.get("alerts").is_none(), "no alerts without $expand");
    let r = env
        .graph(Method::GET, "/v1.0/security/incidents/999", T1, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["code"], "NotFound");
}

/// On command the list stops paging silently (200, no next link, the count still whole) and
/// leaves out `@odata.count`.
#[tokio::test]
async fn list_can_stop_paging_silently_and_leave_out_the_count() {
    let env = start().await;
    three(&env).await;
    env.sims.set_graph_config(GraphConfig {
        silent_page_end_after: Some(2),
        ..GraphConfig::default()
    });
    let url = "/v1.0/security/incidents?$top=1&$count=true";
    let r = env.graph(Method::GET, url, T1, None).await;
    assert_eq!(
        (ids(&r), r.body["@odata.count"].clone()),
        (vec!["13".to_owned()], json!(3))
    );
    let next = r.body["@odata.nextLink"].as_str().unwrap().to_owned();
    let r2 = env
        .call(Method::GET, &next, Some(&env.token(GRAPH, T1)), None, &[])
        .await;
    assert_eq!(r2.status, StatusCode::OK);
    assert_eq!(ids(&r2), ["12"]);
    assert!(
        r2.body.get("@odata.nextLink").is_none(),
        "no next link past the silent end, though 3 are counted: {}",
        r2.body
    );
    assert_eq!(r2.body["@odata.count"], 3);

    env.sims.set_graph_config(GraphConfig {
        omit_count: true,
        ..GraphConfig::default()
    });
    let r = env.graph(Method::GET, url, T1, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.get("@odata.count").is_none(), "{}", r.body);
    assert!(r.body.get("@odata.nextLink").is_some());
}

#[tokio::test]
async fn list_filters_orders_counts_and_pages() {
    let env = start().await;
    three(&env).await;
    let r = env
        .graph(Method::GET, "/v1.0/security/incidents", T1, None)
        .await;
    assert_eq!(ids(&r), ["13", "12", "11"], "newest first");
    let r = env
        .graph(
            Method::GET,
            "/v1.0/security/incidents?$filter=lastUpdateDateTime ge 2024-05-01T11:00:00Z",
            T1,
            None,
        )
        .await;
    assert_eq!(ids(&r), ["13", "11"]);
    let r = env
        .graph(Method::GET, "/v1.0/security/incidents?$filter=lastUpdateDateTime gt 2024-05-01T10:00:00Z and lastUpdateDateTime lt 2024-05-01T12:00:00Z", T1, None)
        .await;
    assert_eq!(ids(&r), ["13"]);
    let r = env
        .graph(
            Method::GET,
            "/v1.0/security/incidents?$filter=lastUpdateDateTime le 2024-05-01T10:00:00Z",
            T1,
            None,
        )
        .await;
    assert_eq!(ids(&r), ["12"]);
    let r = env
        .graph(
            Method::GET,
            "/v1.0/security/incidents?$filter=createdDateTime ge 2024-05-01T09:00:00Z",
            T1,
            None,
        )
        .await;
    assert_eq!(ids(&r), ["13", "12"]);
    let r = env
        .graph(
            Method::GET,
            "/v1.0/security/incidents?$orderby=lastUpdateDateTime asc",
            T1,
            None,
        )
        .await;
    assert_eq!(ids(&r), ["12", "13", "11"]);
    let r = env
        .graph(
            Method::GET,
            "/v1.0/security/incidents?$orderby=lastUpdateDateTime desc&$top=2&$count=true",
            T1,
            None,
        )
        .await;
    assert_eq!(ids(&r), ["11", "13"]);
    assert_eq!(r.body["@odata.count"], 3);
    let next = r.body["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&env.sims.urls().graph) && next.contains("%24skip=2"),
        "{next}"
    );
    let r2 = env
        .call(Method::GET, next, Some(&env.token(GRAPH, T1)), None, &[])
        .await;
    assert_eq!(ids(&r2), ["12"]);
    assert!(r2.body.get("@odata.nextLink").is_none());
    let r = env
        .graph(
            Method::GET,
            "/v1.0/security/incidents?$filter=bogus eq 'x'",
            T1,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn top_and_skip_limits_answer_400() {
    let env = start().await;
    let r = env
        .graph(Method::GET, "/v1.0/security/incidents?$top=51", T1, None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["error"]["message"],
        "The limit of '50' for Top query has been exceeded. The value from the incoming request is '51'."
    );
    assert_eq!(
        env.graph(
            Method::GET,
            "/v1.0/security/incidents?$top=50&$skip=500",
            T1,
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    let r = env
        .graph(Method::GET, "/v1.0/security/incidents?$skip=501", T1, None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tenants_are_isolated_by_the_token_tid() {
    let env = start().await;
    env.sims.seed(T1, 3, 1);
    env.sims.seed(T2, 2, 2);
    assert_eq!(
        ids(&env
            .graph(Method::GET, "/v1.0/security/incidents", T1, None)
            .await)
        .len(),
        3
    );
    let t2 = ids(&env
        .graph(Method::GET, "/v1.0/security/incidents", T2, None)
        .await);
    assert_eq!(t2.len(), 2);
    let r = env
        .graph(
            Method::GET,
            &format!("/v1.0/security/incidents/{}", t2[0]),
            T1,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn patch_validates_like_graph_and_bumps_last_update() {
    let env = start().await;
    three(&env).await;
    let req = fixture("graph-update-incident.request.json");
    let r = env
        .graph(Method::PATCH, "/v1.0/security/incidents/12", T1, Some(&req))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["classification"], "truePositive");
    assert_eq!(r.body["determination"], "multiStagedAttack");
    assert_eq!(r.body["customTags"], json!(["Demo"]));
    assert_eq!(
        r.body["lastModifiedBy"],
        format!("API-App:{}", wellknown::CLIENT_ID)
    );
    assert!(
        r.body["lastUpdateDateTime"].as_str().unwrap() > "2025",
        "bumped to now"
    );
    assert!(
        r.body["lastUpdateDateTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    for (body, ok) in [
        (
            json!({"status": "resolved", "classification": "falsePositive", "determination": "notMalicious"}),
            true,
        ),
        (json!({"determination": "Clean"}), true),
        (
            json!({"determination": "CompromisedAccount", "assignedTo": "kai.carter@contoso.com", "resolvingComment": "x"}),
            true,
        ),
        (json!({"status": "redirected"}), false),
        (json!({"status": "awaitingAction"}), false),
        (json!({"tags": ["Demo"]}), false),
        (json!({"severity": "critical"}), false),
        (json!({"customTags": "Demo"}), false),
    ] {
        let r = env
            .graph(
                Method::PATCH,
                "/v1.0/security/incidents/12",
                T1,
                Some(&body),
            )
            .await;
        assert_eq!(r.status == StatusCode::OK, ok, "{body} → {}", r.body);
        if !ok {
            assert_eq!(r.body["error"]["code"], "BadRequest");
        }
    }
    let r = env
        .graph(
            Method::PATCH,
            "/v1.0/security/incidents/12",
            T1,
            Some(&json!({"tags": []})),
        )
        .await;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist on type 'microsoft.graph.security.incident'")
    );
    assert_eq!(
        env.graph(
            Method::PATCH,
            "/v1.0/security/incidents/77",
            T1,
            Some(&json!({"status": "active"}))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn comments_post_returns_all_comments() {
    let env = start().await;
    three(&env).await;
    let req = fixture("graph-incident-comment.request.json");
    env.graph(
        Method::POST,
        "/v1.0/security/incidents/11/comments",
        T1,
        Some(&json!({"comment": "first"})),
    )
    .await;
    let r = env
        .graph(
            Method::POST,
            "/v1.0/security/incidents/11/comments",
            T1,
            Some(&req),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.body["value"].as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[1]["comment"], "Demo for docs");
    assert!(v[1]["createdDateTime"].as_str().unwrap().ends_with('Z'));
    assert!(v[1]["createdByDisplayName"].is_string());
}

#[tokio::test]
async fn awaiting_action_only_with_prefer_header() {
    let env = start().await;
    three(&env).await;
    env.sims
        .defender_action(
            T1,
            "13",
            DefenderAction::SetStatus {
                status: "awaitingAction".into(),
            },
        )
        .unwrap();
    let r = env
        .graph(Method::GET, "/v1.0/security/incidents/13", T1, None)
        .await;
    assert_eq!(r.body["status"], "unknownFutureValue");
    let url = format!("{}/v1.0/security/incidents/13", env.sims.urls().graph);
    let r = env
        .call(
            Method::GET,
            &url,
            Some(&env.token(GRAPH, T1)),
            None,
            &[("Prefer", "include-unknown-enum-members")],
        )
        .await;
    assert_eq!(r.body["status"], "awaitingAction");
}

#[tokio::test]
async fn alerts_v2_takes_only_documented_filters_and_users_resolve() {
    let env = start().await;
    let ids = env.sims.seed(T1, 4, 3);
    // "List alerts_v2": incidentId is not a filterable property.
    let r = env
        .graph(
            Method::GET,
            &format!(
                "/v1.0/security/alerts_v2?$filter=incidentId eq '{}'",
                ids[1]
            ),
            T1,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "BadRequest");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("incidentId"),
        "{}",
        r.body
    );
    for filter in [
        "severity eq 'high'",
        "serviceSource eq 'microsoftDefenderForEndpoint'",
        "assignedTo eq 'nobody@contoso.com'",
        "determination eq 'unknown'",
        "lastUpdateDateTime ge 2000-01-01T00:00:00Z",
    ] {
        let r = env
            .graph(
                Method::GET,
                &format!("/v1.0/security/alerts_v2?$top=50&$filter={filter}"),
                T1,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{filter}: {}", r.body);
        if filter.starts_with("severity") {
            let v = r.body["value"].as_array().unwrap();
            assert!(!v.is_empty() && v.iter().all(|a| a["severity"] == "high"));
        }
    }
    let r = env
        .graph(Method::GET, "/v1.0/users/SAM.ANALYST@contoso.com", T1, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], wellknown::ANALYST_OBJECT_ID);
    assert_eq!(r.body["userPrincipalName"], wellknown::ANALYST_UPN);
    let r = env
        .graph(Method::GET, "/v1.0/users/nobody@contoso.com", T1, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["code"], "Request_ResourceNotFound");
}

#[tokio::test]
async fn expand_alerts_fault_answers_500_for_pages_with_big_incidents() {
    let env = start().await;
    let big = env.sims.seed(T1, 1, 5)[0].clone();
    for _ in 0..3 {
        env.sims
            .defender_action(T1, &big, DefenderAction::AddAlert { alert: None })
            .unwrap();
    }
    let n_alerts = env.sims.defender_incident(T1, &big).unwrap()["alerts"]
        .as_array()
        .unwrap()
        .len();
    assert!(n_alerts > 3);
    env.sims.set_graph_config(GraphConfig {
        expand_alerts_fail_above: Some(3),
        ..GraphConfig::default()
    });
    let r = env
        .graph(
            Method::GET,
            "/v1.0/security/incidents?$expand=alerts",
            T1,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let r = env
        .graph(Method::GET, "/v1.0/security/incidents", T1, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "without $expand the list works");
    let r = env
        .graph(
            Method::GET,
            &format!("/v1.0/security/incidents/{big}?$expand=alerts"),
            T1,
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "one incident read on its own carries its alerts (the fault is the list's)"
    );
    assert_eq!(r.body["alerts"].as_array().unwrap().len(), n_alerts);
}

#[tokio::test]
async fn late_visible_writes_carry_an_older_last_update() {
    let env = start().await;
    three(&env).await;
    let late = env
        .sims
        .defender_action(
            T1,
            "12",
            DefenderAction::SetLastUpdate {
                last_update_date_time: "2024-05-01T11:00:00Z".into(),
            },
        )
        .unwrap();
    assert_eq!(late["lastUpdateDateTime"], "2024-05-01T11:00:00.0000000Z");
    let r = env
        .graph(
            Method::GET,
            "/v1.0/security/incidents?$filter=lastUpdateDateTime eq 2024-05-01T11:00:00Z",
            T1,
            None,
        )
        .await;
    assert_eq!(ids(&r), ["13", "12"], "two incidents on one instant");
}

/// Graph echoes the caller's `client-request-id` and adds its own `request-id`, on answers and
/// refusals alike.
#[tokio::test]
async fn client_request_id_is_echoed() {
    let env = start().await;
    let id = "8f1e9d3c-2b4a-4c5d-9e6f-7a8b9c0d1e2f";
    for path in [
        "/v1.0/security/incidents",
        "/v1.0/security/incidents/999999",
    ] {
        let url = format!("{}{path}", env.sims.urls().graph);
        let r = env
            .call(
                Method::GET,
                &url,
                Some(&env.token(GRAPH, T1)),
                None,
                &[("client-request-id", id)],
            )
            .await;
        assert_eq!(r.headers["client-request-id"], id, "{path}: {}", r.status);
        assert!(r.headers.contains_key("request-id"));
    }
}
