//! Entra ID tokens for each upstream: managed identity in production, client secret for
//! multi-tenant (MSSP) setups. Built on azure_identity; tokens cached per tenant and audience.

use crate::config::CredentialSettings;
use crate::domain::TenantId;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use url::Url;

/// Audiences (scopes) the handler asks tokens for.
pub mod scopes {
    use url::Url;

    /// Azure Storage's audience, the same in every cloud.
    pub const STORAGE: &str = "https://storage.azure.com/.default";
    /// The Logs Ingestion audience of the public cloud (`LOGS_INGESTION_AUDIENCE`'s default).
    pub const MONITOR_PUBLIC: &str = "https://monitor.azure.com";

    /// The client-credentials scope of a resource: `{origin}/.default`. Graph and ARM are their
    /// own audiences in every cloud (`https://graph.microsoft.us`, `https://management.chinacloudapi.cn`,
    /// …), so their scopes follow `GRAPH_ENDPOINT` and `ARM_ENDPOINT`.
    pub fn of(resource: &Url) -> String {
        format!("{}/.default", resource.origin().ascii_serialization())
    }

    /// The Logs Ingestion audience for an ingestion endpoint: the endpoints of Azure Government
    /// (`*.ingest.monitor.azure.us`) and Azure China (`*.ingest.monitor.azure.cn`) take their own
    /// cloud's audience; every other host (public cloud, loopback simulators) the public one.
    pub fn logs_audience_for(endpoint: &Url) -> Url {
        let host = endpoint.host_str().unwrap_or_default().to_ascii_lowercase();
        let audience = if host.ends_with(".monitor.azure.us") {
            "https://monitor.azure.us"
        } else if host.ends_with(".monitor.azure.cn") {
            "https://monitor.azure.cn"
        } else {
            MONITOR_PUBLIC
        };
        Url::parse(audience).unwrap_or_else(|_| endpoint.clone())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn scope(u: &str) -> String {
            of(&Url::parse(u).unwrap())
        }

        fn logs(u: &str) -> String {
            of(&logs_audience_for(&Url::parse(u).unwrap()))
        }

        #[test]
        fn public_cloud_scopes() {
            assert_eq!(
                scope("https://graph.microsoft.com"),
                "https://graph.microsoft.com/.default"
            );
            assert_eq!(
                scope("https://management.azure.com/"),
                "https://management.azure.com/.default"
            );
            assert_eq!(
                logs("https://dce-1.westeurope-1.ingest.monitor.azure.com"),
                "https://monitor.azure.com/.default"
            );
        }

        #[test]
        fn azure_government_scopes() {
            assert_eq!(
                scope("https://graph.microsoft.us"),
                "https://graph.microsoft.us/.default"
            );
            assert_eq!(
                scope("https://dod-graph.microsoft.us"),
                "https://dod-graph.microsoft.us/.default"
            );
            assert_eq!(
                scope("https://management.usgovcloudapi.net"),
                "https://management.usgovcloudapi.net/.default"
            );
            assert_eq!(
                logs("https://dce-1.usgovvirginia-1.ingest.monitor.azure.us"),
                "https://monitor.azure.us/.default"
            );
        }

        #[test]
        fn azure_china_scopes() {
            assert_eq!(
                scope("https://microsoftgraph.chinacloudapi.cn"),
                "https://microsoftgraph.chinacloudapi.cn/.default"
            );
            assert_eq!(
                scope("https://management.chinacloudapi.cn/"),
                "https://management.chinacloudapi.cn/.default"
            );
            assert_eq!(
                logs("https://dce-1.chinanorth3-1.ingest.monitor.azure.cn"),
                "https://monitor.azure.cn/.default"
            );
        }

        #[test]
        fn loopback_simulators_are_their_own_audience() {
            assert_eq!(
                scope("http://127.0.0.1:7001"),
                "http://127.0.0.1:7001/.default"
            );
            assert_eq!(
                scope("http://127.0.0.1:7001/v1.0/"),
                "http://127.0.0.1:7001/.default"
            );
            assert_eq!(
                logs("http://127.0.0.1:7003"),
                "https://monitor.azure.com/.default"
            );
        }
    }
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

/// A cached token is renewed this long before it expires (azure_core's own window).
const REFRESH_WINDOW: time::Duration = time::Duration::minutes(5);

/// The [`TokenSource`] of the deployed handler, over azure_identity.
#[derive(Debug)]
pub struct AzureTokenSource {
    kind: Kind,
    /// (tenant, scope) → token.
    cache: Mutex<HashMap<(TenantId, String), AccessToken>>,
}

#[derive(Debug)]
enum Kind {
    /// Managed identity: tokens for its own tenant only.
    Managed {
        home: TenantId,
        credential: Arc<ManagedIdentityCredential>,
    },
    /// One client-secret credential per tenant, made on first use.
    Secret {
        client_id: String,
        secret: Secret,
        authority_host: Url,
        per_tenant: Mutex<HashMap<TenantId, Arc<ClientSecretCredential>>>,
    },
}

/// Token requests retry a little (a few seconds at most): the SDK default (8 retries over a
/// minute) would eat a whole cycle when the endpoint is down, and the cycle retries next time.
fn token_retry() -> azure_core::http::RetryOptions {
    azure_core::http::RetryOptions::exponential(azure_core::http::ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_retries: 3,
        max_total_elapsed: azure_core::time::Duration::seconds(10),
        max_delay: azure_core::time::Duration::seconds(2),
    })
}

impl AzureTokenSource {
    /// Builds the credential of the settings. Managed identity reads `IDENTITY_ENDPOINT` and
    /// `IDENTITY_HEADER` from the process environment here, once.
    pub fn new(
        settings: &CredentialSettings,
        home: &TenantId,
        authority_host: &Url,
    ) -> Result<Self, CredentialError> {
        let kind = match settings {
            CredentialSettings::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: ClientOptions {
                        retry: token_retry(),
                        ..Default::default()
                    },
                };
                let credential =
                    ManagedIdentityCredential::new(Some(options)).map_err(|e| refused(home, &e))?;
                Kind::Managed {
                    home: home.clone(),
                    credential,
                }
            }
            CredentialSettings::ClientSecret { client_id, secret } => Kind::Secret {
                client_id: client_id.clone(),
                secret: secret.clone(),
                authority_host: authority_host.clone(),
                per_tenant: Mutex::new(HashMap::new()),
            },
        };
        Ok(Self {
            kind,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn credential(&self, tenant: &TenantId) -> Result<Arc<dyn TokenCredential>, CredentialError> {
        match &self.kind {
            Kind::Managed { home, credential } if home == tenant => Ok(credential.clone()),
            Kind::Managed { home, .. } => Err(CredentialError::Refused {
                tenant: tenant.to_string(),
                message: format!("managed identity only gets tokens for its own tenant {home}"),
            }),
            Kind::Secret {
                client_id,
                secret,
                authority_host,
                per_tenant,
            } => {
                let mut map = per_tenant
                    .lock()
                    .map_err(|_| CredentialError::Transient("credential map poisoned".into()))?;
                if let Some(c) = map.get(tenant) {
                    return Ok(c.clone());
                }
                let mut cloud = CustomConfiguration::default();
                cloud.authority_host = authority_host.as_str().trim_end_matches('/').to_owned();
                let options = ClientSecretCredentialOptions {
                    client_options: ClientOptions {
                        cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
                        retry: token_retry(),
                        ..Default::default()
                    },
                };
                let c = ClientSecretCredential::new(
                    tenant.as_str(),
                    client_id.clone(),
                    secret.clone(),
                    Some(options),
                )
                .map_err(|e| refused(tenant, &e))?;
                map.insert(tenant.clone(), c.clone());
                Ok(c)
            }
        }
    }

    fn cached(&self, key: &(TenantId, String)) -> Option<Secret> {
        let cache = self.cache.lock().ok()?;
        let token = cache.get(key)?;
        (token.expires_on > OffsetDateTime::now_utc() + REFRESH_WINDOW).then(|| token.token.clone())
    }
}

#[async_trait::async_trait]
impl TokenSource for AzureTokenSource {
    async fn token(&self, tenant: &TenantId, scope: &str) -> Result<Secret, CredentialError> {
        let key = (tenant.clone(), scope.to_owned());
        if let Some(token) = self.cached(&key) {
            return Ok(token);
        }
        let credential = self.credential(tenant)?;
        let token = credential
            .get_token(&[scope], None)
            .await
            .map_err(|e| classify(tenant, &e))?;
        let secret = token.token.clone();
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, token);
        }
        tracing::debug!(tenant = %tenant, scope, "New access token.");
        Ok(secret)
    }
}

fn refused(tenant: &TenantId, e: &azure_core::Error) -> CredentialError {
    CredentialError::Refused {
        tenant: tenant.to_string(),
        message: e.to_string(),
    }
}

/// A 4xx from the token endpoint (bad secret, unknown app, no consent) needs an operator;
/// anything else (network, 5xx, throttling) may pass.
fn classify(tenant: &TenantId, e: &azure_core::Error) -> CredentialError {
    use azure_core::error::ErrorKind;
    match e.kind() {
        ErrorKind::HttpResponse { status, .. }
            if status.is_client_error() && u16::from(*status) != 429 =>
        {
            refused(tenant, e)
        }
        ErrorKind::Credential => refused(tenant, e),
        _ => CredentialError::Transient(e.to_string()),
    }
}
