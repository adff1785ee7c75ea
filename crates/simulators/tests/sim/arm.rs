use crate::common::*;
use dss_simulators::{SentinelAction, wellknown};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn api_version_is_required_and_paths_are_case_insensitive() {
    let env = start().await;
    let r = env
        .call(
            Method::GET,
            &env.incidents_url(),
            Some(&env.token(ARM, T1)),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["code"], "MissingApiVersionParameter");
    let url = env.incidents_url().replace("/incidents", "/Incidents") + "?api-version=2024-03-01";
    assert_eq!(
        env.call(Method::GET, &url, Some(&env.token(ARM, T1)), None, &[])
            .await
            .status,
        StatusCode::OK
    );
    let url = env
        .incidents_url()
        .replace(wellknown::WORKSPACE_NAME, "other")
        + "?api-version=2024-03-01";
    assert_eq!(
        env.call(Method::GET, &url, Some(&env.token(ARM, T1)), None, &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.arm(Method::GET, &format!("/{}", new_name()), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn put_creates_with_fixture_body_and_fills_owner_from_directory() {
    let env = start().await;
    let name = new_name();
    let req = fixture("sentinel-incident-put.request.json");
    let r = env.arm(Method::PUT, &format!("/{name}"), Some(&req)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let want = fixture("sentinel-incident-put.response.json");
    assert_eq!(r.body["type"], want["type"]);
    assert!(
        r.body["id"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/incidents/{name}"))
    );
    let p = &r.body["properties"];
    for k in [
        "title",
        "severity",
        "status",
        "classification",
        "classificationReason",
        "classificationComment",
        "description",
    ] {
        assert_eq!(p[k], want["properties"][k], "{k}");
    }
    assert_eq!(p["owner"]["objectId"], wellknown::ANALYST_OBJECT_ID);
    assert_eq!(p["owner"]["userPrincipalName"], wellknown::ANALYST_UPN);
    assert_eq!(p["owner"]["assignedTo"], "Sam Analyst");
    assert!(p["incidentNumber"].as_u64().unwrap() >= 1);
    assert!(r.body["etag"].as_str().unwrap().starts_with('"'));
    for k in [
        "createdTimeUtc",
        "lastModifiedTimeUtc",
        "incidentUrl",
        "additionalData",
        "labels",
        "relatedAnalyticRuleIds",
    ] {
        assert!(!p[k].is_null(), "{k}");
    }
}

#[tokio::test]
async fn etag_in_body_guards_writes_if_match_is_ignored_and_no_etag_wins() {
    let env = start().await;
    let name = new_name();
    let r = env
        .arm(
            Method::PUT,
            &format!("/{name}"),
            Some(&minimal_incident("a")),
        )
        .await;
    let first = r.body["etag"].as_str().unwrap().to_owned();
    let mut body = minimal_incident("b");
    body["etag"] = json!(first);
    let r = env.arm(Method::PUT, &format!("/{name}"), Some(&body)).await;
    assert_eq!(r.status, StatusCode::OK);
    let second = r.body["etag"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    // Stale etag → 409 with the real message.
    let r = env.arm(Method::PUT, &format!("/{name}"), Some(&body)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"]["code"], "Conflict");
    assert_eq!(
        r.body["error"]["message"],
        format!("New version of resource '{name}' exists. Data was not saved.")
    );
    // If-Match is ignored: a stale one does not stop a PUT without body etag (last writer wins).
    let url = format!("{}/{name}?api-version=2024-03-01", env.incidents_url());
    let r = env
        .call(
            Method::PUT,
            &url,
            Some(&env.token(ARM, T1)),
            Some(&minimal_incident("c")),
            &[("If-Match", &first)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["properties"]["title"], "c");
}

#[tokio::test]
async fn put_is_a_full_replace_and_read_only_fields_are_ignored() {
    let env = start().await;
    let name = new_name();
    let mut body = minimal_incident("t");
    body["properties"]["owner"] = json!({"userPrincipalName": "KAI.CARTER@contoso.com"});
    body["properties"]["labels"] = json!([{"labelName": "Defender", "labelType": "AutoAssigned"}]);
    body["properties"]["incidentNumber"] = json!(999_999);
    body["properties"]["providerName"] = json!("Microsoft XDR");
    body["properties"]["createdTimeUtc"] = json!("2001-01-01T00:00:00Z");
    let r = env.arm(Method::PUT, &format!("/{name}"), Some(&body)).await;
    let p = &r.body["properties"];
    assert_eq!(
        p["owner"]["objectId"], "5d8e6f10-2a3b-4c5d-8e9f-0a1b2c3d4e5f",
        "owner by UPN resolved"
    );
    assert_eq!(p["owner"]["email"], "kai.carter@contoso.com");
    assert_eq!(
        p["labels"],
        json!([{"labelName": "Defender", "labelType": "User"}]),
        "labelType is server-set"
    );
    assert_ne!(p["incidentNumber"], 999_999);
    assert_eq!(p["providerName"], "Azure Sentinel");
    assert_ne!(p["createdTimeUtc"], "2001-01-01T00:00:00Z");
    let r = env
        .arm(
            Method::PUT,
            &format!("/{name}"),
            Some(&minimal_incident("t2")),
        )
        .await;
    assert!(
        r.body["properties"]["owner"]["objectId"].is_null(),
        "omitted owner → unassigned"
    );
    assert_eq!(r.body["properties"]["labels"], json!([]));
    let mut body = minimal_incident("t");
    body["properties"]["owner"] = json!({"email": "nobody@contoso.com"});
    assert_eq!(
        env.arm(Method::PUT, &format!("/{name}"), Some(&body))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn put_validation_rules() {
    let env = start().await;
    let name = new_name();
    let put = |props: serde_json::Value| {
        let env = &env;
        let name = name.clone();
        async move {
            env.arm(
                Method::PUT,
                &format!("/{name}"),
                Some(&json!({"properties": props})),
            )
            .await
        }
    };
    for missing in ["title", "severity", "status"] {
        let mut p = json!({"title": "t", "severity": "High", "status": "New"});
        p.as_object_mut().unwrap().remove(missing);
        let r = put(p).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{missing}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(missing)
        );
    }
    let r = put(json!({"title": "t", "severity": "High", "status": "Closed"})).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "Closed needs classification"
    );
    let r = put(json!({"title": "t", "severity": "High", "status": "Closed", "classification": "BenignPositive"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["error"]["message"],
        "classification 'BenignPositive' must have classificationReason."
    );
    let r = put(json!({"title": "t", "severity": "High", "status": "Closed", "classification": "TruePositive"})).await;
    assert_eq!(
        r.body["error"]["message"],
        "classification 'TruePositive' must have classificationReason."
    );
    let r = put(json!({"title": "t", "severity": "High", "status": "Closed", "classification": "Undetermined"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = put(json!({"title": "t", "severity": "Critical", "status": "New"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = put(
        json!({"title": "t", "severity": "High", "status": "New", "description": "x".repeat(5001)}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = put(
        json!({"title": "t", "severity": "high", "status": "new", "description": "x".repeat(5000)}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["properties"]["severity"], "High");
    let r = env
        .arm(Method::PUT, "/not-a-guid", Some(&minimal_incident("t")))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn list_filters_on_last_modified_and_pages_with_next_link() {
    let env = start().await;
    for i in 0..5 {
        env.arm(
            Method::PUT,
            &format!("/{}", new_name()),
            Some(&minimal_incident(&format!("i{i}"))),
        )
        .await;
    }
    let r = env.arm(Method::GET, "?$top=2", None).await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 2);
    let mut seen = 2;
    let mut next = r.body["nextLink"].as_str().map(str::to_owned);
    while let Some(n) = next {
        assert!(n.starts_with(&env.sims.urls().arm));
        let r = env
            .call(Method::GET, &n, Some(&env.token(ARM, T1)), None, &[])
            .await;
        seen += r.body["value"].as_array().unwrap().len();
        next = r.body["nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 5);
    let all = env.sims.sentinel_incidents();
    let cut = all[3]["properties"]["lastModifiedTimeUtc"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = env
        .arm(
            Method::GET,
            &format!("?$filter=properties/lastModifiedTimeUtc ge {cut}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["value"].as_array().unwrap().len(), 2);
    assert_eq!(
        env.arm(Method::GET, "?$top=1001", None).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        env.arm(Method::GET, "?$top=1000", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn comments_put_get_list_and_limits() {
    let env = start().await;
    let name = new_name();
    env.arm(
        Method::PUT,
        &format!("/{name}"),
        Some(&minimal_incident("c")),
    )
    .await;
    let cid = new_name();
    let body = fixture("sentinel-incident-comment.put.request.json");
    let r = env
        .arm(Method::PUT, &format!("/{name}/comments/{cid}"), Some(&body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["properties"]["message"], "Some message");
    assert_eq!(
        r.body["type"],
        "Microsoft.SecurityInsights/incidents/comments"
    );
    assert_eq!(
        r.body["properties"]["author"]["objectId"],
        wellknown::CLIENT_OBJECT_ID
    );
    assert_eq!(
        env.arm(Method::PUT, &format!("/{name}/comments/{cid}"), Some(&body))
            .await
            .status,
        StatusCode::OK,
        "idempotent"
    );
    let r = env
        .arm(Method::GET, &format!("/{name}/comments/{cid}"), None)
        .await;
    assert_eq!(r.body["name"], cid.as_str());
    let long = json!({"properties": {"message": "x".repeat(30_001)}});
    assert_eq!(
        env.arm(
            Method::PUT,
            &format!("/{name}/comments/{}", new_name()),
            Some(&long)
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    let ok = json!({"properties": {"message": "x".repeat(30_000)}});
    assert_eq!(
        env.arm(
            Method::PUT,
            &format!("/{name}/comments/{}", new_name()),
            Some(&ok)
        )
        .await
        .status,
        StatusCode::CREATED
    );
    for i in 2..100 {
        let r = env
            .arm(
                Method::PUT,
                &format!("/{name}/comments/{}", new_name()),
                Some(&json!({"properties": {"message": format!("m{i}")}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = env
        .arm(
            Method::PUT,
            &format!("/{name}/comments/{}", new_name()),
            Some(&json!({"properties": {"message": "101st"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = env
        .arm(Method::GET, &format!("/{name}/comments"), None)
        .await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 100);
    assert_eq!(r.body["value"][0]["properties"]["message"], "Some message");
    let inc = env.arm(Method::GET, &format!("/{name}"), None).await;
    assert_eq!(
        inc.body["properties"]["additionalData"]["commentsCount"],
        100
    );
}

#[tokio::test]
async fn arm_refuses_tokens_from_other_tenants_and_reports_remaining_quota() {
    let env = start().await;
    let url = format!("{}?api-version=2024-03-01", env.incidents_url());
    let r = env
        .call(Method::GET, &url, Some(&env.token(ARM, T2)), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["code"], "InvalidAuthenticationTokenTenant");
    let r = env.arm(Method::GET, "", None).await;
    let left: u64 = r.headers["x-ms-ratelimit-remaining-subscription-reads"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(left, 249);
    let r = env
        .arm(
            Method::PUT,
            &format!("/{}", new_name()),
            Some(&minimal_incident("q")),
        )
        .await;
    assert_eq!(
        r.headers["x-ms-ratelimit-remaining-subscription-writes"],
        "199"
    );
}

/// `owner.ownerType` is `User`, `Group` or `Unknown`: a group is assigned only as a `Group`;
/// the same object id without that type is looked up as a user and refused.
#[tokio::test]
async fn group_owners_need_owner_type_group() {
    let env = start().await;
    let name = new_name();
    let mut body = minimal_incident("t");
    body["properties"]["owner"] =
        json!({"objectId": wellknown::SOC_GROUP_OBJECT_ID, "ownerType": "Group"});
    let r = env.arm(Method::PUT, &format!("/{name}"), Some(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let o = &r.body["properties"]["owner"];
    assert_eq!(o["objectId"], wellknown::SOC_GROUP_OBJECT_ID);
    assert_eq!(o["ownerType"], "Group");
    assert_eq!(o["assignedTo"], wellknown::SOC_GROUP_NAME);
    assert!(o["userPrincipalName"].is_null() && o["email"].is_null());

    let mut without_type = minimal_incident("t");
    without_type["etag"] = r.body["etag"].clone();
    without_type["properties"]["owner"] = json!({"objectId": wellknown::SOC_GROUP_OBJECT_ID});
    let r = env
        .arm(Method::PUT, &format!("/{name}"), Some(&without_type))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // An analyst assigns a group in the portal.
    let other = new_name();
    env.arm(
        Method::PUT,
        &format!("/{other}"),
        Some(&minimal_incident("o")),
    )
    .await;
    env.sims
        .sentinel_action(
            &other,
            SentinelAction::SetOwner {
                owner: Some(wellknown::SOC_GROUP_OBJECT_ID.into()),
            },
        )
        .unwrap();
    let r = env.arm(Method::GET, &format!("/{other}"), None).await;
    assert_eq!(r.body["properties"]["owner"]["ownerType"], "Group");
}
