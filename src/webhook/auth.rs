//! Who may call SentinelWebhook: the shared secret (`X-Sync-Secret`, compared in constant time)
//! or an Entra ID bearer token for `WEBHOOK_AUDIENCE`. PURE: the decisions take the presented
//! text, the expected values and the signing keys as arguments (the keys are fetched and cached
//! by [`super::keys`]); the fuzzers call [`check_secret`] and [`validate_token`].
//!
//! Tokens: RS256 only (`none` and every HMAC algorithm are refused before any key is looked
//! at), a key of the authority's JWKS by `kid`, `iss` one of the authority's issuers, `aud` the
//! configured audience, `exp`/`nbf` with [`CLOCK_SKEW_SECS`] of skew, and optionally the
//! caller's app id (`appid` of v1 tokens, `azp` of v2 tokens) in an allow-list.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// Seconds of clock skew tolerated on `exp` and `nbf`.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// Tokens longer than this are refused unread (Entra access tokens are a few KB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The secret a caller must present, kept as its SHA-256 so the comparison takes the same time
/// whatever the presented value's length.
#[derive(Clone)]
pub struct ExpectedSecret([u8; 32]);

impl ExpectedSecret {
    pub fn new(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }
}

impl std::fmt::Debug for ExpectedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExpectedSecret(..)")
    }
}

/// Why a caller was refused (401). The text never contains the secret or the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send header X-Sync-Secret or an Authorization bearer token")]
    Missing,
    #[error("header X-Sync-Secret is empty")]
    EmptySecret,
    #[error("header X-Sync-Secret does not match")]
    WrongSecret,
    #[error("the Authorization header is not a bearer token")]
    NotBearer,
    #[error("bearer token refused: {0}")]
    Token(#[from] TokenError),
    #[error("bearer token refused: the authority's signing keys cannot be read now ({0})")]
    KeysUnavailable(String),
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("it is not a JWT ({0})")]
    Malformed(String),
    #[error("algorithm {0} is not accepted (RS256 only)")]
    Algorithm(String),
    #[error("it names no key id (kid)")]
    NoKeyId,
    #[error("key id {0} is not one of the authority's signing keys")]
    UnknownKey(String),
    #[error("the signature does not verify")]
    Signature,
    #[error("it expired")]
    Expired,
    #[error("it is not valid yet")]
    NotYetValid,
    #[error("it is for another audience")]
    Audience,
    #[error("it was issued by another issuer")]
    Issuer,
    #[error("caller app {0} is not in WEBHOOK_ALLOWED_APP_IDS")]
    AppNotAllowed(String),
}

/// Checks a presented `X-Sync-Secret` against the expected one in constant time.
pub fn check_secret(expected: &ExpectedSecret, presented: Option<&str>) -> Result<(), AuthError> {
    let presented = presented.ok_or(AuthError::Missing)?;
    if presented.is_empty() {
        return Err(AuthError::EmptySecret);
    }
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    if bool::from(digest.ct_eq(&expected.0)) {
        Ok(())
    } else {
        Err(AuthError::WrongSecret)
    }
}

/// The token out of an `Authorization` header value (`Bearer <token>`, scheme case-insensitive).
pub fn bearer(header: &str) -> Result<&str, AuthError> {
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::NotBearer);
    }
    Ok(token)
}

/// What a token must say.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// `WEBHOOK_AUDIENCE`.
    pub audience: String,
    /// The authority's issuers for the tenant (v1 and v2 forms).
    pub issuers: Vec<String>,
    /// `WEBHOOK_ALLOWED_APP_IDS`; empty = any app of the tenant.
    pub allowed_app_ids: Vec<String>,
}

/// The authority's RSA signing keys, by `kid`.
pub type KeySet = HashMap<String, DecodingKey>;

/// The claims a validated token carries that the handler uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `appid` (v1) or `azp` (v2).
    pub app_id: Option<String>,
    pub tenant: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    tid: Option<String>,
}

/// The `kid` of a token that passes the header checks (RS256), so the caller can look up (or
/// refresh) its key before [`validate_token`].
pub fn token_key_id(token: &str) -> Result<String, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed("too long".into()));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "not three dot-separated parts".into(),
        ));
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("the header is not base64url".into()))?;
    let header: Header = serde_json::from_slice(&raw)
        .map_err(|_| TokenError::Malformed("the header is not a JSON object with alg".into()))?;
    if header.alg != "RS256" {
        return Err(TokenError::Algorithm(printable(&header.alg)));
    }
    header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(TokenError::NoKeyId)
}

/// At most 64 printable characters of a caller-chosen value, for a log line.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

/// Validates a bearer token against `keys` and `rules` at time `now` (Unix seconds).
pub fn validate_token(
    token: &str,
    keys: &KeySet,
    rules: &TokenRules,
    now: i64,
) -> Result<Caller, TokenError> {
    let kid = token_key_id(token)?;
    let key = keys
        .get(&kid)
        .ok_or(TokenError::UnknownKey(printable(&kid)))?;
    let mut validation = Validation::new(Algorithm::RS256);
    // Lifetime, audience and issuer are checked below against `now`, with our own messages.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::InvalidAlgorithm => TokenError::Algorithm("(not RS256)".into()),
            _ => TokenError::Malformed("its claims do not decode".into()),
        }
    })?;
    let c = data.claims;
    let exp = c.exp.ok_or(TokenError::Expired)?;
    if now > exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = c.nbf
        && now < nbf.saturating_sub(CLOCK_SKEW_SECS)
    {
        return Err(TokenError::NotYetValid);
    }
    let aud_ok = match &c.aud {
        Some(Audience::One(a)) => same_audience(a, &rules.audience),
        Some(Audience::Many(all)) => all.iter().any(|a| same_audience(a, &rules.audience)),
        None => false,
    };
    if !aud_ok {
        return Err(TokenError::Audience);
    }
    let iss = c.iss.unwrap_or_default();
    if !rules.issuers.contains(&iss) {
        return Err(TokenError::Issuer);
    }
    let app_id = c.appid.or(c.azp);
    if !rules.allowed_app_ids.is_empty() {
        let allowed = app_id.as_deref().is_some_and(|a| {
            rules
                .allowed_app_ids
                .iter()
                .any(|x| x.eq_ignore_ascii_case(a))
        });
        if !allowed {
            return Err(TokenError::AppNotAllowed(printable(
                app_id.as_deref().unwrap_or("(none)"),
            )));
        }
    }
    Ok(Caller {
        app_id,
        tenant: c.tid,
    })
}

/// An audience matches with or without a trailing slash (`api://sync` = `api://sync/`).
fn same_audience(a: &str, want: &str) -> bool {
    a.trim_end_matches('/') == want.trim_end_matches('/')
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
