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
    let c = data.claims;
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
