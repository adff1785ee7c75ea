use crate::common::*;
use dss_simulators::{BadToken, Cloud, SimConfig, TokenSpec, wellknown};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn client_credentials(
    env: &Env,
    tenant: &str,
    secret: &str,
    scope: &str,
) -> (StatusCode, Value) {
    let url = format!(
        "{}/{tenant}/oauth2/v2.0/token",
        env.sims.urls().authority_host
    );
    let form = [
        ("client_id", wellknown::CLIENT_ID),
        ("client_secret", secret),
        ("grant_type", "client_credentials"),
        ("scope", scope),
    ];
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let r = env
        .http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn client_credentials_over_https_mint_rs256_tokens_with_entra_claims() {
    let env = start().await;
    assert!(env.sims.urls().authority_host.starts_with("https://"));
    let (status, body) = client_credentials(
        &env,
        T2,
        wellknown::CLIENT_SECRET,
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 3000);
    let token = body["access_token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["iss"], format!("https://sts.windows.net/{T2}/"));
    assert_eq!(c["tid"], T2);
    assert_eq!(c["appid"], wellknown::CLIENT_ID);
    assert_eq!(c["oid"], wellknown::CLIENT_OBJECT_ID);
    let (iat, nbf, exp) = (
        c["iat"].as_i64().unwrap(),
        c["nbf"].as_i64().unwrap(),
        c["exp"].as_i64().unwrap(),
    );
    assert!(nbf <= iat && iat < exp);
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    // The token works on Graph.
    let url = format!("{}/v1.0/security/incidents", env.sims.urls().graph);
    assert_eq!(
        env.call(Method::GET, &url, Some(token), None, &[])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn token_endpoint_refuses_bad_secret_unconsented_tenant_and_scope_without_default() {
    let mut cfg = SimConfig::default();
    cfg.defender_tenants
        .push("c0ffee00-0000-4000-8000-000000000001".into());
    let env = start_with(cfg).await;
    let (s, b) =
        client_credentials(&env, T1, "wrong", "https://graph.microsoft.com/.default").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["error"], "invalid_client");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    let (s, b) = client_credentials(
        &env,
        "c0ffee00-0000-4000-8000-000000000001",
        wellknown::CLIENT_SECRET,
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS700016")
    );
    let (s, b) = client_credentials(
        &env,
        T1,
        wellknown::CLIENT_SECRET,
        "https://graph.microsoft.com",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"], "invalid_scope");
}

#[tokio::test]
async fn managed_identity_checks_the_identity_header() {
    let env = start().await;
    let url = format!(
        "{}?api-version=2019-08-01&resource=https://management.azure.com",
        env.sims.urls().identity_endpoint
    );
    assert!(url.starts_with("http://"));
    let r = env.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = env
        .http
        .get(&url)
        .header("X-IDENTITY-HEADER", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = env
        .http
        .get(&url)
        .header("X-IDENTITY-HEADER", wellknown::IDENTITY_HEADER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["expires_on"].as_str().unwrap().parse::<i64>().is_ok(),
        "expires_on is a string of seconds"
    );
    let c = claims(b["access_token"].as_str().unwrap());
    assert_eq!(c["tid"], T1);
    assert_eq!(c["appid"], wellknown::MI_CLIENT_ID);
    assert_eq!(c["aud"], "https://management.azure.com");
    let r = env
        .call(
            Method::GET,
            &format!("{}?api-version=2024-03-01", env.incidents_url()),
            b["access_token"].as_str(),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // A user-assigned identity that is not assigned.
    let r = env
        .http
        .get(format!(
            "{url}&client_id=00000000-0000-0000-0000-000000000000"
        ))
        .header("X-IDENTITY-HEADER", wellknown::IDENTITY_HEADER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn openid_configuration_and_jwks_publish_the_signing_key_and_rotation_works() {
    let env = start().await;
    let host = &env.sims.urls().authority_host;
    let oc: Value = env
        .http
        .get(format!("{host}/{T1}/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        oc["token_endpoint"],
        format!("{host}/{T1}/oauth2/v2.0/token")
    );
    let jwks: Value = env
        .http
        .get(oc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let old = env.token(GRAPH, T1);
    let kid_of = |t: &str| -> String {
        let h: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                t.split('.').next().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        h["kid"].as_str().unwrap().to_owned()
    };
    assert_eq!(jwks["keys"][0]["kid"], kid_of(&old).as_str());
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    let new_kid = env.sims.rotate_keys(false).unwrap();
    let new = env.token(GRAPH, T1);
    assert_eq!(kid_of(&new), new_kid);
    let url = format!("{}/v1.0/security/incidents", env.sims.urls().graph);
    assert_eq!(
        env.call(Method::GET, &url, Some(&old), None, &[])
            .await
            .status,
        StatusCode::OK,
        "old key still published"
    );
    env.sims.rotate_keys(true).unwrap();
    assert_eq!(
        env.call(Method::GET, &url, Some(&old), None, &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "retired key"
    );
    let jwks: Value = env
        .http
        .get(oc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401() {
    let env = start().await;
    let url = format!("{}/v1.0/security/incidents", env.sims.urls().graph);
    for bad in [
        BadToken::Expired,
        BadToken::WrongAudience,
        BadToken::WrongIssuer,
        BadToken::UnknownKey,
        BadToken::Unsigned,
    ] {
        let spec = TokenSpec {
            audience: GRAPH.into(),
            tenant: T1.into(),
            app_id: wellknown::CLIENT_ID.into(),
            object_id: wellknown::CLIENT_OBJECT_ID.into(),
            bad: Some(bad),
        };
        let t = env.sims.mint_token(&spec).unwrap();
        let r = env.call(Method::GET, &url, Some(&t), None, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad:?}");
        assert_eq!(r.body["error"]["code"], "InvalidAuthenticationToken");
    }
    // Queued bad tokens come out of the real token endpoint.
    env.sims.queue_bad_tokens(BadToken::Expired, 1);
    let (_, b) = client_credentials(
        &env,
        T1,
        wellknown::CLIENT_SECRET,
        "https://graph.microsoft.com/.default",
    )
    .await;
    let r = env
        .call(Method::GET, &url, b["access_token"].as_str(), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (_, b) = client_credentials(
        &env,
        T1,
        wellknown::CLIENT_SECRET,
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(
        env.call(Method::GET, &url, b["access_token"].as_str(), None, &[])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn each_api_accepts_its_public_audience_or_served_origin_only() {
    let env = start().await;
    let u = env.sims.urls().clone();
    let graph = format!("{}/v1.0/security/incidents", u.graph);
    let arm = format!("{}?api-version=2024-03-01", env.incidents_url());
    let status = |url: String, aud: String| {
        let t = env.token(&aud, T1);
        let env = &env;
        async move {
            env.call(Method::GET, &url, Some(&t), None, &[])
                .await
                .status
        }
    };
    assert_eq!(status(graph.clone(), GRAPH.into()).await, StatusCode::OK);
    assert_eq!(status(graph.clone(), u.graph.clone()).await, StatusCode::OK);
    assert_eq!(
        status(graph.clone(), ARM.into()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(arm.clone(), ARM.into()).await, StatusCode::OK);
    assert_eq!(status(arm.clone(), format!("{ARM}/")).await, StatusCode::OK);
    assert_eq!(status(arm.clone(), u.arm.clone()).await, StatusCode::OK);
    assert_eq!(
        status(arm.clone(), "https://storage.azure.com".into()).await,
        StatusCode::UNAUTHORIZED
    );
    let r = env
        .call(Method::GET, &arm, Some(&env.token(GRAPH, T1)), None, &[])
        .await;
    assert_eq!(
        r.body["error"]["code"],
        "InvalidAuthenticationTokenAudience"
    );
    let r = env.call(Method::GET, &arm, None, None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["code"], "AuthenticationFailed");
    let r = env.call(Method::GET, &graph, None, None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = env
        .call(
            Method::POST,
            &env.logs_url(wellknown::STREAM_NAME),
            Some(&env.token(GRAPH, T1)),
            Some(&serde_json::json!([])),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = env
        .call(
            Method::POST,
            &env.logs_url(wellknown::STREAM_NAME),
            Some(&env.token(MONITOR, T1)),
            Some(&serde_json::json!([])),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

/// Each service takes tokens for its own audience in its cloud (and for its served origin, which
/// is what a client derives from a loopback endpoint); another cloud's audience is refused.
#[tokio::test]
async fn each_cloud_accepts_its_own_audiences_only() {
    for (cloud, graph, arm, monitor) in [
        (
            Cloud::Public,
            "https://graph.microsoft.com",
            "https://management.azure.com",
            "https://monitor.azure.com",
        ),
        (
            Cloud::UsGovernment,
            "https://graph.microsoft.us",
            "https://management.usgovcloudapi.net",
            "https://monitor.azure.us",
        ),
        (
            Cloud::China,
            "https://microsoftgraph.chinacloudapi.cn",
            "https://management.chinacloudapi.cn",
            "https://monitor.azure.cn",
        ),
    ] {
        let env = start_with(SimConfig {
            cloud,
            ..SimConfig::default()
        })
        .await;
        let urls = env.sims.urls();
        let users = format!("{}/v1.0/users/{}", urls.graph, wellknown::ANALYST_UPN);
        let incidents = format!("{}?api-version=2024-03-01", env.incidents_url());
        let logs = env.logs_url(wellknown::STREAM_NAME);
        let get = |url: &str, aud: &str| {
            let token = env.token(aud, T1);
            let url = url.to_owned();
            let env = &env;
            async move {
                env.call(Method::GET, &url, Some(&token), None, &[])
                    .await
                    .status
            }
        };
        let post = |aud: &str| {
            let token = env.token(aud, T1);
            let url = logs.clone();
            let env = &env;
            async move {
                env.call(
                    Method::POST,
                    &url,
                    Some(&token),
                    Some(&serde_json::json!([])),
                    &[],
                )
                .await
                .status
            }
        };
        assert_eq!(get(&users, graph).await, StatusCode::OK, "{cloud:?} Graph");
        assert_eq!(
            get(&users, &urls.graph).await,
            StatusCode::OK,
            "{cloud:?} served origin"
        );
        assert_eq!(get(&incidents, arm).await, StatusCode::OK, "{cloud:?} ARM");
        assert_eq!(
            get(&incidents, &urls.arm).await,
            StatusCode::OK,
            "{cloud:?} served origin"
        );
        assert_eq!(
            post(monitor).await,
            StatusCode::NO_CONTENT,
            "{cloud:?} Logs"
        );
        assert_eq!(
            post(&urls.logs).await,
            StatusCode::NO_CONTENT,
            "{cloud:?} served origin"
        );
        if cloud != Cloud::Public {
            assert_eq!(
                get(&users, GRAPH).await,
                StatusCode::UNAUTHORIZED,
                "{cloud:?} refuses the public Graph audience"
            );
            assert_eq!(
                get(&incidents, ARM).await,
                StatusCode::UNAUTHORIZED,
                "{cloud:?} refuses the public ARM audience"
            );
            assert_eq!(
                post(MONITOR).await,
                StatusCode::UNAUTHORIZED,
                "{cloud:?} refuses the public Logs audience"
            );
        }
    }
}
