//! Shared test support.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod azurite;

use defender_sentinel_sync::credentials::{CredentialError, TokenSource};
use defender_sentinel_sync::domain::TenantId;

/// A token source for SharedKey tests: any call is a test failure.
#[derive(Debug)]
pub struct NoTokens;

#[async_trait::async_trait]
impl TokenSource for NoTokens {
    async fn token(&self, tenant: &TenantId, _scope: &str) -> Result<azure_core::credentials::Secret, CredentialError> {
        Err(CredentialError::Refused { tenant: tenant.to_string(), message: "no tokens in SharedKey tests".into() })
    }
}
