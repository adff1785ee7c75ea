//! Entra ID tokens for each upstream: managed identity in production, client secret for
//! multi-tenant (MSSP) setups. Built on azure_identity; tokens cached per tenant and audience.

use crate::domain::TenantId;
use azure_core::credentials::Secret;

/// Audiences (scopes) the handler asks tokens for.
pub mod scopes {
    pub const GRAPH: &str = "https://graph.microsoft.com/.default";
    pub const ARM: &str = "https://management.azure.com/.default";
    pub const MONITOR: &str = "https://monitor.azure.com/.default";
    pub const STORAGE: &str = "https://storage.azure.com/.default";
}

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The identity or app is not allowed (bad secret, no consent in that tenant, …): an operator must act.
    #[error("token request refused for tenant {tenant}: {message}")]
    Refused { tenant: String, message: String },
    /// The token endpoint could not be reached or failed; retry later.
    #[error("token endpoint unavailable: {0}")]
    Transient(String),
}

/// Gives bearer tokens for a tenant and scope. Adapters take an `Arc<dyn TokenSource>`.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// A valid access token for `scope` in `tenant` (cached until close to expiry).
    async fn token(&self, tenant: &TenantId, scope: &str) -> Result<Secret, CredentialError>;
}
