//! The client-secret credential against a local token endpoint over real TLS: the certificate
//! is generated at test start and trusted through SSL_CERT_FILE (process-wide, so this binary
//! holds exactly one test).
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

mod support;

use azure_core::credentials::Secret;
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
async fn client_secret_gets_tokens_per_tenant_over_https_and_caches_them() {
    let endpoint = entra::start_https().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = dir.path().join("entra.pem");
    std::fs::write(&cert, endpoint.cert_pem.as_deref().expect("pem")).expect("write cert");
    // SAFETY: the only test of this binary; set before any TLS client is built.
    unsafe { std::env::set_var("SSL_CERT_FILE", &cert) };

    let authority =
        url::Url::parse(&format!("https://127.0.0.1:{}", endpoint.addr.port())).expect("url");
    let home = TenantId::parse(support::TENANT).expect("tenant");
    let other = TenantId::parse("22222222-2222-2222-2222-222222222222").expect("tenant");
    let settings = CredentialSettings::ClientSecret {
        client_id: entra::CLIENT_ID.into(),
        secret: Secret::new(entra::CLIENT_SECRET),
    };
    let source = AzureTokenSource::new(&settings, &home, &authority).expect("credential");

    let first = source
        .token(&home, scopes::GRAPH)
        .await
        .expect("token for the home tenant");
    assert_eq!(first.secret(), format!("cs-{}-1", support::TENANT));
    assert_eq!(
        source
            .token(&home, scopes::GRAPH)
            .await
            .expect("cached")
            .secret(),
        first.secret()
    );
    let second = source
        .token(&other, scopes::GRAPH)
        .await
        .expect("token for another tenant");
    assert_eq!(second.secret(), format!("cs-{other}-2"));

    let seen = endpoint.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].path, format!("/{other}/oauth2/v2.0/token"));
    assert_eq!(
        seen[0].fields.get("scope").map(String::as_str),
        Some(scopes::GRAPH)
    );

    let wrong = CredentialSettings::ClientSecret {
        client_id: entra::CLIENT_ID.into(),
        secret: Secret::new("wrong"),
    };
    let refused = AzureTokenSource::new(&wrong, &home, &authority)
        .expect("credential")
        .token(&home, scopes::ARM)
        .await;
    assert!(
        matches!(refused, Err(CredentialError::Refused { .. })),
        "{refused:?}"
    );
}
