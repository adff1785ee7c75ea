//! The simulated Entra ID works with the real azure_identity credentials the handler uses:
//! client secret against the https authority, and App Service managed identity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
};
use dss_simulators::{SimConfig, Simulators, wellknown};
use std::sync::Arc;

#[tokio::test]
async fn azure_identity_gets_tokens_from_the_simulated_entra_id() {
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let ca = reqwest::Certificate::from_pem(sims.cert_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();

    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = sims.urls().authority_host.clone();
    let client_options = ClientOptions {
        cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
        transport: Some(Transport::new(Arc::new(http.clone()))),
        ..ClientOptions::default()
    };
    let cred = ClientSecretCredential::new(
        wellknown::TENANT_ID_2,
        wellknown::CLIENT_ID.to_owned(),
        Secret::new(wellknown::CLIENT_SECRET),
        Some(ClientSecretCredentialOptions { client_options }),
    )
    .unwrap();
    let token = cred
        .get_token(&["https://graph.microsoft.com/.default"], None)
        .await
        .unwrap();

    // The default transport trusts the CA through SSL_CERT_FILE, as the handler is configured.
    let ca_file = std::env::temp_dir().join(format!("dss-sim-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, sims.cert_pem()).unwrap();
    // Only test in this binary: setting the environment races with nothing.
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca_file) };
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = sims.urls().authority_host.clone();
    let options = ClientOptions {
        cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
        ..ClientOptions::default()
    };
    let by_env = ClientSecretCredential::new(
        wellknown::TENANT_ID,
        wellknown::CLIENT_ID.to_owned(),
        Secret::new(wellknown::CLIENT_SECRET),
        Some(ClientSecretCredentialOptions {
            client_options: options,
        }),
    )
    .unwrap();
    by_env
        .get_token(&["https://monitor.azure.com/.default"], None)
        .await
        .unwrap();
    let r = http
        .get(format!("{}/v1.0/security/incidents", sims.urls().graph))
        .bearer_auth(token.token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Managed identity reads IDENTITY_ENDPOINT / IDENTITY_HEADER, as on App Service.
    unsafe {
        std::env::set_var("IDENTITY_ENDPOINT", &sims.urls().identity_endpoint);
        std::env::set_var("IDENTITY_HEADER", wellknown::IDENTITY_HEADER);
    }
    let mi = ManagedIdentityCredential::new(None).unwrap();
    let token = mi
        .get_token(&["https://management.azure.com/.default"], None)
        .await
        .unwrap();
    let r = http
        .get(format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}/providers/Microsoft.SecurityInsights/incidents?api-version=2024-03-01",
            sims.urls().arm, wellknown::SUBSCRIPTION_ID, wellknown::RESOURCE_GROUP, wellknown::WORKSPACE_NAME
        ))
        .bearer_auth(token.token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sims.shutdown().await;
}
