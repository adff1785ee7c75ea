//! Entra ID: the App Service managed-identity endpoint (plain http, `X-IDENTITY-HEADER`), the
//! client-credentials token endpoint (https), OpenID configuration and JWKS.

pub mod keys;
pub mod tls;

use crate::state::{Shared, lock, read};
use crate::util::query_map;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
pub use keys::BadToken;
use keys::{Claims, SigningKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// What to mint with [`crate::Simulators::mint_token`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSpec {
    pub audience: String,
    pub tenant: String,
    pub app_id: String,
    pub object_id: String,
    /// `None` = a valid token.
    pub bad: Option<BadToken>,
}

/// Mints a token per `spec`, signed with the current key.
pub fn mint(shared: &Shared, spec: &TokenSpec) -> anyhow::Result<String> {
    let mut c = Claims::app(
        &spec.audience,
        &spec.tenant,
        &spec.app_id,
        &spec.object_id,
        shared.cfg.token_lifetime_secs,
    );
    c.roles = shared.cfg.app_roles.get(&spec.app_id).cloned();
    match spec.bad {
        None => {}
        Some(BadToken::Expired) => {
            c.iat -= 7200;
            c.nbf -= 7200;
            c.exp = c.iat + 3600;
        }
        Some(BadToken::WrongAudience) => c.aud = "https://vault.azure.net".into(),
        Some(BadToken::WrongIssuer) => {
            c.iss = "https://sts.windows.net/00000000-0000-0000-0000-000000000000/".into()
        }
        Some(BadToken::UnknownKey) => return keys::sign(&c, &keys::generate_key()?),
        Some(BadToken::Unsigned) => return Ok(keys::unsigned(&c)),
    }
    let keys = read(&shared.keys);
    let key = keys
        .last()
        .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
    keys::sign(&c, key)
}

/// Adds a new signing key; with `retire_old` the previous keys leave the JWKS (their tokens fail).
pub fn rotate(shared: &Shared, retire_old: bool) -> anyhow::Result<String> {
    let key: SigningKey = keys::generate_key()?;
    let kid = key.kid.clone();
    let mut keys = crate::state::write(&shared.keys);
    if retire_old {
        keys.clear();
    }
    keys.push(key);
    Ok(kid)
}

/// Routes of the https authority.
pub fn authority_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_v2),
        )
        .route("/{tenant}/.well-known/openid-configuration", get(openid_v1))
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/{tenant}/discovery/keys", get(jwks))
        .route("/common/discovery/keys", get(jwks))
        .route("/discovery/keys", get(jwks))
        .with_state(shared)
}

/// Routes of the plain-http managed identity endpoint.
pub fn msi_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/msi/token", get(msi_token))
        .with_state(shared)
}

fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}"),
        "error_codes": [code],
        "timestamp": crate::util::fmt_time(crate::util::now()),
        "trace_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    (status, axum::Json(body)).into_response()
}

/// A queued bad token, if the caller asked for one.
fn next_bad(shared: &Shared) -> Option<BadToken> {
    lock(&shared.bad_tokens).pop_front()
}

async fn token(State(s): State<Arc<Shared>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "client_credentials" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let known_tenant = tenant == s.cfg.tenant_id || s.cfg.defender_tenants.contains(&tenant);
    if !known_tenant {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    let client_id = get("client_id");
    let Some(app) = s
        .cfg
        .apps
        .iter()
        .find(|a| a.client_id == client_id && a.tenants.contains(&tenant))
    else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    if get("client_secret") != app.client_secret {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    let scope = get("scope");
    let Some(resource) = scope.strip_suffix("/.default") else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    };
    let spec = TokenSpec {
        audience: resource.to_owned(),
        tenant: tenant.clone(),
        app_id: app.client_id.clone(),
        object_id: app.object_id.clone(),
        bad: next_bad(&s),
    };
    match mint(&s, &spec) {
        Ok(t) => {
            let life = s.cfg.token_lifetime_secs;
            axum::Json(json!({"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": t}))
                .into_response()
        }
        Err(e) => aad_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            50000,
            &e.to_string(),
        ),
    }
}

async fn msi_token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let secret_ok = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        == Some(s.cfg.identity_header.as_str());
    if !secret_ok {
        let body = json!({"statusCode": 401, "message": "Unauthorized: missing or invalid X-IDENTITY-HEADER"});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let q = query_map(q.as_deref());
    if q.get("api-version").map(String::as_str) != Some("2019-08-01") {
        let body = json!({"statusCode": 400, "message": "api-version 2019-08-01 required"});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let client_ok = q.get("client_id").is_none_or(|c| *c == s.cfg.mi_client_id)
        && q.get("object_id").is_none_or(|o| *o == s.cfg.mi_object_id);
    let resource = q.get("resource").cloned().unwrap_or_default();
    if !client_ok || resource.is_empty() {
        let body = json!({"statusCode": 400, "message": "No managed identity found for the specified identity or resource"});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let spec = TokenSpec {
        audience: resource.trim_end_matches("/.default").to_owned(),
        tenant: s.cfg.tenant_id.clone(),
        app_id: s.cfg.mi_client_id.clone(),
        object_id: s.cfg.mi_object_id.clone(),
        bad: next_bad(&s),
    };
    match mint(&s, &spec) {
        Ok(t) => {
            let exp = time::OffsetDateTime::now_utc().unix_timestamp() + s.cfg.token_lifetime_secs;
            axum::Json(json!({
                "access_token": t, "expires_on": exp.to_string(), "resource": resource,
                "token_type": "Bearer", "client_id": s.cfg.mi_client_id,
            }))
            .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn openid(s: &Shared, tenant: &str, v2: bool) -> Value {
    let host = s.urls().authority_host;
    let issuer = if v2 {
        format!("https://login.microsoftonline.com/{tenant}/v2.0")
    } else {
        keys::issuer(tenant)
    };
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{host}/{tenant}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{host}/{tenant}/oauth2/v2.0/authorize"),
        "jwks_uri": format!("{host}/{tenant}/discovery/v2.0/keys"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    })
}

async fn openid_v2(State(s): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    axum::Json(openid(&s, &tenant, true)).into_response()
}

async fn openid_v1(State(s): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    axum::Json(openid(&s, &tenant, false)).into_response()
}

async fn jwks(State(s): State<Arc<Shared>>) -> Response {
    let keys: Vec<Value> = read(&s.keys).iter().map(|k| k.jwk.clone()).collect();
    axum::Json(json!({ "keys": keys })).into_response()
}
