//! The authenticator's decisions on whole requests (which credential counts, in which order).

use super::*;
use crate::webhook::keys::Published;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, jwk::Jwk};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

const SECRET: &str = "0123456789abcdef-webhook";
const AUD: &str = "api://sync";
const ISS: &str = "https://sts.windows.net/t/";

struct Keys {
    jwk: Jwk,
    reads: Arc<AtomicUsize>,
    fail: bool,
}

#[async_trait::async_trait]
impl KeySource for Keys {
    async fn fetch(&self) -> Result<Published, String> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err("authority unreachable".into());
        }
        let mut keys = auth::KeySet::new();
        keys.insert(
            "k".into(),
            DecodingKey::from_jwk(&self.jwk).map_err(|e| e.to_string())?,
        );
        Ok(Published {
            keys,
            issuer: Some(ISS.into()),
        })
    }
}

fn key() -> (EncodingKey, Jwk) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let enc = EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&enc, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k".into());
    (enc, jwk)
}

fn token(enc: &EncodingKey) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("k".into());
    let claims = json!({"aud": AUD, "iss": ISS, "exp": now + 600, "nbf": now - 10, "appid": "a"});
    jsonwebtoken::encode(&h, &claims, enc).unwrap()
}

fn rules() -> TokenRules {
    TokenRules {
        audience: AUD.into(),
        issuers: vec![],
        allowed_app_ids: vec![],
    }
}

fn request(headers: &[(&str, &str)]) -> HttpRequestData {
    HttpRequestData {
        url: String::new(),
        method: "POST".into(),
        query: BTreeMap::new(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
            .collect(),
        params: BTreeMap::new(),
        body: None,
    }
}

#[tokio::test]
async fn the_secret_decides_when_sent_and_otherwise_the_token() {
    let (enc, jwk) = key();
    let reads = Arc::new(AtomicUsize::new(0));
    let a = Authenticator::secret(SECRET).with_token(
        rules(),
        Box::new(Keys {
            jwk,
            reads: reads.clone(),
            fail: false,
        }),
    );
    let bearer = format!("Bearer {}", token(&enc));
    assert_eq!(
        a.check(&request(&[("X-SYNC-SECRET", SECRET)])).await,
        Ok(())
    );
    assert_eq!(
        a.check(&request(&[("Authorization", &bearer)])).await,
        Ok(())
    );
    assert_eq!(
        a.check(&request(&[
            ("X-Sync-Secret", "wrong"),
            ("Authorization", &bearer)
        ]))
        .await,
        Err(AuthError::WrongSecret),
        "a wrong secret is not rescued by a token"
    );
    assert_eq!(
        a.check(&request(&[("X-Sync-Secret", "")])).await,
        Err(AuthError::EmptySecret)
    );
    assert_eq!(a.check(&request(&[])).await, Err(AuthError::Missing));
    assert_eq!(
        a.check(&request(&[("Authorization", "Bearer not.a.jwt")]))
            .await,
        Err(AuthError::Token(auth::TokenError::Malformed(
            "the header is not base64url".into()
        )))
    );
    assert_eq!(reads.load(Ordering::SeqCst), 1, "the keys are read once");
}

#[tokio::test]
async fn without_a_token_audience_a_bearer_token_is_no_credential_and_disabled_accepts_all() {
    let (enc, _) = key();
    let bearer = format!("Bearer {}", token(&enc));
    let a = Authenticator::secret(SECRET);
    assert_eq!(
        a.check(&request(&[("Authorization", &bearer)])).await,
        Err(AuthError::Missing)
    );
    assert_eq!(Authenticator::disabled().check(&request(&[])).await, Ok(()));
}

#[tokio::test]
async fn keys_that_cannot_be_read_refuse_the_token_as_unavailable() {
    let (enc, jwk) = key();
    let a = Authenticator::disabled().with_token(
        rules(),
        Box::new(Keys {
            jwk,
            reads: Arc::default(),
            fail: true,
        }),
    );
    let bearer = format!("Bearer {}", token(&enc));
    assert!(matches!(
        a.check(&request(&[("Authorization", &bearer)])).await,
        Err(AuthError::KeysUnavailable(_))
    ));
    assert_eq!(a.check(&request(&[])).await, Err(AuthError::Missing));
}

#[tokio::test]
async fn calls_for_one_incident_take_turns_and_other_incidents_never_wait() {
    let locks = IncidentLocks::default();
    let a = SentinelIncidentName::parse("73e01a99-5cd7-4139-a149-9f2736ff2ab5").unwrap();
    let first = locks.turn(&a).await;
    // Any other incident gets its turn at once, whatever its name hashes to.
    for _ in 0..300 {
        let other = SentinelIncidentName::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
        let t = tokio::time::timeout(Duration::from_millis(100), locks.turn(&other)).await;
        assert!(t.is_ok(), "{other} waited for {a}");
    }
    // The same incident waits for the first call.
    let second = locks.turn(&a);
    tokio::pin!(second);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), second.as_mut())
            .await
            .is_err(),
        "a second call for the incident waits"
    );
    drop(first);
    let second = tokio::time::timeout(Duration::from_millis(500), second)
        .await
        .expect("its turn once the first is done");
    assert_eq!(locks.len(), 1, "the incident's lock stays while in use");
    drop(second);
    assert_eq!(
        locks.len(),
        0,
        "locks are removed when their last user is done"
    );
}
