//! `SentinelWebhook` with `SENTINEL_TARGET=unified`: which source incident a trigger body
//! names. In the unified Defender portal the automation rule still fires the Microsoft Sentinel
//! incident trigger, but the incident it posts is the platform's: `object.id` is the ARM id of
//! the workspace's Sentinel incident (a name the platform chose, not the name the sync derives
//! from the source incident), and `object.properties.providerIncidentId` is the Defender
//! (Graph) incident id in the workspace's tenant, `providerName` `Microsoft XDR`
//! (docs/api-notes.md, "Unified target: the incident trigger"). So the body's workspace is
//! checked as on the ARM path, and the source incident is found from the platform incident the
//! body names ([`PlatformRoutes`]); the call then goes on through the same [`ReverseApply`] path.
//!
//! [`ReverseApply`]: crate::sync::ReverseApply

use super::decide::{self, Refusal};
use super::trigger::Trigger;
use crate::config::SentinelWorkspace;
use crate::domain::{DefenderIncidentId, SentinelIncidentName};
use crate::ports::SentinelError;

/// Finds the source incident a platform incident of the workspace's tenant is the pair of.
#[async_trait::async_trait]
pub trait PlatformRoutes: Send + Sync {
    /// The source incident (by its derived name) whose pair is platform incident `id`; `None`
    /// when `id` is no incident, one the analytics rule did not make, or not the pair of its
    /// source (an extra of a split, a merged-away one).
    async fn source_of_platform(
        &self,
        id: &DefenderIncidentId,
    ) -> Result<Option<SentinelIncidentName>, SentinelError>;
}

/// Why a unified trigger is not routed to a source incident.
#[derive(Debug)]
pub enum RouteError {
    /// Refused before anything is read (wrong workspace, no or unusable provider id): 4xx.
    Refused(u16, String),
    /// Reading the platform incident failed: the caller answers as for the apply's errors.
    Upstream(SentinelError),
}

/// The source incident a unified trigger body is about.
pub async fn route(
    trigger: &Trigger,
    workspace: &SentinelWorkspace,
    routes: &dyn PlatformRoutes,
) -> Result<SentinelIncidentName, RouteError> {
    if !decide::same_workspace(&trigger.incident, workspace) {
        return Err(RouteError::Refused(
            Refusal::OtherWorkspace.status(),
            Refusal::OtherWorkspace.to_string(),
        ));
    }
    let id = trigger
        .provider_incident_id
        .as_deref()
        .and_then(|id| DefenderIncidentId::parse(id).ok())
        .ok_or_else(|| {
            RouteError::Refused(
                400,
                "with SENTINEL_TARGET=unified the body must name the platform incident in `object.properties.providerIncidentId` (the Sentinel incident trigger sends it)".to_owned(),
            )
        })?;
    match routes.source_of_platform(&id).await {
        Ok(Some(name)) => Ok(name),
        Ok(None) => Err(RouteError::Refused(
            Refusal::NotManaged.status(),
            format!(
                "{} (platform incident {} is not the pair of a source incident)",
                Refusal::NotManaged,
                id.as_str()
            ),
        )),
        Err(e) => Err(RouteError::Upstream(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DefenderIncidentId, TenantId};
    use crate::webhook::trigger::IncidentRef;
    use std::sync::Mutex;

    struct Routes {
        pair: (String, SentinelIncidentName),
        asked: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl PlatformRoutes for Routes {
        async fn source_of_platform(
            &self,
            id: &DefenderIncidentId,
        ) -> Result<Option<SentinelIncidentName>, SentinelError> {
            self.asked.lock().unwrap().push(id.as_str().to_owned());
            Ok((id.as_str() == self.pair.0).then_some(self.pair.1))
        }
    }

    fn ws() -> SentinelWorkspace {
        SentinelWorkspace {
            subscription_id: "d0cfe6b2-9ac0-4464-9919-dccaee2e48c0".into(),
            resource_group: "rg-secops-prod".into(),
            workspace_name: "law-sentinel-prod".into(),
        }
    }

    fn trigger(workspace: &str, provider: Option<&str>) -> Trigger {
        Trigger {
            incident: IncidentRef {
                subscription_id: "D0CFE6B2-9AC0-4464-9919-DCCAEE2E48C0".into(),
                resource_group: "rg-secops-prod".into(),
                workspace_name: workspace.into(),
                name: "0b7e6f1c-2d3a-4e5f-8a9b-0c1d2e3f4a5b".into(),
            },
            event: Some("Update".into()),
            updated_by_source: None,
            last_modified: None,
            alerts: 0,
            provider_incident_id: provider.map(str::to_owned),
            provider_name: Some("Microsoft XDR".into()),
        }
    }

    #[tokio::test]
    async fn the_body_is_routed_by_its_provider_incident_id_in_the_configured_workspace_only() {
        let name = SentinelIncidentName::for_defender(
            &TenantId::parse("b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c").unwrap(),
            &DefenderIncidentId::parse("17").unwrap(),
        );
        let routes = Routes {
            pair: ("1003".into(), name),
            asked: Mutex::default(),
        };
        let ok = route(&trigger("law-sentinel-prod", Some("1003")), &ws(), &routes).await;
        assert_eq!(ok.unwrap(), name);
        // Not the pair of any source (unknown, an extra of a split, forged): 404.
        let unknown = route(&trigger("law-sentinel-prod", Some("1009")), &ws(), &routes).await;
        assert!(matches!(unknown, Err(RouteError::Refused(404, _))));
        // Another workspace: 403 before anything is read.
        let other = route(&trigger("law-other", Some("1003")), &ws(), &routes).await;
        assert!(matches!(other, Err(RouteError::Refused(403, _))));
        // No provider id, or one that is no Graph incident id: 400, nothing read.
        for bad in [None, Some("../1003")] {
            let r = route(&trigger("law-sentinel-prod", bad), &ws(), &routes).await;
            assert!(matches!(r, Err(RouteError::Refused(400, _))), "{bad:?}");
        }
        assert_eq!(*routes.asked.lock().unwrap(), vec!["1003", "1009"]);
    }
}
