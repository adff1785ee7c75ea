//! The SyncHealth report: configuration facts (never secrets) and, when a state store is
//! configured, each tenant's figures from the last cycle.

use super::HostState;
use crate::domain::TenantId;
use crate::state::StateStore;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Most failed incidents listed.
const FAILED_LIMIT: usize = 20;

/// How long SyncHealth waits for a startup still in progress.
const SETUP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Builds the report; store errors are listed in `errors`, never fail the call.
pub(super) async fn report(state: &HostState) -> Value {
    let info = &state.info;
    let setup = state
        .services(tokio::time::Instant::now() + SETUP_WAIT)
        .await;
    let (setup_text, services) = match setup {
        Ok(s) => ("ready".to_owned(), Some(s)),
        Err(e) => (e, None),
    };
    let store = services.as_ref().and_then(|s| s.store.clone());
    let (per_tenant, failed, errors) = match &store {
        Some(store) => store_figures(store.as_ref(), &info.tenants).await,
        None => (Map::new(), Vec::new(), Vec::new()),
    };
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
        "sentinelTarget": info.sentinel_target,
        "stateStore": if store.is_some() { "configured" } else { "not configured" },
        "perTenant": per_tenant,
        "failedIncidents": failed,
        "errors": errors,
    })
}

/// The tenant's watermark and lag (now − watermark, whole seconds); both null before the
/// first saved checkpoint.
fn add_lag(obj: &mut Map<String, Value>, watermark: Option<OffsetDateTime>, now: OffsetDateTime) {
    let lag = watermark.map(|w| (now - w).whole_seconds().max(0));
    obj.insert(
        "watermark".into(),
        json!(watermark.and_then(|w| w.format(&Rfc3339).ok())),
    );
    obj.insert("lag_seconds".into(), json!(lag));
}

/// Each tenant's last-cycle figures and the failed incidents, with any store errors.
async fn store_figures(
    store: &dyn StateStore,
    tenants: &[String],
) -> (Map<String, Value>, Vec<Value>, Vec<String>) {
    let (mut per_tenant, mut failed, mut errors) = (Map::new(), Vec::new(), Vec::new());
    for tenant in tenants {
        let figures = match TenantId::parse(tenant) {
            Ok(t) => store.tenant_health(&t).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let mut value = figures.map(|h| json!(h)).unwrap_or_else(|e| {
            errors.push(format!("tenant {tenant}: {e}"));
            Value::Null
        });
        if let (Some(obj), Ok(t)) = (value.as_object_mut(), TenantId::parse(tenant)) {
            match store.checkpoint(&t).await {
                Ok(cp) => add_lag(
                    obj,
                    cp.map(|v| v.value.watermark),
                    OffsetDateTime::now_utc(),
                ),
                Err(e) => errors.push(format!("tenant {tenant}: checkpoint: {e}")),
            }
        }
        per_tenant.insert(tenant.clone(), value);
    }
    match store.failed_incidents(FAILED_LIMIT).await {
        Ok(list) => {
            failed = list
                .iter()
                .map(|i| {
                    json!({"tenant": i.tenant, "defenderId": i.defender_id, "sentinelName": i.sentinel_name.to_string(),
                           "outcome": i.last_outcome, "error": i.last_error})
                })
                .collect()
        }
        Err(e) => errors.push(format!("failed incidents: {e}")),
    }
    (per_tenant, failed, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn lag_is_now_minus_the_watermark_and_null_without_one() {
        let mut obj = Map::new();
        add_lag(
            &mut obj,
            Some(datetime!(2026-01-01 10:00:00 UTC)),
            datetime!(2026-01-01 10:01:30 UTC),
        );
        assert_eq!(obj["lag_seconds"], 90);
        assert_eq!(obj["watermark"], "2026-01-01T10:00:00Z");
        add_lag(&mut obj, None, datetime!(2026-01-01 10:01:30 UTC));
        assert!(obj["lag_seconds"].is_null() && obj["watermark"].is_null());
    }
}
