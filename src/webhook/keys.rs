//! The authority's token-signing keys: read from its OpenID configuration (`jwks_uri`, issuer),
//! cached, read again when a token names an unknown key id (key rotation), with the re-reads
//! themselves limited to one per [`REFRESH_INTERVAL`] so a flood of made-up key ids cannot turn
//! into a flood of calls to the authority.

use super::auth::KeySet;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// The least time between two reads of the keys (an unknown key id does not read them again
/// sooner).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Keys older than this are read again even when every token names a known key.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// What the authority publishes for a tenant.
#[derive(Clone, Default)]
pub struct Published {
    pub keys: KeySet,
    /// The issuer of its OpenID configuration (v1 tokens).
    pub issuer: Option<String>,
}

/// Where the keys come from (the authority, or a fake in tests).
#[async_trait::async_trait]
pub trait KeySource: Send + Sync {
    async fn fetch(&self) -> Result<Published, String>;
}

/// The keys, cached.
pub struct KeyCache {
    source: Box<dyn KeySource>,
    cached: RwLock<Option<(Arc<Published>, Instant)>>,
    /// Serialises reads of the source; holds when the last read was attempted.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    interval: Duration,
    max_age: Duration,
}

impl KeyCache {
    pub fn new(source: Box<dyn KeySource>) -> Self {
        Self::with_timing(source, REFRESH_INTERVAL, MAX_AGE)
    }

    /// With another refresh interval and maximum age (tests).
    pub fn with_timing(source: Box<dyn KeySource>, interval: Duration, max_age: Duration) -> Self {
        Self {
            source,
            cached: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(None),
            interval,
            max_age,
        }
    }

    fn current(&self) -> Option<(Arc<Published>, Instant)> {
        self.cached.read().ok().and_then(|c| c.clone())
    }

    /// The keys, containing `kid` if the authority publishes it. Reads the source when nothing
    /// is cached, when the cache is older than its maximum age ([`MAX_AGE`]), or when `kid` is unknown and the
    /// last read is older than the refresh interval. A failed read keeps the cached keys.
    pub async fn keys_for(&self, kid: &str) -> Result<Arc<Published>, String> {
        if let Some((p, at)) = self.current()
            && p.keys.contains_key(kid)
            && at.elapsed() < self.max_age
        {
            return Ok(p);
        }
        let mut last = self.refresh.lock().await;
        // Another call may have read them while this one waited.
        let cached = self.current();
        if let Some((p, at)) = &cached
            && p.keys.contains_key(kid)
            && at.elapsed() < self.max_age
        {
            return Ok(p.clone());
        }
        let may_read = last.is_none_or(|t| t.elapsed() >= self.interval)
            || cached.is_none()
            || cached
                .as_ref()
                .is_some_and(|(_, at)| at.elapsed() >= self.max_age);
        if !may_read {
            return cached.map(|(p, _)| p).ok_or_else(|| "no keys yet".into());
        }
        *last = Some(Instant::now());
        match self.source.fetch().await {
            Ok(p) => {
                let p = Arc::new(p);
                if let Ok(mut c) = self.cached.write() {
                    *c = Some((p.clone(), Instant::now()));
                }
                Ok(p)
            }
            Err(e) => match cached {
                Some((p, _)) => {
                    tracing::warn!(error = %e, "Cannot read the token-signing keys again; keeping the cached ones.");
                    Ok(p)
                }
                None => Err(e),
            },
        }
    }
}

/// The RSA signing keys of a JWKS document, by `kid` (others are skipped).
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, String> {
    let set: JwkSet =
        serde_json::from_slice(body).map_err(|e| format!("the JWKS does not parse: {e}"))?;
    let mut keys = KeySet::new();
    for jwk in set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        if matches!(jwk.common.key_algorithm, Some(a) if a != KeyAlgorithm::RS256) {
            continue;
        }
        if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
            continue;
        }
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, key);
        }
    }
    Ok(keys)
}

/// The Entra authority of a tenant: `{authority}/{tenant}/.well-known/openid-configuration`,
/// then its `jwks_uri`.
pub struct OpenIdSource {
    client: reqwest::Client,
    config_url: Url,
}

impl OpenIdSource {
    pub fn new(client: reqwest::Client, authority_host: &Url, tenant: &str) -> Self {
        let base = authority_host.as_str().trim_end_matches('/');
        let config_url = Url::parse(&format!("{base}/{tenant}/.well-known/openid-configuration"))
            .unwrap_or_else(|_| authority_host.clone());
        Self { client, config_url }
    }

    async fn get(&self, url: Url) -> Result<bytes::Bytes, String> {
        let res = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = res.status();
        if !status.is_success() {
            return Err(format!("GET {url}: {status}"));
        }
        res.bytes().await.map_err(|e| format!("GET {url}: {e}"))
    }
}

#[derive(serde::Deserialize)]
struct OpenIdConfiguration {
    issuer: Option<String>,
    jwks_uri: String,
}

#[async_trait::async_trait]
impl KeySource for OpenIdSource {
    async fn fetch(&self) -> Result<Published, String> {
        let body = self.get(self.config_url.clone()).await?;
        let cfg: OpenIdConfiguration = serde_json::from_slice(&body)
            .map_err(|e| format!("the OpenID configuration does not parse: {e}"))?;
        let jwks_uri =
            Url::parse(&cfg.jwks_uri).map_err(|e| format!("jwks_uri is not a URL: {e}"))?;
        if jwks_uri.scheme() != "https" {
            return Err("jwks_uri is not https".into());
        }
        let keys = parse_jwks(&self.get(jwks_uri).await?)?;
        Ok(Published {
            keys,
            issuer: cfg.issuer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: Arc<AtomicUsize>,
        kids: Vec<&'static str>,
    }

    #[async_trait::async_trait]
    impl KeySource for Counting {
        async fn fetch(&self) -> Result<Published, String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut keys = KeySet::new();
            for k in &self.kids {
                keys.insert((*k).to_owned(), DecodingKey::from_secret(b"unused"));
            }
            Ok(Published { keys, issuer: None })
        }
    }

    #[tokio::test]
    async fn unknown_key_ids_read_the_keys_again_at_most_once_per_interval() {
        let calls = Arc::new(AtomicUsize::new(0));
        let interval = Duration::from_millis(300);
        let cache = KeyCache::with_timing(
            Box::new(Counting {
                calls: calls.clone(),
                kids: vec!["a"],
            }),
            interval,
            Duration::from_secs(2),
        );
        assert!(cache.keys_for("a").await.unwrap().keys.contains_key("a"));
        assert!(cache.keys_for("a").await.is_ok());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a known kid is served from the cache"
        );
        // The first load counts as the last read: a flood of unknown kids reads nothing more.
        for i in 0..100 {
            let p = cache.keys_for(&format!("made-up-{i}")).await.unwrap();
            assert!(!p.keys.contains_key(&format!("made-up-{i}")));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(interval).await;
        cache.keys_for("rotated").await.unwrap();
        cache.keys_for("rotated").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one read per interval");
        tokio::time::sleep(Duration::from_secs(2)).await;
        cache.keys_for("a").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3, "old keys are read again");
    }

    #[tokio::test]
    async fn concurrent_first_calls_read_the_keys_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(KeyCache::new(Box::new(Counting {
            calls: calls.clone(),
            kids: vec!["a"],
        })));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.keys_for("a").await.map(|p| p.keys.len()) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(1));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_jwks_keeps_only_rsa_signing_keys() {
        let jwks = br#"{"keys":[
            {"kty":"RSA","use":"sig","kid":"k1","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
            {"kty":"RSA","use":"enc","kid":"k2","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
            {"kty":"oct","kid":"k3","k":"c2VjcmV0"},
            {"kty":"RSA","use":"sig","n":"AQAB","e":"AQAB"}
        ]}"#;
        let keys = parse_jwks(jwks).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["k1"]);
        assert!(parse_jwks(b"{nope").is_err());
    }
}
