//! `defender-sentinel-sync check`: one call to each upstream with the configured identity, and
//! per tenant and API either OK or the permission or role that is missing, by name (from
//! [`crate::adapters::calls`]). Read-only, except that the state table is created when missing
//! (as at startup) and Logs Ingestion is sent an empty batch (no rows).
//!
//! | line | call | refused means |
//! |---|---|---|
//! | Defender incidents, per Defender tenant | `graph.count_incidents` | `SecurityIncident.ReadWrite.All` not consented in that tenant |
//! | user look-ups, Sentinel tenant | `graph.resolve_user` (a UPN that does not exist) | `User.Read.All` |
//! | Sentinel incidents (`SENTINEL_TARGET=arm`) | `arm.list_incidents` (changed in the last minute) | `Microsoft Sentinel Contributor` on the workspace |
//! | unified incidents (`SENTINEL_TARGET=unified`), workspace tenant | `unified.list_modified` (changed in the last minute) | `SecurityIncident.ReadWrite.All` and `SecurityAlert.Read.All` (from the token) in the workspace's tenant |
//! | Logs Ingestion (when configured) | `logs.upload` of `[]` | `Monitoring Metrics Publisher` on the DCR |
//! | state table | `table.create_table_if_missing`, `table.get` | `Storage Table Data Contributor` (identity-based connection) |
//!
//! A read proves the read half of a permission. For Graph the write half is read from the
//! token: an application token lists its application permissions in the `roles` claim, so a
//! token without `SecurityIncident.ReadWrite.All` (say, with `SecurityIncident.Read.All` only)
//! is reported as missing it even though the read passed; likewise `User.Read.All` (or a
//! broader directory permission) for the user look-ups. A token without a `roles` claim says
//! nothing either way.

use crate::adapters::calls;
use crate::adapters::graph::GraphClient;
use crate::adapters::logs::LogsClient;
use crate::adapters::sentinel::SentinelClient;
use crate::adapters::unified::UnifiedClient;
use crate::config::{SentinelTarget, Settings, StorageConfig};
use crate::credentials::{AzureTokenSource, TokenSource, scopes};
use crate::domain::TenantId;
use crate::ports::{
    DefenderApi, DefenderError, IncidentWindow, LogsError, SentinelApi, SentinelError,
};
use crate::state::StateStore;
use crate::state::table::TableStateStore;
use dss_core::state::StateError;
use std::sync::Arc;
use time::OffsetDateTime;

/// A user that does not exist: the look-up answers 404 when allowed, 403 when not.
const PROBE_UPN: &str = "defender-sentinel-sync-check@invalid.invalid";

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Refused (401/403, or no token for that tenant): this permission or role is missing.
    Missing {
        permission: &'static str,
        scope: &'static str,
        detail: String,
    },
    /// Failed for another reason (network, 5xx, throttled, a malformed answer).
    Failed(String),
    /// Not configured, so not called.
    Skipped(&'static str),
}

/// One line of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub tenant: String,
    pub api: &'static str,
    pub outcome: Outcome,
}

impl CheckLine {
    /// True unless a permission is missing or the call failed.
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Ok | Outcome::Skipped(_))
    }
}

impl std::fmt::Display for CheckLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tenant {} | {} | ", self.tenant, self.api)?;
        match &self.outcome {
            Outcome::Ok => write!(f, "OK"),
            Outcome::Missing {
                permission,
                scope,
                detail,
            } => write!(
                f,
                "MISSING {permission} (grant it on {scope}; docs/permissions.md): {detail}"
            ),
            Outcome::Failed(e) => write!(f, "FAILED (not a permission problem): {e}"),
            Outcome::Skipped(why) => write!(f, "skipped: {why}"),
        }
    }
}

/// The check's result.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub lines: Vec<CheckLine>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.lines.iter().all(CheckLine::passed)
    }
}

fn missing(op: &str, detail: String) -> Outcome {
    match calls::call(op) {
        Some(call) => Outcome::Missing {
            permission: calls::granted_for(call),
            scope: call.scope,
            detail,
        },
        None => Outcome::Failed(format!("{op} refused: {detail}")),
    }
}

fn graph_outcome(op: &str, r: Result<(), DefenderError>) -> Outcome {
    match r {
        Ok(()) | Err(DefenderError::NotFound) => Outcome::Ok,
        Err(DefenderError::Auth { status, message })
        | Err(DefenderError::UserLookupDenied { status, message }) => {
            missing(op, format!("HTTP {status}: {message}"))
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn arm_outcome(op: &str, r: Result<(), SentinelError>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(SentinelError::Auth { status, message }) => {
            missing(op, format!("HTTP {status}: {message}"))
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Logs Ingestion checks the caller's role before the body: a refusal of the empty batch
/// itself (400) still shows the role is there.
fn logs_outcome(op: &str, r: Result<(), LogsError>) -> Outcome {
    match r {
        Ok(()) | Err(LogsError::Rejected { .. }) => Outcome::Ok,
        Err(LogsError::Auth { status, message }) => {
            missing(op, format!("HTTP {status}: {message}"))
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn table_outcome(op: &str, identity: bool, r: Result<(), StateError>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(StateError::Auth(m)) if identity => missing(op, m),
        Err(StateError::Auth(m)) => Outcome::Failed(format!(
            "the storage account refused the account key of AzureWebJobsStorage: {m}"
        )),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Application permissions that allow the user look-up (`GET /users/{upn}`).
const USER_READERS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// Application permissions that allow reading `alerts_v2` (the unified target's alert scan).
const ALERT_READERS: &[&str] = &["SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"];

/// The `roles` claim of a JWT access token (its payload is not verified: this is our own
/// token, read for information). `None` when the token has no such claim or does not decode.
pub fn token_roles(token: &str) -> Option<Vec<String>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let roles = claims.get("roles")?.as_array()?;
    Some(
        roles
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
    )
}

/// A passed read whose token lacks every one of `any_of`: the permission (`op`'s grant) is
/// missing for the calls the read did not try.
fn with_roles(outcome: Outcome, op: &str, roles: Option<&[String]>, any_of: &[&str]) -> Outcome {
    match (outcome, roles) {
        (Outcome::Ok, Some(roles)) if !roles.iter().any(|r| any_of.contains(&r.as_str())) => {
            let held = if roles.is_empty() {
                "none".to_owned()
            } else {
                roles.join(", ")
            };
            missing(
                op,
                format!("the read passed, but the token's application permissions are: {held}"),
            )
        }
        (outcome, _) => outcome,
    }
}

/// The `roles` of the token the handler gets for Graph in `tenant`.
async fn graph_roles(
    tokens: &dyn TokenSource,
    tenant: &TenantId,
    graph: &url::Url,
) -> Option<Vec<String>> {
    let token = tokens.token(tenant, &scopes::of(graph)).await.ok()?;
    token_roles(token.secret())
}

/// Runs every probe with the settings' identity.
pub async fn run(settings: &Settings) -> anyhow::Result<CheckReport> {
    let tokens: Arc<dyn TokenSource> = Arc::new(AzureTokenSource::new(
        &settings.credential,
        &settings.azure_tenant_id,
        &settings.authority_host,
    )?);
    let graph = Arc::new(GraphClient::from_settings(
        settings,
        tokens.clone(),
        settings.call_timeout,
    )?);
    let sentinel = SentinelClient::from_settings(settings, tokens.clone(), settings.call_timeout)?;
    let logs = LogsClient::from_settings(settings, tokens.clone(), settings.call_timeout)?;
    let home = settings.azure_tenant_id.clone();
    let mut lines = Vec::new();

    let now = OffsetDateTime::now_utc();
    let window = IncidentWindow {
        updated_from: now - time::Duration::hours(1),
        updated_to: Some(now),
        created_from: None,
        created_to: None,
    };
    for tenant in &settings.defender_tenants {
        let r = graph.count_incidents(tenant, &window).await.map(|_| ());
        let roles = graph_roles(tokens.as_ref(), tenant, &settings.graph_endpoint).await;
        let outcome = with_roles(
            graph_outcome("graph.count_incidents", r),
            "graph.update_incident",
            roles.as_deref(),
            &["SecurityIncident.ReadWrite.All"],
        );
        lines.push(line(tenant, "Microsoft Graph: Defender incidents", outcome));
    }

    let r = graph.resolve_user(PROBE_UPN).await.map(|_| ());
    let roles = graph_roles(tokens.as_ref(), &home, &settings.graph_endpoint).await;
    let outcome = with_roles(
        graph_outcome("graph.resolve_user", r),
        "graph.resolve_user",
        roles.as_deref(),
        USER_READERS,
    );
    lines.push(line(
        &home,
        "Microsoft Graph: user look-ups (owners)",
        outcome,
    ));

    match settings.sentinel_target {
        SentinelTarget::Arm => {
            let r = sentinel
                .list_modified_since(now - time::Duration::minutes(1), None)
                .await
                .map(|_| ());
            lines.push(line(
                &home,
                "Azure Resource Manager: Sentinel incidents",
                arm_outcome("arm.list_incidents", r),
            ));
        }
        SentinelTarget::Unified => {
            let unified = UnifiedClient::new(graph.clone(), home.clone());
            let r = unified
                .list_modified_since(now - time::Duration::minutes(1), None)
                .await
                .map(|_| ());
            let roles = graph_roles(tokens.as_ref(), &home, &settings.graph_endpoint).await;
            let outcome = with_roles(
                arm_outcome("unified.list_modified", r),
                "unified.update_incident",
                roles.as_deref(),
                &["SecurityIncident.ReadWrite.All"],
            );
            let outcome = with_roles(
                outcome,
                "unified.scan_alerts",
                roles.as_deref(),
                ALERT_READERS,
            );
            lines.push(line(
                &home,
                "Microsoft Graph: unified Defender portal incidents (SENTINEL_TARGET=unified)",
                outcome,
            ));
        }
    }

    let outcome = match &logs {
        Some(logs) => logs_outcome("logs.upload", logs.probe().await),
        None => Outcome::Skipped(
            "alert ingestion is off (LOGS_INGESTION_ENDPOINT, LOGS_DCR_IMMUTABLE_ID unset)",
        ),
    };
    lines.push(line(&home, "Logs Ingestion: DefenderAlerts_CL", outcome));

    let outcome = match &settings.storage {
        None => Outcome::Skipped("SYNC_STATE_STORE=memory: no state table"),
        Some(storage) => {
            let identity = matches!(storage, StorageConfig::Identity { .. });
            match TableStateStore::from_settings(settings, tokens.clone()) {
                Err(e) => Outcome::Failed(e.to_string()),
                Ok(store) => {
                    let created = store.ensure_ready().await;
                    let read = match created {
                        Ok(()) => {
                            let tenant = settings.defender_tenants.first().unwrap_or(&home);
                            store.checkpoint(tenant).await.map(|_| ())
                        }
                        Err(e) => Err(e),
                    };
                    table_outcome("table.create_table_if_missing", identity, read)
                }
            }
        }
    };
    lines.push(line(&home, "Table Storage: sync state", outcome));
    Ok(CheckReport { lines })
}

fn line(tenant: &TenantId, api: &'static str, outcome: Outcome) -> CheckLine {
    CheckLine {
        tenant: tenant.to_string(),
        api,
        outcome,
    }
}

/// Logs the report (the handler runs the check once after startup): a warning per line that
/// did not pass.
pub fn log(report: &CheckReport) {
    for l in &report.lines {
        if l.passed() {
            tracing::info!(tenant = %l.tenant, api = l.api, message = "Self-check passed.", line = %l);
        } else {
            tracing::warn!(tenant = %l.tenant, api = l.api, message = "Self-check: missing permission or failed call.", line = %l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_permission_to_grant_and_other_failures_do_not() {
        let denied = graph_outcome(
            "graph.count_incidents",
            Err(DefenderError::Auth {
                status: 403,
                message: "Missing role".into(),
            }),
        );
        let Outcome::Missing { permission, .. } = &denied else {
            panic!("{denied:?}")
        };
        assert_eq!(*permission, "SecurityIncident.ReadWrite.All");
        let users = graph_outcome(
            "graph.resolve_user",
            Err(DefenderError::UserLookupDenied {
                status: 403,
                message: "no".into(),
            }),
        );
        assert!(matches!(
            users,
            Outcome::Missing {
                permission: "User.Read.All",
                ..
            }
        ));
        let arm = arm_outcome(
            "arm.list_incidents",
            Err(SentinelError::Auth {
                status: 403,
                message: "AuthorizationFailed".into(),
            }),
        );
        assert!(matches!(
            arm,
            Outcome::Missing {
                permission: "Microsoft Sentinel Contributor",
                ..
            }
        ));
        let logs = logs_outcome(
            "logs.upload",
            Err(LogsError::Auth {
                status: 403,
                message: "no".into(),
            }),
        );
        assert!(matches!(
            logs,
            Outcome::Missing {
                permission: "Monitoring Metrics Publisher",
                ..
            }
        ));
        assert_eq!(
            logs_outcome(
                "logs.upload",
                Err(LogsError::Rejected {
                    status: 400,
                    message: "empty".into()
                })
            ),
            Outcome::Ok
        );
        let table = table_outcome(
            "table.create_table_if_missing",
            true,
            Err(StateError::Auth("403".into())),
        );
        assert!(matches!(
            table,
            Outcome::Missing {
                permission: "Storage Table Data Contributor",
                ..
            }
        ));
        assert!(matches!(
            graph_outcome(
                "graph.count_incidents",
                Err(DefenderError::Transient("reset".into()))
            ),
            Outcome::Failed(_)
        ));
        assert_eq!(
            graph_outcome("graph.resolve_user", Err(DefenderError::NotFound)),
            Outcome::Ok
        );
    }

    #[test]
    fn the_unified_line_names_the_alert_permission_in_the_workspace_tenant() {
        let incidents_only = vec!["SecurityIncident.ReadWrite.All".to_owned()];
        let o = with_roles(
            Outcome::Ok,
            "unified.scan_alerts",
            Some(&incidents_only),
            ALERT_READERS,
        );
        let Outcome::Missing {
            permission, scope, ..
        } = &o
        else {
            panic!("{o:?}")
        };
        assert_eq!(*permission, "SecurityAlert.Read.All");
        assert!(scope.contains("SENTINEL_TARGET=unified"), "{scope}");
        let refused = arm_outcome(
            "unified.list_modified",
            Err(SentinelError::Auth {
                status: 403,
                message: "no".into(),
            }),
        );
        assert!(
            matches!(
                refused,
                Outcome::Missing {
                    permission: "SecurityIncident.ReadWrite.All",
                    ..
                }
            ),
            "{refused:?}"
        );
    }

    #[test]
    fn the_tokens_roles_decide_the_write_half_when_the_token_has_them() {
        use base64::Engine;
        let enc = |v: serde_json::Value| {
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!("{}.{}.sig", b.encode("{}"), b.encode(v.to_string()))
        };
        let read_only = enc(serde_json::json!({"roles": ["SecurityIncident.Read.All"]}));
        let roles = token_roles(&read_only);
        assert_eq!(
            roles.as_deref(),
            Some(&["SecurityIncident.Read.All".to_owned()][..])
        );
        assert_eq!(token_roles(&enc(serde_json::json!({"aud": "x"}))), None);
        assert_eq!(token_roles("not a token"), None);
        let need = ["SecurityIncident.ReadWrite.All"];
        let o = with_roles(
            Outcome::Ok,
            "graph.update_incident",
            roles.as_deref(),
            &need,
        );
        let Outcome::Missing {
            permission, detail, ..
        } = &o
        else {
            panic!("{o:?}")
        };
        assert_eq!(*permission, "SecurityIncident.ReadWrite.All");
        assert!(detail.contains("SecurityIncident.Read.All"), "{detail}");
        let rw = vec!["SecurityIncident.ReadWrite.All".to_owned()];
        assert_eq!(
            with_roles(Outcome::Ok, "graph.update_incident", Some(&rw), &need),
            Outcome::Ok
        );
        assert_eq!(
            with_roles(Outcome::Ok, "graph.update_incident", None, &need),
            Outcome::Ok
        );
        let failed = Outcome::Failed("x".into());
        assert_eq!(
            with_roles(failed.clone(), "graph.update_incident", Some(&[]), &need),
            failed
        );
        let dir = vec!["Directory.Read.All".to_owned()];
        assert_eq!(
            with_roles(Outcome::Ok, "graph.resolve_user", Some(&dir), USER_READERS),
            Outcome::Ok
        );
    }

    #[test]
    fn a_line_says_ok_or_missing_with_the_permission_and_only_those_pass() {
        let ok = CheckLine {
            tenant: "t".into(),
            api: "Microsoft Graph: Defender incidents",
            outcome: Outcome::Ok,
        };
        assert_eq!(
            ok.to_string(),
            "tenant t | Microsoft Graph: Defender incidents | OK"
        );
        let bad = CheckLine {
            outcome: missing("graph.add_comment", "HTTP 403: denied".into()),
            ..ok.clone()
        };
        assert!(
            bad.to_string()
                .contains("MISSING SecurityIncident.ReadWrite.All")
        );
        assert!(!bad.passed());
        let report = CheckReport {
            lines: vec![
                ok.clone(),
                CheckLine {
                    outcome: Outcome::Skipped("off"),
                    ..ok.clone()
                },
            ],
        };
        assert!(report.passed());
        let report = CheckReport {
            lines: vec![ok, bad],
        };
        assert!(!report.passed());
    }
}
