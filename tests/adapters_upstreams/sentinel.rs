use crate::common::*;
use defender_sentinel_sync::adapters::sentinel::SentinelClient;
use defender_sentinel_sync::config::{ClientLimits, SentinelWorkspace};
use defender_sentinel_sync::credentials::scopes;
use defender_sentinel_sync::domain::*;
use defender_sentinel_sync::ports::{Classify, ErrorClass, SentinelApi};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use time::macros::datetime;

const T: &str = "2070ecc9-b4d5-4ae4-adaa-936fa1954fa8";
const NAME: &str = "73e01a99-5cd7-4139-a149-9f2736ff2ab5";
const PREFIX: &str = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.OperationalInsights/workspaces/ws-1/providers/Microsoft.SecurityInsights/incidents";

fn client(mock: &Mock) -> SentinelClient {
    let ws = SentinelWorkspace {
        subscription_id: "sub-1".into(),
        resource_group: "rg-1".into(),
        workspace_name: "ws-1".into(),
    };
    SentinelClient::new(
        mock.base.clone(),
        ws,
        tenant(T),
        Arc::new(StaticTokens::default()),
        &ClientLimits::default(),
        Duration::from_secs(5),
    )
    .unwrap()
    .with_retry_policy(fast_retries())
}

fn name() -> SentinelIncidentName {
    SentinelIncidentName::parse(NAME).unwrap()
}

#[tokio::test]
async fn get_reads_the_incident_and_404_is_none() {
    let mock = Mock::start(|r, _| {
        if r.path.ends_with(NAME) {
            Reply::json(200, fixture("sentinel-get-incident.response.json"))
        } else {
            Reply::json(
                404,
                json!({"error": {"code": "NotFound", "message": "Incident not found"}}),
            )
        }
    })
    .await;
    let s = client(&mock);
    let i = s.get_incident(&name()).await.unwrap().unwrap();
    assert_eq!(i.status, SentinelStatus::Closed);
    assert_eq!(i.incident_number, Some(3177));
    let other = SentinelIncidentName::parse("00000000-0000-0000-0000-000000000001").unwrap();
    assert_eq!(s.get_incident(&other).await.unwrap(), None);
    let req = &mock.requests()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, format!("{PREFIX}/{NAME}"));
    assert_eq!(req.query("api-version").as_deref(), Some("2024-03-01"));
    assert_eq!(
        req.header("authorization"),
        Some(bearer(T, &scopes::of(&mock.base)).as_str()),
        "the token is for the configured ARM endpoint's own audience"
    );
}

#[tokio::test]
async fn put_sends_the_whole_object_with_its_etag_and_409_is_a_conflict() {
    let mock = Mock::start(|r, _| {
        if r.json()["etag"] == "\"stale\"" {
            Reply::json(409, json!({"error": {"code": "Conflict", "message": "New version of resource 'x' exists. Data was not saved"}}))
        } else {
            Reply::json(200, fixture("sentinel-incident-put.response.json"))
        }
    })
    .await;
    let s = client(&mock);
    let mut incident = s_incident();
    let written = s.put_incident(&incident).await.unwrap();
    assert_eq!(
        written.etag.as_deref(),
        Some("\"0300bf09-0000-0000-0000-5c37296e0001\""),
        "the new etag comes back"
    );
    let req = &mock.requests()[0];
    assert_eq!(req.method, "PUT");
    assert_eq!(req.path, format!("{PREFIX}/{NAME}"));
    let body = req.json();
    assert_eq!(body["etag"], "\"0300bf09-0000-0000-0000-5c37296e0000\"");
    let p = &body["properties"];
    assert_eq!(p["status"], "Closed");
    assert_eq!(p["classification"], "FalsePositive");
    assert_eq!(p["classificationReason"], "IncorrectAlertLogic");
    assert_eq!(
        p["owner"],
        json!({"objectId": "2046feea-040d-4a46-9e2b-91c2941bfa70", "userPrincipalName": "kai@contoso.com", "email": "kai@contoso.com"})
    );
    assert_eq!(
        p["labels"],
        json!([{"labelName": "Defender"}, {"labelName": "auto", "labelType": "AutoAssigned"}])
    );
    assert_eq!(p["firstActivityTimeUtc"], "2019-01-01T13:00:30Z");

    incident.etag = Some("\"stale\"".into());
    let err = s.put_incident(&incident).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Conflict);
    assert!(err.to_string().contains("New version"), "{err}");
    assert_eq!(mock.requests().len(), 2, "a 409 is not retried blindly");

    incident.description = Some("x".repeat(5_001));
    assert_eq!(
        s.put_incident(&incident).await.unwrap_err().class(),
        ErrorClass::Rejected
    );
    assert_eq!(mock.requests().len(), 2, "refused before sending");
}

fn s_incident() -> SentinelIncident {
    SentinelIncident {
        name: name(),
        etag: Some("\"0300bf09-0000-0000-0000-5c37296e0000\"".into()),
        title: "My incident".into(),
        description: Some("This is a demo incident".into()),
        severity: SentinelSeverity::High,
        status: SentinelStatus::Closed,
        classification: Some(SentinelClassification::FalsePositive),
        classification_reason: Some(ClassificationReason::IncorrectAlertLogic),
        classification_comment: Some("Not a malicious activity".into()),
        owner: Owner {
            object_id: Some(uuid::Uuid::parse_str("2046feea-040d-4a46-9e2b-91c2941bfa70").unwrap()),
            user_principal_name: Some("kai@contoso.com".into()),
            email: Some("kai@contoso.com".into()),
            assigned_to: Some("Kai".into()),
            owner_type: None, // built here, not read: no type to send back
        },
        labels: vec![
            Label {
                name: "Defender".into(),
                kind: LabelKind::User,
            },
            Label {
                name: "auto".into(),
                kind: LabelKind::AutoAssigned,
            },
        ],
        first_activity: Some(datetime!(2019-01-01 13:00:30 UTC)),
        last_activity: Some(datetime!(2019-01-01 13:05:30 UTC)),
        incident_number: Some(3177),
        created: None,
        last_modified: None,
        comments_count: None,
        platform_id: None,
    }
}

#[tokio::test]
async fn list_filters_by_modification_time_and_follows_next_link() {
    let mock = Mock::start(|r, _| {
        let mut page = fixture("sentinel-list-incidents.response.json");
        if r.query("$skipToken").is_none() {
            let host = r.header("host").unwrap();
            page["nextLink"] = json!(format!(
                "http://{host}{PREFIX}?api-version=2024-03-01&$skipToken=p2"
            ));
        }
        Reply::json(200, page)
    })
    .await;
    let s = client(&mock);
    let p1 = s
        .list_modified_since(datetime!(2024-05-01 0:00 UTC), None)
        .await
        .unwrap();
    assert_eq!(p1.incidents.len(), 1);
    let p2 = s
        .list_modified_since(datetime!(2024-05-01 0:00 UTC), p1.next_link.as_deref())
        .await
        .unwrap();
    assert_eq!(p2.next_link, None);
    let reqs = mock.requests();
    assert_eq!(reqs[0].path, PREFIX);
    assert_eq!(
        reqs[0].query("$filter").as_deref(),
        Some("properties/lastModifiedTimeUtc ge 2024-05-01T00:00:00Z")
    );
    assert_eq!(
        reqs[0].query("$orderby").as_deref(),
        Some("properties/lastModifiedTimeUtc asc")
    );
    assert_eq!(reqs[0].query("$top").as_deref(), Some("1000"));
    assert_eq!(reqs[1].query("$skipToken").as_deref(), Some("p2"));
    let err = s
        .list_modified_since(
            datetime!(2024-05-01 0:00 UTC),
            Some("https://elsewhere.example/x"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Rejected);
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn comments_put_with_client_ids_and_list() {
    let mock = Mock::start(|r, _| match r.method.as_str() {
        "PUT" => Reply::json(201, fixture("sentinel-incident-comment.put.response.json")),
        _ => Reply::json(
            200,
            json!({"value": [fixture("sentinel-incident-comment.put.response.json")]}),
        ),
    })
    .await;
    let s = client(&mock);
    let id = uuid::Uuid::parse_str("4bb36b7b-26ff-4d1c-9cbe-0d8ab3da0014").unwrap();
    let c = s.put_comment(&name(), id, "Some message").await.unwrap();
    assert_eq!(c.id, id.to_string());
    let all = s.list_comments(&name()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].message, "Some message");
    let reqs = mock.requests();
    assert_eq!(reqs[0].path, format!("{PREFIX}/{NAME}/comments/{id}"));
    assert_eq!(
        reqs[0].json(),
        fixture("sentinel-incident-comment.put.request.json")
    );
    assert_eq!(reqs[1].path, format!("{PREFIX}/{NAME}/comments"));
}

#[tokio::test]
async fn throttled_put_is_retried_and_400_is_rejected_with_the_message() {
    let mock = Mock::start(|r, i| {
        if r.json()["properties"]["title"] == "bad" {
            return Reply::json(400, json!({"error": {"code": "BadRequest", "message": "classification 'BenignPositive' must have classificationReason."}}));
        }
        if i == 0 {
            Reply::json(429, json!({"error": {"code": "TooManyRequests", "message": "slow down"}})).with_header("Retry-After", "0.05")
        } else {
            Reply::json(200, fixture("sentinel-incident-put.response.json"))
        }
    })
    .await;
    let s = client(&mock);
    s.put_incident(&s_incident()).await.unwrap();
    assert_eq!(s.counts().throttled, 1);
    let mut bad = s_incident();
    bad.title = "bad".into();
    let err = s.put_incident(&bad).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Rejected);
    assert!(
        err.to_string().contains("must have classificationReason"),
        "{err}"
    );
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn writes_are_paced_by_the_client_bucket_not_the_server() {
    let mock =
        Mock::start(|_, _| Reply::json(200, fixture("sentinel-incident-put.response.json"))).await;
    let ws = SentinelWorkspace {
        subscription_id: "sub-1".into(),
        resource_group: "rg-1".into(),
        workspace_name: "ws-1".into(),
    };
    let limits = ClientLimits {
        arm_write_burst: 2,
        arm_writes_per_second: 10.0,
        ..ClientLimits::default()
    };
    let s = SentinelClient::new(
        mock.base.clone(),
        ws,
        tenant(T),
        Arc::new(StaticTokens::default()),
        &limits,
        Duration::from_secs(5),
    )
    .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..4 {
        s.put_incident(&s_incident()).await.unwrap();
    }
    // Burst of 2, then one write per 100 ms: the 3rd and 4th wait ~200 ms in all.
    assert!(
        started.elapsed() >= Duration::from_millis(180),
        "{:?}",
        started.elapsed()
    );
    s.get_incident(&name()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "reads are not paced by the write bucket"
    );
    assert_eq!(mock.requests().len(), 5);
}

#[tokio::test]
async fn reads_are_paced_by_their_own_bucket() {
    let mock =
        Mock::start(|_, _| Reply::json(200, fixture("sentinel-get-incident.response.json"))).await;
    let ws = SentinelWorkspace {
        subscription_id: "sub-1".into(),
        resource_group: "rg-1".into(),
        workspace_name: "ws-1".into(),
    };
    let limits = ClientLimits {
        arm_read_burst: 2,
        arm_reads_per_second: 10.0,
        ..ClientLimits::default()
    };
    let s = SentinelClient::new(
        mock.base.clone(),
        ws,
        tenant(T),
        Arc::new(StaticTokens::default()),
        &limits,
        Duration::from_secs(5),
    )
    .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..4 {
        s.get_incident(&name()).await.unwrap();
    }
    // Burst of 2, then one read per 100 ms: the 3rd and 4th wait ~200 ms in all.
    assert!(
        started.elapsed() >= Duration::from_millis(180),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(mock.requests().len(), 4);
}

#[tokio::test]
async fn no_next_link_off_the_arm_origin_is_requested_or_gets_the_token() {
    let foreign = foreign_host().await;
    let links = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let served = links.clone();
    let mock = Mock::start(move |r, i| {
        let link = served.lock().unwrap()[i / 2].clone();
        if r.path.ends_with("/comments") {
            Reply::json(200, json!({"value": [], "nextLink": link}))
        } else {
            let mut page = fixture("sentinel-list-incidents.response.json");
            page["nextLink"] = json!(link);
            Reply::json(200, page)
        }
    })
    .await;
    let candidates = foreign_links(&mock, &foreign, &format!("{PREFIX}?$skipToken=p2"));
    links.lock().unwrap().extend(candidates.iter().cloned());
    let s = client(&mock);
    let since = datetime!(2024-05-01 0:00 UTC);
    for link in &candidates {
        let err = s.list_modified_since(since, None).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Rejected, "{link}: {err}");
        let err = s.list_comments(&name()).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Rejected, "{link}: {err}");
        let err = s.list_modified_since(since, Some(link)).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Rejected, "{link}: {err}");
    }
    assert_eq!(mock.requests().len(), 2 * candidates.len());
    assert!(
        foreign.requests().is_empty(),
        "the other host was called: {:?}",
        foreign.requests()
    );
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let foreign = foreign_host().await;
    let to = foreign.base.join(PREFIX).unwrap();
    let mock =
        Mock::start(move |_, _| Reply::status(302).with_header("location", to.as_str())).await;
    let s = client(&mock);
    assert!(s.get_incident(&name()).await.is_err());
    assert!(
        s.list_modified_since(datetime!(2024-05-01 0:00 UTC), None)
            .await
            .is_err()
    );
    assert!(
        foreign.requests().is_empty(),
        "the redirect was followed: {:?}",
        foreign.requests()
    );
}

/// JSON text with a lone surrogate (`\ud800`) cannot become a Rust string: the item carrying it
/// is skipped like an unmappable one, and the rest of the page is delivered.
#[tokio::test]
async fn an_item_with_a_lone_surrogate_is_skipped_not_the_page() {
    let mock = Mock::start(|_, _| {
        let good = fixture("sentinel-get-incident.response.json");
        let body = format!(
            r#"{{"value":[{{"name":"{NAME}","properties":{{"title":"bad \ud800 title","severity":"High","status":"New"}}}},{good}]}}"#
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
        .list_modified_since(datetime!(2024-05-01 0:00 UTC), None)
        .await
        .unwrap();
    assert_eq!(page.incidents.len(), 1);
    assert_eq!(page.incidents[0].incident_number, Some(3177));
}
