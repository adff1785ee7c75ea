//! The webhook's decisions that need no I/O: whether a trigger's incident is ours to act on, and
//! what the caller is answered for each outcome and error (status, `Retry-After`, body).

use super::trigger::IncidentRef;
use crate::config::SentinelWorkspace;
use crate::domain::SentinelIncidentName;
use crate::host::plugins::HttpReply;
use crate::ports::{DefenderError, SentinelError};
use crate::state::StateError;
use crate::sync::{ReverseError, ReverseOutcome, Unmanaged};
use serde_json::json;
use std::time::Duration;

/// The wait a throttled caller is told when the upstream gave none.
pub const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(10);
/// The wait after a transient failure (5xx, network, a state conflict that outlived its retries).
pub const TRANSIENT_WAIT: Duration = Duration::from_secs(5);

/// Why a call is refused before anything is read upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the incident is in another workspace than this sync's")]
    OtherWorkspace,
    #[error("the incident is not one this sync manages")]
    NotManaged,
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Self::OtherWorkspace => 403,
            Self::NotManaged => 404,
        }
    }
}

/// The incident named by a trigger, if it is in the configured workspace (ARM compares
/// subscription, resource group and workspace names case-insensitively) and can be one of ours
/// (a UUID name; whether the sync manages it is the state's to say).
pub fn authorise(
    incident: &IncidentRef,
    workspace: &SentinelWorkspace,
) -> Result<SentinelIncidentName, Refusal> {
    if !same_workspace(incident, workspace) {
        return Err(Refusal::OtherWorkspace);
    }
    SentinelIncidentName::parse(&incident.name).map_err(|_| Refusal::NotManaged)
}

/// Whether the incident is in the configured workspace (subscription, resource group and
/// workspace names compared case-insensitively, as ARM does).
pub fn same_workspace(incident: &IncidentRef, workspace: &SentinelWorkspace) -> bool {
    incident
        .subscription_id
        .eq_ignore_ascii_case(&workspace.subscription_id)
        && incident
            .resource_group
            .eq_ignore_ascii_case(&workspace.resource_group)
        && incident
            .workspace_name
            .eq_ignore_ascii_case(&workspace.workspace_name)
}

/// An error reply with a `Retry-After` when the caller should come back.
pub fn error_reply(status: u16, message: &str, retry_after: Option<Duration>) -> HttpReply {
    let mut reply = HttpReply::json(status, &json!({ "error": message }));
    if let Some(wait) = retry_after {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        reply
            .headers
            .insert("Retry-After".into(), secs.max(1).to_string());
    }
    reply
}

/// Status and wait for an error of the apply path. Throttling keeps the upstream's wait (429);
/// other transient failures and a deadline are 503; refused credentials are 502 (ours, not the
/// caller's); a refused write is 422 (parked: SyncHealth shows it).
pub fn error_status(e: &ReverseError) -> (u16, Option<Duration>) {
    match e {
        ReverseError::Defender(DefenderError::Throttled { retry_after })
        | ReverseError::Sentinel(SentinelError::Throttled { retry_after })
        | ReverseError::State(StateError::Throttled { retry_after }) => {
            (429, Some(retry_after.unwrap_or(DEFAULT_THROTTLE_WAIT)))
        }
        ReverseError::Defender(DefenderError::NotFound)
        | ReverseError::Sentinel(SentinelError::NotFound) => (404, None),
        _ => match e.class() {
            crate::ports::ErrorClass::Auth => (502, None),
            crate::ports::ErrorClass::Rejected => (422, None),
            crate::ports::ErrorClass::NotFound => (404, None),
            crate::ports::ErrorClass::Transient | crate::ports::ErrorClass::Conflict => {
                (503, Some(TRANSIENT_WAIT))
            }
        },
    }
}

/// Status, result word and detail of an outcome of the apply.
pub fn outcome_status(o: &ReverseOutcome) -> (u16, &'static str) {
    match o {
        ReverseOutcome::Applied(_) => (200, "applied"),
        ReverseOutcome::Unchanged => (200, "unchanged"),
        ReverseOutcome::Unmanaged(Unmanaged::NoState) => (404, "not-managed"),
        ReverseOutcome::Unmanaged(Unmanaged::ForeignTenant) => (403, "foreign-tenant"),
        // Forward sync is creating the incident's merge base (a cycle in flight): come back.
        ReverseOutcome::Unmanaged(Unmanaged::NotYetSynced) => (503, "not-yet-synced"),
        ReverseOutcome::Parked(_) => (422, "parked"),
        ReverseOutcome::DefenderGone => (410, "defender-incident-gone"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Applied;

    fn ws() -> SentinelWorkspace {
        SentinelWorkspace {
            subscription_id: "d0cfe6b2-9ac0-4464-9919-dccaee2e48c0".into(),
            resource_group: "rg-secops-prod".into(),
            workspace_name: "law-sentinel-prod".into(),
        }
    }

    fn incident(sub: &str, rg: &str, w: &str, name: &str) -> IncidentRef {
        IncidentRef {
            subscription_id: sub.into(),
            resource_group: rg.into(),
            workspace_name: w.into(),
            name: name.into(),
        }
    }

    #[test]
    fn only_uuid_incidents_of_the_configured_workspace_are_ours() {
        let name = "73e01a99-5cd7-4139-a149-9f2736ff2ab5";
        let ok = incident(
            "D0CFE6B2-9AC0-4464-9919-DCCAEE2E48C0",
            "RG-SecOps-Prod",
            "law-sentinel-prod",
            name,
        );
        assert_eq!(authorise(&ok, &ws()).unwrap().to_string(), name);
        let w = ws();
        for other in [
            incident(
                "00000000-0000-0000-0000-000000000000",
                &w.resource_group,
                &w.workspace_name,
                name,
            ),
            incident(&w.subscription_id, "rg-other", &w.workspace_name, name),
            incident(&w.subscription_id, &w.resource_group, "law-other", name),
        ] {
            assert_eq!(authorise(&other, &w), Err(Refusal::OtherWorkspace));
        }
        let not_uuid = incident(
            &w.subscription_id,
            &w.resource_group,
            &w.workspace_name,
            "3177",
        );
        assert_eq!(authorise(&not_uuid, &w), Err(Refusal::NotManaged));
        assert_eq!(Refusal::OtherWorkspace.status(), 403);
        assert_eq!(Refusal::NotManaged.status(), 404);
    }

    #[test]
    fn throttling_keeps_the_upstreams_wait_and_other_failures_map_to_their_class() {
        let graph = ReverseError::Defender(DefenderError::Throttled {
            retry_after: Some(Duration::from_millis(2500)),
        });
        assert_eq!(
            error_status(&graph),
            (429, Some(Duration::from_millis(2500)))
        );
        let arm = ReverseError::Sentinel(SentinelError::Throttled { retry_after: None });
        assert_eq!(error_status(&arm), (429, Some(DEFAULT_THROTTLE_WAIT)));
        let down = ReverseError::Defender(DefenderError::Transient("503".into()));
        assert_eq!(error_status(&down), (503, Some(TRANSIENT_WAIT)));
        let conflict = ReverseError::State(StateError::Conflict);
        assert_eq!(error_status(&conflict), (503, Some(TRANSIENT_WAIT)));
        let auth = ReverseError::Defender(DefenderError::Auth {
            status: 403,
            message: "no".into(),
        });
        assert_eq!(error_status(&auth), (502, None));
        let refused = ReverseError::Defender(DefenderError::Rejected {
            status: 400,
            message: "no".into(),
        });
        assert_eq!(error_status(&refused), (422, None));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let r = error_reply(429, "x", Some(Duration::from_millis(2100)));
        assert_eq!(r.headers.get("Retry-After").map(String::as_str), Some("3"));
        let r = error_reply(503, "x", Some(Duration::ZERO));
        assert_eq!(r.headers.get("Retry-After").map(String::as_str), Some("1"));
        assert!(
            !error_reply(400, "x", None)
                .headers
                .contains_key("Retry-After")
        );
    }

    #[test]
    fn outcomes_answer_2xx_only_when_nothing_is_left_to_do_by_the_caller() {
        assert_eq!(outcome_status(&ReverseOutcome::Unchanged).0, 200);
        assert_eq!(
            outcome_status(&ReverseOutcome::Applied(Applied::default())).0,
            200
        );
        assert_eq!(
            outcome_status(&ReverseOutcome::Unmanaged(Unmanaged::NoState)).0,
            404
        );
        assert_eq!(
            outcome_status(&ReverseOutcome::Unmanaged(Unmanaged::ForeignTenant)).0,
            403
        );
        assert_eq!(outcome_status(&ReverseOutcome::Parked("x".into())).0, 422);
        assert_eq!(
            outcome_status(&ReverseOutcome::Unmanaged(Unmanaged::NotYetSynced)).0,
            503,
            "retried by the playbook once forward sync has stored the base"
        );
    }
}
