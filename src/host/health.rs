//! The SyncHealth report: configuration facts (never secrets) and, when a state store is
//! configured, each tenant's figures from the last cycle.

use super::plugins::Setup;
use super::HostState;
use crate::domain::TenantId;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;

/// Most failed incidents listed.
const FAILED_LIMIT: usize = 20;

/// Builds the report; store errors are listed in `errors`, never fail the call.
pub(super) async fn report(state: &HostState) -> Value {
    let info = &state.info;
    let setup = state.setup.borrow().clone();
    let (setup_text, services) = match setup {
        Setup::Pending => ("pending".to_owned(), None),
        Setup::Ready(s) => ("ready".to_owned(), Some(s)),
        Setup::Failed(m) => (format!("failed: {m}"), None),
    };
    let mut errors = Vec::new();
    let store = services.as_ref().and_then(|s| s.store.clone());
    let mut per_tenant = Map::new();
    let mut failed = Vec::new();
    if let Some(store) = &store {
        for tenant in &info.tenants {
            let figures = match TenantId::parse(tenant) {
                Ok(t) => store.tenant_health(&t).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match figures {
                Ok(h) => per_tenant.insert(tenant.clone(), json!(h)),
                Err(e) => {
                    errors.push(format!("tenant {tenant}: {e}"));
                    per_tenant.insert(tenant.clone(), Value::Null)
                }
            };
        }
        match store.failed_incidents(FAILED_LIMIT).await {
            Ok(list) => failed = list.iter().map(|i| json!({"tenant": i.tenant, "defenderId": i.defender_id, "sentinelName": i.sentinel_name.to_string(), "outcome": i.last_outcome, "error": i.last_error})).collect(),
            Err(e) => errors.push(format!("failed incidents: {e}")),
        }
    }
    json!({
        "version": info.version,
        "startedAt": info.started_at.format(&Rfc3339).unwrap_or_default(),
        "setup": setup_text,
        "functionTimeoutSeconds": info.function_timeout.as_secs_f64(),
        "schedule": info.schedule,
        "tenants": info.tenants,
        "workspace": {
            "subscriptionId": info.workspace.subscription_id,
            "resourceGroup": info.workspace.resource_group,
            "workspaceName": info.workspace.workspace_name,
        },
        "alertIngestion": info.alert_ingestion,
        "stateStore": if store.is_some() { "configured" } else { "not configured" },
        "perTenant": per_tenant,
        "failedIncidents": failed,
        "errors": errors,
    })
}
