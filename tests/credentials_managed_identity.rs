//! Managed identity through a local App Service identity endpoint (plain http, as in Azure).
//! The credential reads IDENTITY_ENDPOINT/IDENTITY_HEADER from the process environment, so this
//! binary holds exactly one test.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

mod support;

use defender_sentinel_sync::config::CredentialSettings;
use defender_sentinel_sync::credentials::{AzureTokenSource, CredentialError, TokenSource};

/// The scopes the adapters derive from the public cloud's endpoints.
mod scopes {
    pub const GRAPH: &str = "https://graph.microsoft.com/.default";
    pub const ARM: &str = "https://management.azure.com/.default";
}
use defender_sentinel_sync::domain::TenantId;
use support::entra;

#[tokio::test]
async fn managed_identity_gets_real_tokens_caches_them_per_scope_and_stays_in_its_tenant() {
    let endpoint = entra::start_http().await;
    // SAFETY: the only test of this binary; set before any credential reads the environment.
    unsafe {
        std::env::set_var(
            "IDENTITY_ENDPOINT",
            format!("http://{}/msi/token", endpoint.addr),
        );
        std::env::set_var("IDENTITY_HEADER", entra::IDENTITY_HEADER);
    }
    let home = TenantId::parse(support::TENANT).expect("tenant");
    let authority = url::Url::parse("https://login.microsoftonline.com").expect("url");
    let source = AzureTokenSource::new(
        &CredentialSettings::ManagedIdentity { client_id: None },
        &home,
        &authority,
    )
    .expect("credential");

    let graph = source
        .token(&home, scopes::GRAPH)
        .await
        .expect("graph token");
    assert_eq!(graph.secret(), "mi-1");
    let again = source
        .token(&home, scopes::GRAPH)
        .await
        .expect("cached token");
    assert_eq!(again.secret(), "mi-1");
    let arm = source.token(&home, scopes::ARM).await.expect("arm token");
    assert_eq!(arm.secret(), "mi-2");

    let seen = endpoint.seen();
    assert_eq!(
        seen.len(),
        2,
        "the cached token must not be fetched again: {seen:?}"
    );
    assert_eq!(
        seen[0].identity_header.as_deref(),
        Some(entra::IDENTITY_HEADER)
    );
    assert_eq!(
        seen[0].fields.get("resource").map(String::as_str),
        Some("https://graph.microsoft.com")
    );
    assert_eq!(
        seen[1].fields.get("resource").map(String::as_str),
        Some("https://management.azure.com")
    );

    let other = TenantId::parse("22222222-2222-2222-2222-222222222222").expect("tenant");
    let err = source
        .token(&other, scopes::GRAPH)
        .await
        .expect_err("managed identity is single-tenant");
    assert!(matches!(err, CredentialError::Refused { .. }), "{err}");
    assert_eq!(endpoint.seen().len(), 2);
}
