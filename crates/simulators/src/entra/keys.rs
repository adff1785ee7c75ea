//! Signing keys, token minting and verification. Verification keys are decoded once per key
//! (rotation) and looked up by `kid`, so per-request work is one RSA verify.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::Jwk};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One RSA signing key.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Generates a 2048-bit RSA key with a fresh `kid`.
pub fn generate_key() -> anyhow::Result<SigningKey> {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let pem = kp.serialize_pem();
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())?;
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)?;
    let kid = uuid::Uuid::new_v4().simple().to_string();
    jwk.common.key_id = Some(kid.clone());
    let decoding = DecodingKey::from_jwk(&jwk)?;
    let mut jwk = serde_json::to_value(&jwk)?;
    if let Some(o) = jwk.as_object_mut() {
        o.insert("use".into(), json!("sig"));
    }
    Ok(SigningKey {
        kid,
        encoding,
        decoding,
        jwk,
    })
}

/// Claims of the tokens the simulator mints (Entra v1 access-token shape).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub appid: String,
    pub oid: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub idtyp: String,
    #[serde(default)]
    pub ver: String,
    /// Application permissions (app roles) of the caller: `SimConfig::app_roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

impl Claims {
    /// A valid app token for `aud` in `tid`.
    pub fn app(aud: &str, tid: &str, appid: &str, oid: &str, lifetime: i64) -> Self {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Self {
            aud: aud.to_owned(),
            iss: issuer(tid),
            iat: now,
            nbf: now - 300,
            exp: now + lifetime,
            tid: tid.to_owned(),
            appid: appid.to_owned(),
            oid: oid.to_owned(),
            sub: oid.to_owned(),
            idtyp: "app".into(),
            ver: "1.0".into(),
            roles: None,
        }
    }
}

/// `https://sts.windows.net/{tid}/`.
pub fn issuer(tid: &str) -> String {
    format!("https://sts.windows.net/{tid}/")
}

/// Signs `claims` with `key` (RS256, `kid` header).
pub fn sign(claims: &Claims, key: &SigningKey) -> anyhow::Result<String> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    header.typ = Some("JWT".into());
    Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
}

/// An `alg: none` token with the same claims.
pub fn unsigned(claims: &Claims) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let h = b.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let c = b.encode(serde_json::to_vec(claims).unwrap_or_default());
    format!("{h}.{c}.")
}

/// Kinds of bad token the simulator can mint on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadToken {
    Expired,
    WrongAudience,
    WrongIssuer,
    /// Signed with a key that is not in the JWKS.
    UnknownKey,
    /// `alg: none`.
    Unsigned,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("no bearer token")]
    Missing,
    #[error("token signature, key or format invalid")]
    Invalid,
    #[error("token expired or not yet valid")]
    Expired,
    #[error("wrong audience {0}")]
    Audience(String),
    #[error("wrong issuer")]
    Issuer,
}

/// Verifies signature (by `kid` among `keys`), lifetime, audience (one of `audiences`) and issuer.
pub fn verify(
    token: &str,
    keys: &[SigningKey],
    audiences: &[String],
) -> Result<Claims, TokenRejection> {
    let (_, c) = verify_signed(token, keys)?;
    check_claims(c, audiences)
}

/// As [`verify`], remembering tokens whose signature checked out: a client sends the same token
/// for an hour, and one RSA verification (plus building the aws-lc public key it needs) per call
/// was the simulators' largest per-request cost. A remembered token is re-checked for everything
/// that can change since: its key still published (rotation), its expiry against the clock, then
/// audience and issuer as on a first sight — so answers are the same as [`verify`]'s.
pub fn verify_cached(
    token: &str,
    keys: &[SigningKey],
    audiences: &[String],
    cache: &std::sync::Mutex<VerifiedTokens>,
) -> Result<Claims, TokenRejection> {
    let hit = crate::locks::lock(cache).map.get(token).cloned();
    let claims = match hit {
        Some(v) if keys.iter().any(|k| k.kid == v.kid) => {
            // jsonwebtoken's check with leeway 0: `exp < now` (whole seconds) is expired.
            if v.exp < jsonwebtoken::get_current_timestamp() {
                return Err(TokenRejection::Expired);
            }
            v.claims
        }
        // Unknown token, or its key left the JWKS: the full check decides (and refuses the latter).
        _ => {
            let (kid, claims) = verify_signed(token, keys)?;
            let mut c = crate::locks::lock(cache);
            if c.map.len() >= VerifiedTokens::MAX {
                c.map.clear();
            }
            c.map.insert(
                token.to_owned(),
                Verified {
                    kid,
                    // verify_signed accepted exp as a non-negative number, so it fits.
                    exp: u64::try_from(claims.exp).unwrap_or(0),
                    claims: claims.clone(),
                },
            );
            claims
        }
    };
    check_claims(claims, audiences)
}

/// Tokens whose signature and claims format were verified, by token string.
#[derive(Debug, Default)]
pub struct VerifiedTokens {
    map: std::collections::HashMap<String, Verified>,
}

impl VerifiedTokens {
    /// Clients hold a handful of tokens; a bound keeps a token-minting test from growing it.
    const MAX: usize = 1024;
}

#[derive(Debug, Clone)]
struct Verified {
    kid: String,
    exp: u64,
    claims: Claims,
}

/// Signature (by `kid` among `keys`), required claims and lifetime; returns the `kid` too.
fn verify_signed(token: &str, keys: &[SigningKey]) -> Result<(String, Claims), TokenRejection> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Invalid)?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenRejection::Invalid);
    }
    let kid = header.kid.ok_or(TokenRejection::Invalid)?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(TokenRejection::Invalid)?;
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_aud = false;
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
    let data =
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature
            | jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenRejection::Expired,
            _ => TokenRejection::Invalid,
        })?;
    Ok((kid, data.claims))
}

/// Audience (one of `audiences`) and issuer.
fn check_claims(c: Claims, audiences: &[String]) -> Result<Claims, TokenRejection> {
    if !audiences
        .iter()
        .any(|a| a.trim_end_matches('/') == c.aud.trim_end_matches('/'))
    {
        return Err(TokenRejection::Audience(c.aud));
    }
    if c.iss != issuer(&c.tid) {
        return Err(TokenRejection::Issuer);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A remembered token gets the answers a first sight gets: audience per API, expiry by the
    /// clock, refusal once its key is retired.
    #[test]
    fn cached_verification_answers_like_verify() {
        let key = generate_key().unwrap();
        let tid = "t1";
        let graph = vec!["https://graph.microsoft.com".to_owned()];
        let arm = vec!["https://management.azure.com".to_owned()];
        let cache = Mutex::new(VerifiedTokens::default());
        let keys = vec![key];
        let token = sign(
            &Claims::app("https://graph.microsoft.com", tid, "app", "oid", 3600),
            &keys[0],
        )
        .unwrap();
        for _ in 0..2 {
            assert_eq!(
                verify_cached(&token, &keys, &graph, &cache),
                verify(&token, &keys, &graph)
            );
            assert!(verify_cached(&token, &keys, &graph, &cache).is_ok());
            assert_eq!(
                verify_cached(&token, &keys, &arm, &cache),
                Err(TokenRejection::Audience(
                    "https://graph.microsoft.com".into()
                ))
            );
        }
        let short = sign(
            &Claims::app("https://graph.microsoft.com", tid, "app", "oid", 1),
            &keys[0],
        )
        .unwrap();
        assert!(verify_cached(&short, &keys, &graph, &cache).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(
            verify_cached(&short, &keys, &graph, &cache),
            Err(TokenRejection::Expired)
        );
        assert_eq!(verify(&short, &keys, &graph), Err(TokenRejection::Expired));
        let rotated = vec![generate_key().unwrap()];
        assert_eq!(
            verify_cached(&token, &rotated, &graph, &cache),
            Err(TokenRejection::Invalid)
        );
        assert_eq!(
            verify(&token, &rotated, &graph),
            Err(TokenRejection::Invalid)
        );
        assert_eq!(
            verify_cached("garbage", &keys, &graph, &cache),
            Err(TokenRejection::Invalid)
        );
    }
}
