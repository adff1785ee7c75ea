//! `Settings::from_env`: the app settings of the README's Configuration table, validated. Only our own settings are
//! looked at; the environment carries every other app setting too.

use super::reader::{Reader, check_endpoint};
use super::timeout;
use super::*;
use std::collections::HashMap;

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";
const DEFAULT_ARM: &str = "https://management.azure.com";
const DEFAULT_STREAM: &str = "Custom-DefenderAlerts_CL";
const DEFAULT_TABLE: &str = "DefenderSentinelSync";
/// Webhook secrets shorter than this are guessable.
const MIN_SECRET_LEN: usize = 16;

impl Settings {
    /// Reads the settings from the process environment and `host.json` in the working
    /// directory (for `functionTimeout`).
    pub fn from_process_env() -> Result<Settings, SettingsErrors> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let host_json = std::fs::read_to_string("host.json").ok();
        Self::from_env(&env, host_json.as_deref())
    }

    /// Parses every setting of the README from `env`; `host_json` is the text of `host.json`
    /// when there is one. Returns every problem found, one per setting.
    pub fn from_env(
        env: &HashMap<String, String>,
        host_json: Option<&str>,
    ) -> Result<Settings, SettingsErrors> {
        let mut r = Reader::new(env);
        let tenant = r.required("AZURE_TENANT_ID", "tenant of the Sentinel workspace");
        let tenant = r.parsed("AZURE_TENANT_ID", tenant, TenantId::parse);
        let credential = credential(&mut r);
        let authority_host = r.parsed(
            "AZURE_AUTHORITY_HOST",
            Some(r.get("AZURE_AUTHORITY_HOST").unwrap_or(DEFAULT_AUTHORITY)),
            https_only,
        );
        let defender_tenants = defender_tenants(&mut r, tenant.as_ref(), credential.as_ref());
        let graph_endpoint = r.endpoint("GRAPH_ENDPOINT", DEFAULT_GRAPH);
        let arm_endpoint = r.endpoint("ARM_ENDPOINT", DEFAULT_ARM);
        let workspace = workspace(&mut r);
        let logs = logs(&mut r);
        let storage = storage(&mut r);
        let state_table = r.parsed(
            "SYNC_STATE_TABLE",
            Some(r.get("SYNC_STATE_TABLE").unwrap_or(DEFAULT_TABLE)),
            table_name,
        );
        let lookback = r.parsed(
            "SYNC_LOOKBACK_HOURS",
            Some(r.get("SYNC_LOOKBACK_HOURS").unwrap_or("24")),
            lookback_hours,
        );
        let conflict_policy = r.parsed(
            "SYNC_CONFLICT_POLICY",
            Some(r.get("SYNC_CONFLICT_POLICY").unwrap_or("latest-wins")),
            conflict_policy,
        );
        let sentinel_target = r.parsed(
            "SENTINEL_TARGET",
            Some(r.get("SENTINEL_TARGET").unwrap_or("arm")),
            SentinelTarget::parse,
        );
        if sentinel_target == Some(SentinelTarget::Unified) && matches!(logs, Some(None)) {
            r.error(
                "SENTINEL_TARGET",
                "'unified' needs alert ingestion (LOGS_INGESTION_ENDPOINT and LOGS_DCR_IMMUTABLE_ID): \
                 the platform creates the incidents from the alerts the sync ingests",
            );
        }
        if sentinel_target == Some(SentinelTarget::Unified)
            && let (Some(ts), Some(t)) = (&defender_tenants, &tenant)
            && ts.contains(t)
        {
            r.error(
                "DEFENDER_TENANT_IDS",
                "with SENTINEL_TARGET=unified it must list only customer tenants, not AZURE_TENANT_ID: \
                 the workspace tenant's own Defender incidents are in the unified portal already, and \
                 the incidents the platform creates there would be pulled again",
            );
        }
        let severity_to_defender = r.flag("SYNC_SEVERITY_TO_DEFENDER");
        let function_timeout = r.parsed("AzureFunctionsJobHost__functionTimeout", Some(""), |_| {
            timeout::function_timeout(
                env.get(timeout::OVERRIDE_SETTING).map(String::as_str),
                host_json,
            )
        });
        let webhook_auth = webhook_auth(&mut r);
        let webhook_allowed_app_ids = r.parsed(
            "WEBHOOK_ALLOWED_APP_IDS",
            Some(r.get("WEBHOOK_ALLOWED_APP_IDS").unwrap_or("")),
            app_id_list,
        );
        let unlimited = r.flag("SYNC_BENCH_UNLIMITED");
        let retry_backoff = r.parsed(
            "SYNC_RETRY_BACKOFF_SECONDS",
            Some(r.get("SYNC_RETRY_BACKOFF_SECONDS").unwrap_or("60")),
            retry_backoff,
        );
        let call_timeout = r.parsed(
            "SYNC_CALL_TIMEOUT_SECONDS",
            Some(r.get("SYNC_CALL_TIMEOUT_SECONDS").unwrap_or("30")),
            call_timeout,
        );
        let schedule = r.get("DEFENDER_SYNC_SCHEDULE");
        r.parsed("DEFENDER_SYNC_SCHEDULE", schedule, check_schedule);
        // Unset: on, except against a loopback Graph (the local simulators, whose call counts
        // and injected faults tests compare).
        let startup_check = match r.get("SYNC_STARTUP_CHECK") {
            None => None,
            Some(_) => r.flag("SYNC_STARTUP_CHECK"),
        };

        let (
            Some(azure_tenant_id),
            Some(credential),
            Some(authority_host),
            Some(defender_tenants),
            Some(graph_endpoint),
            Some(arm_endpoint),
        ) = (
            tenant,
            credential,
            authority_host,
            defender_tenants,
            graph_endpoint,
            arm_endpoint,
        )
        else {
            return Err(SettingsErrors(r.errors));
        };
        let (
            Some(workspace),
            Some(logs),
            Some(storage),
            Some(state_table),
            Some(lookback),
            Some(conflict_policy),
        ) = (
            workspace,
            logs,
            storage,
            state_table,
            lookback,
            conflict_policy,
        )
        else {
            return Err(SettingsErrors(r.errors));
        };
        let (
            Some(severity_to_defender),
            Some(function_timeout),
            Some(webhook_auth),
            Some(unlimited),
            Some(retry_backoff),
            Some(webhook_allowed_app_ids),
            Some(sentinel_target),
            Some(call_timeout),
            true,
        ) = (
            severity_to_defender,
            function_timeout,
            webhook_auth,
            unlimited,
            retry_backoff,
            webhook_allowed_app_ids,
            sentinel_target,
            call_timeout,
            r.errors.is_empty(),
        )
        else {
            return Err(SettingsErrors(r.errors));
        };
        let startup_check = startup_check.unwrap_or_else(|| !is_loopback(&graph_endpoint));
        Ok(Settings {
            azure_tenant_id,
            credential,
            authority_host,
            defender_tenants,
            graph_endpoint,
            arm_endpoint,
            workspace,
            sentinel_target,
            logs,
            storage,
            state_table,
            lookback,
            conflict_policy,
            severity_to_defender,
            function_timeout,
            webhook_auth,
            webhook_allowed_app_ids,
            limits: if unlimited {
                ClientLimits::unlimited()
            } else {
                ClientLimits::default()
            },
            retry_backoff,
            call_timeout,
            schedule: schedule.map(str::to_owned),
            startup_check,
        })
    }
}

fn credential(r: &mut Reader<'_>) -> Option<CredentialSettings> {
    let client_id = r.get("AZURE_CLIENT_ID").map(str::to_owned);
    match (client_id, r.get("AZURE_CLIENT_SECRET")) {
        (Some(client_id), Some(secret)) => Some(CredentialSettings::ClientSecret {
            client_id,
            secret: Secret::new(secret.to_owned()),
        }),
        (None, Some(_)) => {
            r.error("AZURE_CLIENT_ID", "missing: AZURE_CLIENT_SECRET is set, and a client secret needs the app's client id");
            None
        }
        (client_id, None) => {
            // Without the App Service endpoint azure_identity would fall back to the VM metadata
            // service (IMDS) and retry for over a minute: never right for a Functions handler.
            for name in ["IDENTITY_ENDPOINT", "IDENTITY_HEADER"] {
                if r.get(name).is_none() {
                    r.error(
                        name,
                        "missing: with no AZURE_CLIENT_SECRET the handler uses managed identity, whose endpoint Azure Functions \
                         sets in IDENTITY_ENDPOINT and IDENTITY_HEADER; outside Azure set AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
                    );
                }
            }
            Some(CredentialSettings::ManagedIdentity { client_id })
        }
    }
}

fn https_only(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("'{raw}' is not a URL ({e})"))?;
    if url.scheme() != "https" || url.host().is_none() {
        return Err(format!(
            "'{raw}' must be an https:// URL (azure_identity refuses any other authority)"
        ));
    }
    Ok(url)
}

/// `DEFENDER_TENANT_IDS`; with managed identity only `AZURE_TENANT_ID` is reachable.
fn defender_tenants(
    r: &mut Reader<'_>,
    home: Option<&TenantId>,
    credential: Option<&CredentialSettings>,
) -> Option<Vec<TenantId>> {
    let Some(raw) = r.get("DEFENDER_TENANT_IDS") else {
        return home.map(|t| vec![t.clone()]);
    };
    let mut tenants: Vec<TenantId> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let t = r.parsed("DEFENDER_TENANT_IDS", Some(part), TenantId::parse)?;
        if !tenants.contains(&t) {
            tenants.push(t);
        }
    }
    if tenants.is_empty() {
        r.error("DEFENDER_TENANT_IDS", "names no tenant");
        return None;
    }
    if let (Some(CredentialSettings::ManagedIdentity { .. }), Some(home)) = (credential, home)
        && let Some(other) = tenants.iter().find(|t| *t != home)
    {
        {
            r.error(
                "DEFENDER_TENANT_IDS",
                format!(
                    "names tenant {other}, but with managed identity (no AZURE_CLIENT_SECRET) tokens come only for AZURE_TENANT_ID ({home}); \
                     other tenants need AZURE_CLIENT_ID + AZURE_CLIENT_SECRET of a multi-tenant app"
                ),
            );
            return None;
        }
    }
    Some(tenants)
}

fn workspace(r: &mut Reader<'_>) -> Option<SentinelWorkspace> {
    let sub = r.required(
        "SENTINEL_SUBSCRIPTION_ID",
        "subscription of the Sentinel workspace",
    );
    let sub = r.parsed("SENTINEL_SUBSCRIPTION_ID", sub, |v| {
        uuid::Uuid::parse_str(v)
            .map(|u| u.to_string())
            .map_err(|_| format!("'{v}' is not a subscription id (a GUID)"))
    });
    let rg = r.required(
        "SENTINEL_RESOURCE_GROUP",
        "resource group of the Sentinel workspace",
    );
    let rg = r.parsed("SENTINEL_RESOURCE_GROUP", rg, path_segment);
    let ws = r.required(
        "SENTINEL_WORKSPACE_NAME",
        "Log Analytics workspace name of Sentinel",
    );
    let ws = r.parsed("SENTINEL_WORKSPACE_NAME", ws, path_segment);
    Some(SentinelWorkspace {
        subscription_id: sub?,
        resource_group: rg?,
        workspace_name: ws?,
    })
}

/// A value that goes into a URL path as one segment.
fn path_segment(v: &str) -> Result<String, String> {
    if v.chars()
        .any(|c| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "'{v}' contains characters not allowed in an Azure resource name"
        ));
    }
    Ok(v.to_owned())
}

/// `Some(None)` = ingestion off; `None` = malformed.
fn logs(r: &mut Reader<'_>) -> Option<Option<LogsSettings>> {
    let endpoint = r.get("LOGS_INGESTION_ENDPOINT");
    let dcr = r.get("LOGS_DCR_IMMUTABLE_ID");
    let stream = r.get("LOGS_STREAM_NAME").unwrap_or(DEFAULT_STREAM);
    let stream = r.parsed("LOGS_STREAM_NAME", Some(stream), path_segment);
    let audience = r.get("LOGS_INGESTION_AUDIENCE");
    let audience = audience.map(|a| r.parsed("LOGS_INGESTION_AUDIENCE", Some(a), check_endpoint));
    match (endpoint, dcr) {
        (None, None) => Some(None),
        (Some(_), None) => {
            r.error(
                "LOGS_DCR_IMMUTABLE_ID",
                "missing: LOGS_INGESTION_ENDPOINT is set, and the two go together",
            );
            None
        }
        (None, Some(_)) => {
            r.error(
                "LOGS_INGESTION_ENDPOINT",
                "missing: LOGS_DCR_IMMUTABLE_ID is set, and the two go together",
            );
            None
        }
        (Some(e), Some(d)) => {
            let endpoint = r.parsed("LOGS_INGESTION_ENDPOINT", Some(e), check_endpoint);
            let dcr = r.parsed("LOGS_DCR_IMMUTABLE_ID", Some(d), |v| {
                if v.starts_with("dcr-")
                    && v.len() > 4
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    Ok(v.to_owned())
                } else {
                    Err(format!("'{v}' is not a DCR immutable id (dcr-…)"))
                }
            });
            let endpoint = endpoint?;
            let audience = match audience {
                Some(a) => a?,
                None => crate::credentials::scopes::logs_audience_for(&endpoint),
            };
            Some(Some(LogsSettings {
                endpoint,
                dcr_immutable_id: dcr?,
                stream_name: stream?,
                audience,
            }))
        }
    }
}

/// `Some(None)` = in-memory state (`SYNC_STATE_STORE=memory`); `None` = missing or malformed.
fn storage(r: &mut Reader<'_>) -> Option<Option<StorageConfig>> {
    match r
        .get("SYNC_STATE_STORE")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("table") => {}
        Some("memory") => return Some(None),
        Some(other) => {
            r.error(
                "SYNC_STATE_STORE",
                format!("'{other}' is neither table nor memory"),
            );
            return None;
        }
    }
    let account = r.get("AzureWebJobsStorage__accountName");
    let uri = r.get("AzureWebJobsStorage__tableServiceUri");
    let (name, parsed) = if let Some(cs) = r.get("AzureWebJobsStorage") {
        (
            "AzureWebJobsStorage",
            StorageConfig::parse_connection_string(cs),
        )
    } else if account.is_some() || uri.is_some() {
        let name = if uri.is_some() {
            "AzureWebJobsStorage__tableServiceUri"
        } else {
            "AzureWebJobsStorage__accountName"
        };
        (name, StorageConfig::identity(account, uri))
    } else {
        r.error(
            "AzureWebJobsStorage",
            "missing (required: the state table's storage; or AzureWebJobsStorage__accountName / AzureWebJobsStorage__tableServiceUri)",
        );
        return None;
    };
    let config = r.parsed(name, Some(""), |_| parsed)?;
    let endpoint = match &config {
        StorageConfig::SharedKey { table_endpoint, .. }
        | StorageConfig::Identity { table_endpoint, .. } => table_endpoint,
    };
    r.parsed(name, Some(endpoint.as_str()), check_endpoint)?;
    Some(Some(config))
}

/// Azure table names: 3–63 letters and digits, starting with a letter.
fn table_name(v: &str) -> Result<String, String> {
    let ok = (3..=63).contains(&v.len())
        && v.chars().all(|c| c.is_ascii_alphanumeric())
        && v.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "'{v}' is not a table name (3–63 letters and digits, starting with a letter)"
        ))
    }
}

/// Seconds (fractions allowed) between 0 and one hour.
fn retry_backoff(v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if (0.0..=3600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "'{v}' is not a number of seconds between 0 and 3600"
        )),
    }
}

/// Seconds (fractions allowed) above 0 and at most 10 minutes (the longest `functionTimeout` of
/// a Consumption plan; a call cannot usefully outlive its invocation).
fn call_timeout(v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 600.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "'{v}' is not a number of seconds above 0 and at most 600"
        )),
    }
}

fn lookback_hours(v: &str) -> Result<Duration, String> {
    match v.parse::<u64>() {
        Ok(h) if (1..=24 * 365).contains(&h) => Ok(Duration::from_secs(h * 3600)),
        _ => Err(format!(
            "'{v}' is not a whole number of hours between 1 and 8760"
        )),
    }
}

fn conflict_policy(v: &str) -> Result<ConflictPolicyName, String> {
    match ConflictPolicyName::parse(v) {
        ConflictPolicyName::Unrecognized(_) => Err(format!(
            "'{v}' is not one of latest-wins, defender-wins, sentinel-wins"
        )),
        known => Ok(known),
    }
}

/// NCRONTAB with 5 or 6 fields, or a TimeSpan (App Service plans). The host evaluates it; this
/// only catches an obviously wrong value early.
fn check_schedule(v: &str) -> Result<(), String> {
    let fields = v.split_whitespace().count();
    if fields == 5 || fields == 6 || timeout::parse_timespan(v).is_some() {
        Ok(())
    } else {
        Err(format!(
            "'{v}' is not an NCRONTAB expression (6 fields, e.g. '0 */5 * * * *')"
        ))
    }
}

/// `WEBHOOK_ALLOWED_APP_IDS`: comma-separated app (client) ids; empty = any.
fn app_id_list(v: &str) -> Result<Vec<String>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            uuid::Uuid::parse_str(s)
                .map(|u| u.to_string())
                .map_err(|_| format!("'{s}' is not an app (client) id (a GUID)"))
        })
        .collect()
}

fn webhook_auth(r: &mut Reader<'_>) -> Option<WebhookAuth> {
    if let Some(mode) = r.get("WEBHOOK_AUTH") {
        if mode.eq_ignore_ascii_case("none") {
            return Some(WebhookAuth::Disabled);
        }
        r.error(
            "WEBHOOK_AUTH",
            format!("'{mode}' is not supported (only 'none', for local development)"),
        );
        return None;
    }
    let secret = r.get("WEBHOOK_SECRET");
    if secret.is_some_and(|s| s.chars().count() < MIN_SECRET_LEN) {
        r.error(
            "WEBHOOK_SECRET",
            format!("too short (at least {MIN_SECRET_LEN} characters)"),
        );
        return None;
    }
    let secret = secret.map(|s| Secret::new(s.to_owned()));
    match (secret, r.get("WEBHOOK_AUDIENCE").map(str::to_owned)) {
        (Some(secret), Some(audience)) => Some(WebhookAuth::Either { secret, audience }),
        (Some(secret), None) => Some(WebhookAuth::SharedSecret(secret)),
        (None, Some(audience)) => Some(WebhookAuth::EntraToken { audience }),
        (None, None) => {
            r.error("WEBHOOK_SECRET", "missing: set WEBHOOK_SECRET or WEBHOOK_AUDIENCE (or WEBHOOK_AUTH=none for local development)");
            None
        }
    }
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;

/// True for a URL on a loopback host (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
