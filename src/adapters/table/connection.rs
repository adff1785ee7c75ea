//! Storage connection settings (`AzureWebJobsStorage` and its identity-based forms).
//!
//! Connection-string grammar as the Azure Storage SDKs read it: `Key=Value` pairs separated by
//! `;`, keys case-insensitive, the value split at the first `=` (account keys end in `=`).

use crate::config::StorageConfig;
use azure_core::credentials::Secret;
use base64::Engine;
use std::collections::HashMap;
use url::Url;

/// The Azurite/emulator account and its well-known (public, documented) key.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// The emulator's documented account key (not a secret).
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Table endpoint of `UseDevelopmentStorage=true`.
pub const DEV_TABLE_ENDPOINT: &str = "http://127.0.0.1:10002/devstoreaccount1";

impl StorageConfig {
    /// Parses a storage connection string (`AccountName`/`AccountKey`/`EndpointSuffix`/
    /// `DefaultEndpointsProtocol`, explicit `TableEndpoint`, or `UseDevelopmentStorage=true`).
    /// The error names what is wrong, never the key.
    pub fn parse_connection_string(s: &str) -> Result<StorageConfig, String> {
        let parts = split_pairs(s)?;
        let get = |k: &str| {
            parts
                .get(&k.to_ascii_lowercase())
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        if get("UseDevelopmentStorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(StorageConfig::SharedKey {
                account: DEV_ACCOUNT.to_owned(),
                key: Secret::new(DEV_ACCOUNT_KEY),
                table_endpoint: parse_endpoint(
                    DEV_TABLE_ENDPOINT,
                    "the development storage endpoint",
                )?,
            });
        }
        let account =
            get("AccountName").ok_or("the storage connection string has no AccountName")?;
        validate_account(account)?;
        let key = match get("AccountKey") {
            Some(k) => k,
            None if get("SharedAccessSignature").is_some() => {
                return Err("the storage connection string uses a SharedAccessSignature, which is not supported; \
                            use an AccountKey or an identity-based connection (AzureWebJobsStorage__accountName)"
                    .into());
            }
            None => return Err("the storage connection string has no AccountKey".into()),
        };
        base64::engine::general_purpose::STANDARD
            .decode(key)
            .map_err(|_| {
                "the storage connection string's AccountKey is not valid base64".to_owned()
            })?;
        let table_endpoint = match get("TableEndpoint") {
            Some(e) => parse_endpoint(e, "TableEndpoint")?,
            None => {
                let protocol = get("DefaultEndpointsProtocol")
                    .unwrap_or("https")
                    .to_ascii_lowercase();
                if protocol != "https" && protocol != "http" {
                    return Err(format!(
                        "DefaultEndpointsProtocol must be http or https, not '{protocol}'"
                    ));
                }
                let suffix = get("EndpointSuffix").unwrap_or("core.windows.net");
                parse_endpoint(
                    &format!("{protocol}://{account}.table.{suffix}"),
                    "EndpointSuffix",
                )?
            }
        };
        Ok(StorageConfig::SharedKey {
            account: account.to_owned(),
            key: Secret::new(key.to_owned()),
            table_endpoint,
        })
    }

    /// The identity-based connection: `AzureWebJobsStorage__tableServiceUri`, else
    /// `https://{AzureWebJobsStorage__accountName}.table.core.windows.net`.
    pub fn identity(
        account_name: Option<&str>,
        table_service_uri: Option<&str>,
    ) -> Result<StorageConfig, String> {
        let account_name = account_name.map(str::trim).filter(|s| !s.is_empty());
        let uri = table_service_uri.map(str::trim).filter(|s| !s.is_empty());
        let table_endpoint = match (uri, account_name) {
            (Some(u), _) => parse_endpoint(u, "AzureWebJobsStorage__tableServiceUri")?,
            (None, Some(a)) => {
                validate_account(a)?;
                parse_endpoint(
                    &format!("https://{a}.table.core.windows.net"),
                    "AzureWebJobsStorage__accountName",
                )?
            }
            (None, None) => {
                return Err(
                    "an identity-based storage connection needs AzureWebJobsStorage__accountName \
                            or AzureWebJobsStorage__tableServiceUri"
                        .into(),
                );
            }
        };
        if table_endpoint.scheme() != "https" {
            return Err("AzureWebJobsStorage__tableServiceUri must use https (bearer tokens are never sent over http)".into());
        }
        let account = match account_name {
            Some(a) => a.to_owned(),
            None => account_from_endpoint(&table_endpoint)
                .ok_or("cannot tell the storage account from AzureWebJobsStorage__tableServiceUri; set AzureWebJobsStorage__accountName too")?,
        };
        Ok(StorageConfig::Identity {
            account,
            table_endpoint,
        })
    }

    /// The table service endpoint (no trailing slash in its path).
    pub fn table_endpoint(&self) -> &Url {
        match self {
            StorageConfig::SharedKey { table_endpoint, .. }
            | StorageConfig::Identity { table_endpoint, .. } => table_endpoint,
        }
    }

    /// The storage account name.
    pub fn account(&self) -> &str {
        match self {
            StorageConfig::SharedKey { account, .. } | StorageConfig::Identity { account, .. } => {
                account
            }
        }
    }
}

/// Splits `k=v;k=v` into lowercase keys. A part without `=` is reported by position only,
/// since it may be a pasted key.
fn split_pairs(s: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (i, part) in s.split(';').map(str::trim).enumerate() {
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').ok_or_else(|| {
            format!(
                "part {} of the storage connection string has no '=' (expected Key=Value)",
                i + 1
            )
        })?;
        out.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    if out.is_empty() {
        return Err("the storage connection string is empty".into());
    }
    Ok(out)
}

/// Storage account names: 3–24 lowercase letters and digits (the emulator's name fits too).
fn validate_account(a: &str) -> Result<(), String> {
    let ok = (3..=24).contains(&a.len())
        && a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{a}' is not a storage account name (3-24 lowercase letters and digits)"
        ))
    }
}

/// Parses an http(s) endpoint and drops a trailing `/` so resource paths can be appended.
fn parse_endpoint(s: &str, what: &str) -> Result<Url, String> {
    let mut url = Url::parse(s).map_err(|e| format!("{what} is not a valid URL: {e}"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!("{what} must be an http or https URL"));
    }
    if url.query().is_some() {
        return Err(format!(
            "{what} must not have a query (SAS tokens are not supported)"
        ));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

/// `https://acct.table.core.windows.net` → `acct`; path-style (emulator, IP or localhost)
/// `https://127.0.0.1:10002/acct` → `acct`.
fn account_from_endpoint(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let path_style = url
        .host()
        .is_some_and(|h| !matches!(h, url::Host::Domain(_)))
        || host == "localhost";
    let name = if path_style {
        url.path_segments()?.next()?
    } else {
        host.split('.').next()?
    };
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(s: &str) -> (String, String, String) {
        match StorageConfig::parse_connection_string(s).unwrap() {
            StorageConfig::SharedKey {
                account,
                key,
                table_endpoint,
            } => (account, key.secret().to_owned(), table_endpoint.to_string()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn standard_connection_string_builds_the_table_endpoint_from_the_suffix() {
        let (a, k, e) = shared(
            "DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=a2V5a2V5;EndpointSuffix=core.usgovcloudapi.net",
        );
        assert_eq!(
            (a.as_str(), k.as_str(), e.as_str()),
            (
                "myacct",
                "a2V5a2V5",
                "https://myacct.table.core.usgovcloudapi.net/"
            )
        );
        let (_, _, e) = shared("AccountName=myacct;AccountKey=a2V5");
        assert_eq!(e, "https://myacct.table.core.windows.net/");
    }

    #[test]
    fn explicit_table_endpoint_wins_and_keys_are_case_insensitive() {
        let (_, _, e) = shared(
            "accountname=devstoreaccount1;ACCOUNTKEY=a2V5;TableEndpoint=http://127.0.0.1:4242/devstoreaccount1/;BlobEndpoint=http://x",
        );
        assert_eq!(e, "http://127.0.0.1:4242/devstoreaccount1");
    }

    #[test]
    fn development_storage_uses_the_emulator_account() {
        let (a, k, e) = shared("UseDevelopmentStorage=true");
        assert_eq!(
            (a.as_str(), k.as_str(), e.as_str()),
            (DEV_ACCOUNT, DEV_ACCOUNT_KEY, DEV_TABLE_ENDPOINT)
        );
    }

    #[test]
    fn errors_name_the_problem_and_never_the_key() {
        let secret = "c2VjcmV0c2VjcmV0!!";
        let err = StorageConfig::parse_connection_string(&format!(
            "AccountName=myacct;AccountKey={secret}"
        ))
        .unwrap_err();
        assert!(
            err.contains("AccountKey is not valid base64") && !err.contains(secret),
            "{err}"
        );
        let err =
            StorageConfig::parse_connection_string("AccountName=myacct;c2VjcmV0").unwrap_err();
        assert!(err.contains("part 2") && !err.contains("c2VjcmV0"), "{err}");
        assert!(
            StorageConfig::parse_connection_string("AccountKey=a2V5")
                .unwrap_err()
                .contains("AccountName")
        );
        assert!(
            StorageConfig::parse_connection_string("AccountName=myacct")
                .unwrap_err()
                .contains("AccountKey")
        );
        assert!(
            StorageConfig::parse_connection_string("")
                .unwrap_err()
                .contains("empty")
        );
        let err = StorageConfig::parse_connection_string(
            "AccountName=myacct;AccountKey=a2V5;DefaultEndpointsProtocol=ftp",
        )
        .unwrap_err();
        assert!(err.contains("DefaultEndpointsProtocol"), "{err}");
    }

    #[test]
    fn debug_of_a_shared_key_config_hides_the_key() {
        let cfg =
            StorageConfig::parse_connection_string("AccountName=myacct;AccountKey=c2VjcmV0a2V5")
                .unwrap();
        assert!(!format!("{cfg:?}").contains("c2VjcmV0a2V5"));
    }

    #[test]
    fn identity_from_account_name_or_service_uri() {
        let cfg = StorageConfig::identity(Some("myacct"), None).unwrap();
        assert_eq!(
            (cfg.account(), cfg.table_endpoint().as_str()),
            ("myacct", "https://myacct.table.core.windows.net/")
        );
        let cfg =
            StorageConfig::identity(None, Some("https://other.table.core.windows.net/")).unwrap();
        assert_eq!(cfg.account(), "other");
        let cfg = StorageConfig::identity(None, Some("https://127.0.0.1:12345/devstoreaccount1"))
            .unwrap();
        assert_eq!(
            (cfg.account(), cfg.table_endpoint().as_str()),
            (
                "devstoreaccount1",
                "https://127.0.0.1:12345/devstoreaccount1"
            )
        );
        assert!(matches!(cfg, StorageConfig::Identity { .. }));
    }

    #[test]
    fn identity_errors() {
        assert!(
            StorageConfig::identity(None, None)
                .unwrap_err()
                .contains("AzureWebJobsStorage__accountName")
        );
        assert!(
            StorageConfig::identity(None, Some("http://127.0.0.1:1/devstoreaccount1"))
                .unwrap_err()
                .contains("https")
        );
        assert!(
            StorageConfig::identity(Some("Bad_Name"), None)
                .unwrap_err()
                .contains("not a storage account name")
        );
    }
}
