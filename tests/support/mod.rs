//! Shared test helpers: a staged app folder, settings pointing at loopback, local token
//! endpoints. Each test binary uses a part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod azurite;
pub mod entra;
#[cfg(feature = "demo")]
pub mod world;

use defender_sentinel_sync::credentials::{CredentialError, TokenSource};
use defender_sentinel_sync::domain::TenantId;
use dss_fake_host::{HandlerSpec, stage_app_root};
use std::path::{Path, PathBuf};

pub const TENANT: &str = "11111111-1111-1111-1111-111111111111";
pub const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The built handler binary.
pub fn handler_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_defender-sentinel-sync"))
}

/// An app folder laid out like the package (host.json + function folders) in a temp dir.
pub fn staged_app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    stage_app_root(
        dir.path(),
        &repo().join("host.json"),
        &repo().join("function-defs"),
    )
    .expect("stage app");
    dir
}

/// Every required setting, pointing at loopback (nothing is contacted before an invocation).
pub fn settings() -> Vec<(&'static str, String)> {
    vec![
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("AZURE_TENANT_ID", TENANT.into()),
        (
            "SENTINEL_SUBSCRIPTION_ID",
            "33333333-3333-3333-3333-333333333333".into(),
        ),
        ("SENTINEL_RESOURCE_GROUP", "rg-sec".into()),
        ("SENTINEL_WORKSPACE_NAME", "law-sec".into()),
        ("GRAPH_ENDPOINT", "http://127.0.0.1:9/graph".into()),
        ("ARM_ENDPOINT", "http://127.0.0.1:9/arm".into()),
        ("SYNC_STATE_STORE", "memory".into()),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token".into()),
        ("IDENTITY_HEADER", "test-identity-header".into()),
        ("WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ("DEFENDER_SYNC_SCHEDULE", "0 */5 * * * *".into()),
        ("FUNCTIONS_WORKER_RUNTIME", "custom".into()),
    ]
}

/// A spec starting the built binary in `app` with [`settings`] and a clean environment.
pub fn spec(app: &Path) -> HandlerSpec {
    let mut spec = HandlerSpec::new(handler_bin(), app, app);
    spec.clear_env = true;
    for (k, v) in settings() {
        spec.env.insert(k.to_owned(), v);
    }
    spec
}

/// A token source for SharedKey tests: any call is a test failure.
#[derive(Debug)]
pub struct NoTokens;

#[async_trait::async_trait]
impl TokenSource for NoTokens {
    async fn token(
        &self,
        tenant: &TenantId,
        _scope: &str,
    ) -> Result<azure_core::credentials::Secret, CredentialError> {
        Err(CredentialError::Refused {
            tenant: tenant.to_string(),
            message: "no tokens in SharedKey tests".into(),
        })
    }
}
