//! The identity path: `AzureWebJobsStorage__tableServiceUri` + Entra bearer tokens, against
//! Azurite started with `--oauth basic` over HTTPS with a certificate generated here.
//! (Azurite's basic OAuth checks the token's shape, lifetime, issuer and audience, not its
//! signature; it refuses bearer tokens over plain HTTP.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use azure_core::credentials::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use defender_sentinel_sync::adapters::table::TableClientOptions;
use defender_sentinel_sync::config::StorageConfig;
use defender_sentinel_sync::credentials::{CredentialError, TokenSource, scopes};
use defender_sentinel_sync::domain::TenantId;
use defender_sentinel_sync::state::table::TableStateStore;
use defender_sentinel_sync::state::*;
use std::sync::{Arc, Mutex};
use support::azurite::{Azurite, Options};
use time::macros::datetime;

/// Issues JWTs shaped like Entra's for the audience it is given; records every request.
#[derive(Debug)]
struct FakeEntra {
    audience: &'static str,
    asked: Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl TokenSource for FakeEntra {
    async fn token(&self, tenant: &TenantId, scope: &str) -> Result<Secret, CredentialError> {
        self.asked
            .lock()
            .unwrap()
            .push((tenant.to_string(), scope.to_owned()));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({
            "aud": self.audience, "iss": format!("https://sts.windows.net/{tenant}/"), "tid": tenant.as_str(),
            "iat": now - 60, "nbf": now - 60, "exp": now + 3600, "oid": "00000000-0000-0000-0000-000000000001",
        });
        let enc = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let jwt = format!(
            "{}.{}.{}",
            enc(&serde_json::json!({"alg":"RS256","typ":"JWT"})),
            enc(&claims),
            URL_SAFE_NO_PAD.encode("sig")
        );
        Ok(Secret::new(jwt))
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
/// Returns the CA certificate (PEM) and the cert/key paths.
fn make_tls(dir: &std::path::Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dss test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    (ca.pem(), cert, key)
}

fn tenant() -> TenantId {
    TenantId::parse("72f988bf-86f1-41af-91ab-2d7cd011db47").unwrap()
}

fn connect(az: &Azurite, ca_pem: &str, tokens: Arc<dyn TokenSource>) -> TableStateStore {
    // What the settings parser builds from AzureWebJobsStorage__tableServiceUri alone.
    let cfg = StorageConfig::identity(None, Some(&az.table_endpoint())).unwrap();
    assert!(
        matches!(cfg, StorageConfig::Identity { ref account, .. } if account == "devstoreaccount1")
    );
    let options = TableClientOptions {
        root_certificates: vec![reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()],
        ..Default::default()
    };
    TableStateStore::connect(&cfg, "identity", tokens, tenant(), options).unwrap()
}

#[tokio::test]
async fn identity_connection_uses_storage_tokens_for_the_settings_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, cert, key) = make_tls(dir.path());
    let az = Azurite::start_with(&Options {
        tls: Some((cert, key)),
        oauth: true,
        ..Default::default()
    });
    assert!(az.table_endpoint().starts_with("https://"));

    let entra = Arc::new(FakeEntra {
        audience: "https://storage.azure.com",
        asked: Mutex::new(Vec::new()),
    });
    let s = connect(&az, &ca_pem, entra.clone());
    s.ensure_ready().await.unwrap();
    let cp = Checkpoint {
        watermark: datetime!(2026-11-01 10:00:00 UTC),
        ids_at_watermark: Default::default(),
    };
    let e = s
        .put_checkpoint(&tenant(), &cp, Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(
        s.checkpoint(&tenant()).await.unwrap(),
        Some(Versioned { value: cp, etag: e })
    );

    let asked = entra.asked.lock().unwrap().clone();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|(t, scope)| t == tenant().as_str() && scope == scopes::STORAGE),
        "{asked:?}"
    );

    // A token for another audience is refused by the service: an auth error naming the role.
    let wrong = Arc::new(FakeEntra {
        audience: "https://management.azure.com",
        asked: Mutex::new(Vec::new()),
    });
    match connect(&az, &ca_pem, wrong).checkpoint(&tenant()).await {
        Err(StateError::Auth(m)) => assert!(m.contains("Storage Table Data Contributor"), "{m}"),
        other => panic!("expected an auth error, got {other:?}"),
    }
    // A refused token request is an auth error too (support::NoTokens refuses).
    assert!(matches!(
        connect(&az, &ca_pem, Arc::new(support::NoTokens))
            .checkpoint(&tenant())
            .await,
        Err(StateError::Auth(_))
    ));
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = make_tls(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = make_tls(other_dir.path());
    let az = Azurite::start_with(&Options {
        tls: Some((cert, key)),
        oauth: true,
        ..Default::default()
    });
    let entra = Arc::new(FakeEntra {
        audience: "https://storage.azure.com",
        asked: Mutex::new(Vec::new()),
    });
    let res = connect(&az, &other_ca, entra).ensure_ready().await;
    assert!(matches!(res, Err(StateError::Transient(_))), "{res:?}");
}
