//! Authentication: the shared secret and Entra bearer tokens (each defect refused with 401),
//! one log line per rejection, never the secret or the token in the logs.

use super::*;
use dss_simulators::{BadToken, TokenSpec};

fn spec(bad: Option<BadToken>) -> TokenSpec {
    TokenSpec {
        audience: AUDIENCE.into(),
        tenant: wellknown::TENANT_ID.into(),
        app_id: wellknown::MI_CLIENT_ID.into(),
        object_id: wellknown::MI_OBJECT_ID.into(),
        bad,
    }
}

/// The handler's whole output so far (stdout and stderr).
fn handler_output(world: &World) -> String {
    let o = world.host.output();
    format!("{o:?}")
}

#[tokio::test]
async fn the_secret_is_required_and_compared_exactly() {
    let world = secured_world().await;
    let (id, name) = one_synced(&world, 92).await;
    let body = analyst_closes(&world, &name).to_string();
    world.sims.reset_counters();
    let wrong = "e2e-webhook-secret-012345678X";
    for headers in [
        vec![],
        vec![("X-Sync-Secret", "")],
        vec![("X-Sync-Secret", wrong)],
        vec![("X-Sync-Secret", "short")],
        vec![("Authorization", "Basic Zm9vOmJhcg==")],
    ] {
        let res = post(&world, &body, &headers).await;
        assert_eq!(res.status, 401, "{headers:?}: {}", res.body);
        assert!(
            res.reply
                .logs
                .iter()
                .filter(|l| l.contains("rejected (401)"))
                .count()
                == 1,
            "{:?}",
            res.reply.logs
        );
    }
    assert_eq!(defender_writes(&world), 0);
    assert_eq!(defender_status(&world, &id), "active");

    // Header names are case-insensitive.
    let res = post(&world, &body, &[("x-sync-secret", SECRET)]).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(json(&res)["result"], "applied");
    assert_eq!(defender_status(&world, &id), "resolved");
    let out = handler_output(&world);
    assert!(
        !out.contains(SECRET) && !out.contains(wrong),
        "a secret reached the logs"
    );
}

#[tokio::test]
async fn a_valid_token_is_accepted_and_each_defect_is_refused() {
    let world = secured_world().await;
    let (id, name) = one_synced(&world, 93).await;
    let body = analyst_closes(&world, &name).to_string();
    world.sims.reset_counters();

    let good = world.sims.mint_token(&spec(None)).unwrap();
    let mut bad: Vec<(&str, String)> = Vec::new();
    for (what, kind) in [
        ("expired", BadToken::Expired),
        ("other audience", BadToken::WrongAudience),
        ("other issuer", BadToken::WrongIssuer),
        ("unknown key id", BadToken::UnknownKey),
        ("alg none", BadToken::Unsigned),
    ] {
        bad.push((what, world.sims.mint_token(&spec(Some(kind))).unwrap()));
    }
    bad.push((
        "HMAC signed with the public key",
        hmac_with_public_key(&world, &good).await,
    ));

    for (what, token) in &bad {
        let auth = format!("Bearer {token}");
        let res = post(&world, &body, &[("Authorization", &auth)]).await;
        assert_eq!(res.status, 401, "{what}: {}", res.body);
        assert_eq!(
            res.reply
                .logs
                .iter()
                .filter(|l| l.contains("rejected (401)"))
                .count(),
            1,
            "{what}: {:?}",
            res.reply.logs
        );
        assert_eq!(
            res.headers.get("WWW-Authenticate").map(String::as_str),
            Some("Bearer"),
            "{what}"
        );
    }
    assert_eq!(defender_writes(&world), 0, "no token defect wrote anything");

    let res = post(
        &world,
        &body,
        &[("Authorization", &format!("Bearer {good}"))],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(defender_status(&world, &id), "resolved");
    let out = handler_output(&world);
    bad.push(("good", good.clone()));
    for (what, token) in &bad {
        let sig = token.rsplit('.').next().unwrap_or("");
        assert!(
            sig.is_empty() || !out.contains(sig),
            "{what}: a token reached the logs"
        );
    }
}

/// A token with the valid token's claims and key id, HMAC-signed (HS256) with the authority's
/// published RSA key as the secret: the classic algorithm-confusion attack.
async fn hmac_with_public_key(world: &World, good: &str) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value = serde_json::from_slice(&b.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&b.decode(parts[1]).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(world.sims.cert_pem().as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let jwks: Value = client
        .get(format!(
            "{}/{}/discovery/v2.0/keys",
            world.sims.urls().authority_host,
            wellknown::TENANT_ID
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = header["kid"].as_str().map(str::to_owned);
    jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(n.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn with_an_allow_list_only_the_listed_apps_tokens_are_accepted() {
    let world = World::start_with(WorldOptions {
        unset: vec!["WEBHOOK_AUTH".into()],
        env: vec![
            ("WEBHOOK_AUDIENCE".into(), AUDIENCE.into()),
            (
                "WEBHOOK_ALLOWED_APP_IDS".into(),
                wellknown::MI_CLIENT_ID.into(),
            ),
        ],
        ..Default::default()
    })
    .await;
    let (id, name) = one_synced(&world, 100).await;
    let body = analyst_closes(&world, &name).to_string();
    let other_app = world
        .sims
        .mint_token(&TokenSpec {
            app_id: wellknown::CLIENT_ID.into(),
            object_id: wellknown::CLIENT_OBJECT_ID.into(),
            ..spec(None)
        })
        .unwrap();
    let res = post(
        &world,
        &body,
        &[("Authorization", &format!("Bearer {other_app}"))],
    )
    .await;
    assert_eq!(res.status, 401, "{}", res.body);
    assert!(res.body.contains("WEBHOOK_ALLOWED_APP_IDS"), "{}", res.body);
    assert_eq!(defender_status(&world, &id), "active");
    // Without WEBHOOK_SECRET, a secret header is no credential at all.
    let res = post(&world, &body, &[("X-Sync-Secret", SECRET)]).await;
    assert_eq!(res.status, 401, "{}", res.body);

    let playbook = world.sims.mint_token(&spec(None)).unwrap();
    let res = post(
        &world,
        &body,
        &[("Authorization", &format!("Bearer {playbook}"))],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(defender_status(&world, &id), "resolved");
}
