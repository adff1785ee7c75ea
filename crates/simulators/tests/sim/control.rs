use crate::common::*;
use dss_simulators::{ActionError, DefenderAction, SentinelAction, wellknown};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn defender_actions_show_through_graph_and_bump_last_update() {
    let env = start().await;
    let ids = env.sims.seed(T1, 2, 11);
    let (a, b) = (ids[0].clone(), ids[1].clone());
    let before = env.sims.defender_incident(T1, &a).unwrap()["lastUpdateDateTime"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = &env.sims;
    s.defender_action(
        T1,
        &a,
        DefenderAction::Assign {
            assigned_to: Some("kai.carter@contoso.com".into()),
        },
    )
    .unwrap();
    s.defender_action(
        T1,
        &a,
        DefenderAction::Tag {
            custom_tags: vec!["Ransomware".into()],
        },
    )
    .unwrap();
    s.defender_action(
        T1,
        &a,
        DefenderAction::Comment {
            comment: "looking".into(),
        },
    )
    .unwrap();
    s.defender_action(
        T1,
        &a,
        DefenderAction::Classify {
            classification: "truePositive".into(),
            determination: Some("malware".into()),
        },
    )
    .unwrap();
    s.defender_action(
        T1,
        &a,
        DefenderAction::Resolve {
            classification: None,
            determination: None,
            resolving_comment: Some("done".into()),
        },
    )
    .unwrap();
    let n_alerts = s.defender_incident(T1, &a).unwrap()["alerts"]
        .as_array()
        .unwrap()
        .len();
    s.defender_action(T1, &a, DefenderAction::AddAlert { alert: None })
        .unwrap();
    let r = env
        .graph(
            Method::GET,
            &format!("/v1.0/security/incidents/{a}?$expand=alerts"),
            T1,
            None,
        )
        .await;
    let i = &r.body;
    assert_eq!(i["assignedTo"], "kai.carter@contoso.com");
    assert_eq!(i["customTags"], json!(["Ransomware"]));
    assert_eq!(
        i["comments"].as_array().unwrap().last().unwrap()["comment"],
        "looking"
    );
    assert_eq!(i["classification"], "truePositive");
    assert_eq!(i["determination"], "malware");
    assert_eq!(i["status"], "resolved");
    assert_eq!(i["resolvingComment"], "done");
    assert_eq!(i["alerts"].as_array().unwrap().len(), n_alerts + 1);
    assert_eq!(
        i["alerts"].as_array().unwrap().last().unwrap()["incidentId"],
        a.as_str()
    );
    assert_eq!(i["lastModifiedBy"], wellknown::ANALYST_UPN);
    assert!(i["lastUpdateDateTime"].as_str().unwrap() > before.as_str());
    // Merge b into a.
    let nb = s.defender_incident(T1, &b).unwrap()["alerts"]
        .as_array()
        .unwrap()
        .len();
    let merged = s
        .defender_action(T1, &b, DefenderAction::Merge { into: a.clone() })
        .unwrap();
    assert_eq!(merged["status"], "redirected");
    assert_eq!(merged["redirectIncidentId"], a.as_str());
    assert_eq!(
        s.defender_incident(T1, &a).unwrap()["alerts"]
            .as_array()
            .unwrap()
            .len(),
        n_alerts + 1 + nb
    );
    assert_eq!(
        s.defender_action(
            T1,
            "424242",
            DefenderAction::Comment {
                comment: "x".into()
            }
        )
        .unwrap_err(),
        ActionError::NotFound("424242".into())
    );
}

async fn sentinel_incident(env: &Env) -> String {
    let name = new_name();
    let r = env
        .arm(
            Method::PUT,
            &format!("/{name}"),
            Some(&minimal_incident("portal")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    name
}

#[tokio::test]
async fn sentinel_actions_change_etag_and_last_modified_like_the_portal() {
    let env = start().await;
    let name = sentinel_incident(&env).await;
    let s = &env.sims;
    let mut last = s.sentinel_incident(&name).unwrap();
    let actions = [
        SentinelAction::SetOwner {
            owner: Some(wellknown::ANALYST_UPN.into()),
        },
        SentinelAction::SetLabels {
            labels: vec!["Phishing".into()],
        },
        SentinelAction::Comment {
            message: "analyst note".into(),
        },
        SentinelAction::SetSeverity {
            severity: "high".into(),
        },
        SentinelAction::SetStatus {
            status: "Closed".into(),
            classification: Some("TruePositive".into()),
            classification_reason: Some("SuspiciousActivity".into()),
            classification_comment: Some("reset password".into()),
        },
    ];
    for a in actions {
        let trigger = s.sentinel_action(&name, a).unwrap();
        let now = s.sentinel_incident(&name).unwrap();
        assert_ne!(now["etag"], last["etag"]);
        assert!(
            now["properties"]["lastModifiedTimeUtc"].as_str()
                >= last["properties"]["lastModifiedTimeUtc"].as_str()
        );
        assert_eq!(trigger["object"]["properties"], now["properties"]);
        last = now;
    }
    let p = &last["properties"];
    assert_eq!(p["owner"]["objectId"], wellknown::ANALYST_OBJECT_ID);
    assert_eq!(p["labels"][0]["labelName"], "Phishing");
    assert_eq!(p["severity"], "High");
    assert_eq!(p["status"], "Closed");
    assert_eq!(p["classificationReason"], "SuspiciousActivity");
    assert_eq!(
        s.sentinel_comments(&name)[0]["properties"]["message"],
        "analyst note"
    );
    let t = s.sentinel_action(
        &name,
        SentinelAction::Classify {
            classification: Some("FalsePositive".into()),
            classification_reason: Some("IncorrectAlertLogic".into()),
            classification_comment: None,
        },
    );
    assert_eq!(
        t.unwrap()["incidentUpdates"]["updatedFields"],
        json!(["Classification"])
    );
    assert_eq!(
        s.sentinel_incident(&name).unwrap()["properties"]["classification"],
        "FalsePositive"
    );
    assert!(
        s.sentinel_action(
            &name,
            SentinelAction::Classify {
                classification: None,
                classification_reason: None,
                classification_comment: None
            }
        )
        .is_err(),
        "Closed needs one"
    );
    // The portal refuses what the API refuses.
    let e = s.sentinel_action(
        &name,
        SentinelAction::SetStatus {
            status: "Closed".into(),
            classification: Some("BenignPositive".into()),
            classification_reason: None,
            classification_comment: None,
        },
    );
    assert!(matches!(e, Err(ActionError::Invalid(_))));
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn trigger_body_has_the_fixture_shape() {
    let env = start().await;
    let name = new_name();
    let mut inc = minimal_incident("portal");
    inc["properties"]["description"] = json!("d");
    inc["properties"]["firstActivityTimeUtc"] = json!("2026-10-09T01:58:41Z");
    inc["properties"]["lastActivityTimeUtc"] = json!("2026-10-09T02:09:12Z");
    env.arm(Method::PUT, &format!("/{name}"), Some(&inc)).await;
    let body = env
        .sims
        .sentinel_action(
            &name,
            SentinelAction::SetStatus {
                status: "Closed".into(),
                classification: Some("FalsePositive".into()),
                classification_reason: Some("InaccurateData".into()),
                classification_comment: Some("noise".into()),
            },
        )
        .unwrap();
    let fx = fixture("sentinel-incident-trigger.update.json");
    for k in keys(&fx) {
        assert!(body.get(&k).is_some(), "missing {k}");
    }
    for k in keys(&fx["workspaceInfo"]) {
        assert!(body["workspaceInfo"].get(&k).is_some(), "workspaceInfo.{k}");
    }
    for k in keys(&fx["incidentUpdates"]) {
        assert!(
            body["incidentUpdates"].get(&k).is_some(),
            "incidentUpdates.{k}"
        );
    }
    for k in keys(&fx["object"]["properties"]) {
        assert!(
            body["object"]["properties"].get(&k).is_some(),
            "object.properties.{k}"
        );
    }
    assert_eq!(
        body["incidentUpdates"]["updatedFields"],
        json!(["Status", "Classification"])
    );
    assert_eq!(body["object"]["name"], name.as_str());
    assert_eq!(
        body["workspaceInfo"]["SubscriptionId"],
        wellknown::SUBSCRIPTION_ID
    );
    let c = env
        .sims
        .sentinel_action(
            &name,
            SentinelAction::Comment {
                message: "hello".into(),
            },
        )
        .unwrap();
    assert_eq!(
        c["incidentUpdates"]["comments"][0]["properties"]["message"],
        "hello"
    );
    let create = env.sims.trigger_body(&name, &[], "Create").unwrap();
    assert!(create.get("incidentUpdates").is_none());
}

#[tokio::test]
async fn fixtures_load_on_the_sentinel_side_as_they_are() {
    let env = start().await;
    let fx = fixture("sentinel-get-incident.response.json");
    let name = env.sims.insert_sentinel_incident(&fx).unwrap();
    let r = env.arm(Method::GET, &format!("/{name}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["etag"], fx["etag"]);
    assert_eq!(r.body["properties"]["providerIncidentId"], "3177");
    assert_eq!(r.body["properties"]["title"], fx["properties"]["title"]);
    let r = env
        .arm(
            Method::GET,
            "?$filter=properties/lastModifiedTimeUtc ge 2019-01-01T13:15:30Z",
            None,
        )
        .await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
    let r = env
        .arm(
            Method::GET,
            "?$filter=properties/lastModifiedTimeUtc gt 2019-01-01T13:15:30Z",
            None,
        )
        .await;
    assert_eq!(
        r.body["value"].as_array().unwrap().len(),
        0,
        "the fixture's own timestamps count"
    );
}

#[tokio::test]
async fn counters_and_the_http_control_api() {
    let env = start().await;
    let c = &env.sims.urls().control;
    let r: Value = env
        .http
        .post(format!("{c}/control/defender/{T2}/seed"))
        .json(&json!({"n": 3, "seed": 4}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["ids"][0].as_str().unwrap().to_owned();
    let r = env
        .http
        .post(format!("{c}/control/defender/{T2}/incidents/{id}"))
        .json(&json!({"action": "assign", "assigned_to": "lee.wong@contoso.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let g = env
        .graph(
            Method::GET,
            &format!("/v1.0/security/incidents/{id}"),
            T2,
            None,
        )
        .await;
    assert_eq!(g.body["assignedTo"], "lee.wong@contoso.com");
    env.graph(Method::GET, "/v1.0/security/incidents", T2, None)
        .await;
    let name = sentinel_incident(&env).await;
    let r = env
        .http
        .post(format!("{c}/control/sentinel/incidents/{name}"))
        .json(&json!({"action": "set_labels", "labels": ["x"]}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["incidentUpdates"]["updatedFields"], json!(["Labels"]));
    let r = env
        .http
        .put(format!("{c}/control/faults/graph"))
        .json(&json!({"sequence": [{"kind": "service_unavailable"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        env.graph(Method::GET, "/v1.0/security/incidents", T2, None)
            .await
            .status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let counters: Value = env
        .http
        .get(format!("{c}/control/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let g = &counters["by_api"]["graph"];
    assert_eq!(g["GET incidents/{id}"]["calls"], 1);
    assert_eq!(g["GET incidents"]["calls"], 2);
    assert_eq!(g["GET incidents"]["server_errors"], 1);
    assert_eq!(counters["by_api"]["arm"]["PUT incidents/{id}"]["ok"], 1);
    assert_eq!(env.sims.counters().total("graph"), 3);
    env.sims.reset_counters();
    assert_eq!(env.sims.counters().total("graph"), 0);
}

#[tokio::test]
async fn automation_triggers_record_api_writes_and_portal_actions() {
    let env = start().await;
    let s = &env.sims;
    let before = sentinel_incident(&env).await;
    s.record_automation_triggers(true);
    assert!(
        s.drain_automation_triggers().is_empty(),
        "nothing before recording"
    );
    let name = new_name();
    env.arm(
        Method::PUT,
        &format!("/{name}"),
        Some(&minimal_incident("a")),
    )
    .await;
    let mut upd = minimal_incident("a");
    upd["properties"]["status"] = json!("Active");
    env.arm(Method::PUT, &format!("/{name}"), Some(&upd)).await;
    env.arm(
        Method::PUT,
        &format!("/{name}/comments/{}", new_name()),
        Some(&json!({"properties": {"message": "[Synced] hi"}})),
    )
    .await;
    s.sentinel_action(
        &before,
        SentinelAction::SetOwner {
            owner: Some("lee.wong@contoso.com".into()),
        },
    )
    .unwrap();
    let t = s.drain_automation_triggers();
    assert_eq!(t.len(), 4);
    assert_eq!(t[0]["objectEventType"], "Create");
    assert_eq!(t[1]["incidentUpdates"]["updatedFields"], json!(["Status"]));
    assert_eq!(
        t[1]["incidentUpdates"]["updatedBy"]["source"],
        "Application"
    );
    assert_eq!(
        t[1]["incidentUpdates"]["updatedBy"]["name"],
        wellknown::CLIENT_ID
    );
    assert_eq!(
        t[2]["incidentUpdates"]["comments"][0]["properties"]["message"],
        "[Synced] hi"
    );
    assert_eq!(t[3]["incidentUpdates"]["updatedBy"]["source"], "User");
    assert_eq!(t[3]["object"]["name"], before.as_str());
    assert!(s.drain_automation_triggers().is_empty());
    s.record_automation_triggers(false);
    env.arm(
        Method::PUT,
        &format!("/{name}"),
        Some(&minimal_incident("b")),
    )
    .await;
    assert!(s.drain_automation_triggers().is_empty());
}

#[tokio::test]
async fn the_http_seed_takes_a_fixed_shape() {
    let env = start().await;
    let c = &env.sims.urls().control;
    let body = json!({"n": 4, "seed": 5, "alerts": 3, "evidence": 5});
    let r: Value = env
        .http
        .post(format!("{c}/control/defender/{T2}/seed"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ids"].as_array().unwrap().len(), 4);
    let list: Value = env
        .http
        .get(format!("{c}/control/defender/{T2}/incidents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 4);
    for inc in list {
        let alerts = inc["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 3);
        assert!(
            alerts
                .iter()
                .all(|a| a["evidence"].as_array().unwrap().len() == 5),
            "{inc}"
        );
    }
}
