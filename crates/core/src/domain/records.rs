//! What the sync state holds, as values: checkpoints, the state horizon, retry entries and,
//! per incident, the merge base with the Sentinel snapshot. The state port
//! ([`crate::state::StateStore`]) stores them; the pure core reads them, so they sit below both.

use super::{
    DefenderFields, DefenderIncidentId, OwnerType, SentinelFields, SentinelIncidentName, TenantId,
};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// Forward-sync checkpoint of one Defender tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Every incident with `lastUpdateDateTime` < watermark has been delivered or parked.
    #[serde(with = "time::serde::rfc3339")]
    pub watermark: OffsetDateTime,
    /// Incidents already delivered whose `lastUpdateDateTime` equals the watermark instant, so
    /// the overlapping query neither skips nor repeats them.
    pub ids_at_watermark: BTreeSet<String>,
}

/// A tenant's state horizon: no incident created after `created` has a state. The forward
/// sync raises it at the start of each cycle to the cycle's window end, and then takes an
/// incident created after the value it replaced for new without reading its state (the
/// insert's `Absent` precondition still catches a writer that raced it). So that this holds,
/// every writer that inserts an incident state first raises the horizon (compare-and-swap) to
/// at least that incident's `createdDateTime`; writers that only update existing states need
/// not. No record means no state of the tenant exists yet. Deleting the record while states
/// remain breaks that: the next cycle would rewrite those incidents' Sentinel side without
/// reading their merge base.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateHorizon {
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
}

impl StateHorizon {
    /// A horizon at `created` (a first record).
    pub fn at(created: OffsetDateTime) -> Self {
        Self { created }
    }

    /// No incident created after this instant has a state.
    pub fn created(&self) -> OffsetDateTime {
        self.created
    }

    /// True when an incident created at `created` may have its state inserted.
    pub fn covers(&self, created: OffsetDateTime) -> bool {
        self.created >= created
    }

    /// The horizon to write so that it covers `to`: `None` when `current` already does. A
    /// horizon only ever moves forward.
    pub fn raised(current: Option<&Self>, to: OffsetDateTime) -> Option<Self> {
        match current {
            Some(c) if c.covers(to) => None,
            _ => Some(Self::at(to)),
        }
    }
}

/// An incident parked after failing for a reason of its own; the watermark passes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetryEntry {
    pub incident_id: DefenderIncidentId,
    #[serde(with = "time::serde::rfc3339")]
    pub last_update: OffsetDateTime,
    pub attempts: u32,
    pub last_error: String,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt: OffsetDateTime,
    /// Parked by reverse sync (a Sentinel change Defender refused or cannot take): retried by
    /// the Sentinel poll, never by forward sync, which keeps syncing the incident meanwhile.
    #[serde(default)]
    pub reverse: bool,
}

/// Checkpoint of the Sentinel polling path (changes no webhook delivered).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SentinelCheckpoint {
    #[serde(with = "time::serde::rfc3339")]
    pub watermark: OffsetDateTime,
}

/// The last outcome of syncing one incident.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    Synced,
    Unchanged,
    Parked,
    Failed,
}

/// Per-incident state: the id map, the merge base, and what was already mirrored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IncidentState {
    pub tenant: TenantId,
    pub defender_id: DefenderIncidentId,
    pub sentinel_name: SentinelIncidentName,
    /// `lastUpdateDateTime` of the Defender incident last synced.
    #[serde(with = "time::serde::rfc3339::option")]
    pub defender_last_update: Option<OffsetDateTime>,
    /// Last value seen or written on the Defender side, in Defender's vocabulary.
    pub defender_base: Option<DefenderFields>,
    /// Last value seen or written on the Sentinel side, in Sentinel's vocabulary.
    pub sentinel_base: Option<SentinelFields>,
    /// The Sentinel incident's etag after our last write or read (set with the snapshot,
    /// through [`IncidentState::record_sentinel`]).
    sentinel_etag: Option<String>,
    /// Fingerprints of comments already mirrored (either direction).
    pub mirrored_comments: BTreeSet<String>,
    /// Alert id → fingerprint of the alert (with its evidence) last shipped to Logs Ingestion.
    pub shipped_alerts: BTreeMap<String, String>,
    pub last_outcome: Option<Outcome>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// The whole Sentinel incident at `sentinel_etag` (our last write or read), so an update
    /// can skip the GET: see [`SentinelSnapshot`]. Absent in states written before it existed.
    #[serde(default)]
    sentinel_snapshot: Option<SentinelSnapshot>,
    /// The Defender owner the Sentinel directory does not know: the Sentinel incident is left
    /// unassigned and its description names this owner, on every later update too.
    #[serde(default)]
    pub unknown_owner: Option<String>,
    /// How many comments the Sentinel incident holds after our last write or read, when known
    /// exactly (ours included); `None` when unknown. With the snapshot, it lets the Sentinel
    /// poll tell our own writes from an analyst's without reading anything.
    #[serde(default)]
    pub sentinel_comments: Option<u32>,
    /// With the unified target: the platform incident paired with this source incident (its
    /// Graph id in the workspace tenant), kept once known and moved by a platform merge. Absent
    /// in states written before it existed (their pair is in the etag: see the unified
    /// adapter) and on the ARM target.
    #[serde(default)]
    pub platform_incident: Option<DefenderIncidentId>,
}

/// The Sentinel incident as Sentinel held it right after our last write (the PUT's answer) or
/// read: everything the full-replace PUT and the merge need that [`SentinelFields`] lacks.
/// Unlike `sentinel_base` (which lags behind a pending Defender write), these are Sentinel's
/// actual values at `etag`. Only valid while `etag` equals the state's `sentinel_etag`: the
/// state sets both together ([`IncidentState::record_sentinel`]) and hands the snapshot out
/// only while they agree ([`IncidentState::snapshot`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SentinelSnapshot {
    /// The etag these values belong to.
    pub etag: String,
    pub fields: SentinelFields,
    #[serde(default)]
    pub owner_object_id: Option<uuid::Uuid>,
    #[serde(default)]
    pub owner_upn: Option<String>,
    #[serde(default)]
    pub owner_email: Option<String>,
    /// The owner's display name (`assignedTo`).
    #[serde(default)]
    pub owner_assigned_to: Option<String>,
    /// The owner's `ownerType` (`User`, `Group`, `Unknown`).
    #[serde(default)]
    pub owner_type: Option<OwnerType>,
    /// Every label as Sentinel holds it (reserved and AutoAssigned ones included).
    #[serde(default)]
    pub labels: Vec<SnapshotLabel>,
    /// Digest of title and description (the texts themselves are Defender's and can be long).
    #[serde(default)]
    pub text_digest: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub first_activity: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_activity: Option<OffsetDateTime>,
    #[serde(default)]
    pub incident_number: Option<i64>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_modified: Option<OffsetDateTime>,
}

/// One Sentinel label in a [`SentinelSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotLabel {
    pub name: String,
    /// Set by the service (`AutoAssigned`) rather than by a user.
    #[serde(default)]
    pub auto_assigned: bool,
}

impl IncidentState {
    /// A fresh state for an incident never synced before.
    pub fn new(tenant: TenantId, defender_id: DefenderIncidentId) -> Self {
        let sentinel_name = SentinelIncidentName::for_defender(&tenant, &defender_id);
        Self {
            tenant,
            defender_id,
            sentinel_name,
            defender_last_update: None,
            defender_base: None,
            sentinel_base: None,
            sentinel_etag: None,
            mirrored_comments: BTreeSet::new(),
            shipped_alerts: BTreeMap::new(),
            last_outcome: None,
            last_error: None,
            updated_at: None,
            sentinel_snapshot: None,
            unknown_owner: None,
            sentinel_comments: None,
            platform_incident: None,
        }
    }

    /// The Sentinel incident's etag after our last write or read.
    pub fn sentinel_etag(&self) -> Option<&str> {
        self.sentinel_etag.as_deref()
    }

    /// The Sentinel incident at the state's etag, when the state holds a snapshot of exactly
    /// that etag (never one of an older etag).
    pub fn snapshot(&self) -> Option<&SentinelSnapshot> {
        self.sentinel_snapshot
            .as_ref()
            .filter(|s| self.sentinel_etag.as_deref() == Some(s.etag.as_str()))
    }

    /// Records the Sentinel incident as last written or read: its etag and, when there is one,
    /// its snapshot. A snapshot of another etag is dropped, so the pair always agrees.
    pub fn record_sentinel(&mut self, etag: Option<String>, snapshot: Option<SentinelSnapshot>) {
        self.sentinel_snapshot = snapshot.filter(|s| etag.as_deref() == Some(s.etag.as_str()));
        self.sentinel_etag = etag;
    }

    /// Records the platform incident the Sentinel side answered as (the unified target; `None`,
    /// as on the ARM target, keeps what is known).
    pub fn record_platform(&mut self, id: Option<&DefenderIncidentId>) {
        if let Some(id) = id {
            self.platform_incident = Some(id.clone());
        }
    }
}

/// Sync figures of one tenant's last cycle (shown by SyncHealth).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct TenantHealth {
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_cycle_start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_cycle_end: Option<OffsetDateTime>,
    pub last_cycle_completed: bool,
    pub incidents_seen: u64,
    pub incidents_written: u64,
    pub incidents_failed: u64,
    pub throttled_calls: u64,
    pub comment_cap_reached: Vec<String>,
    pub last_errors: Vec<String>,
    /// The tenant's share of the last Sentinel poll (reverse sync); absent before it ran.
    #[serde(default)]
    pub reverse: Option<ReverseFigures>,
}

/// One tenant's figures of a Sentinel poll (reverse sync): its incidents listed as changed,
/// Defender PATCHes, comments posted to Defender, conflicts decided, incidents parked and
/// incidents that failed transiently.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ReverseFigures {
    pub seen: u64,
    pub defender_writes: u64,
    pub comments: u64,
    pub conflicts: u64,
    pub parked: u64,
    pub failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_without_the_pair_field_reads_and_a_known_pair_is_kept() {
        let tenant = TenantId::parse("b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c").unwrap();
        let mut st = IncidentState::new(tenant, DefenderIncidentId::parse("7").unwrap());
        let mut json = serde_json::to_value(&st).unwrap();
        json.as_object_mut().unwrap().remove("platform_incident");
        let old: IncidentState = serde_json::from_value(json).unwrap();
        assert_eq!(
            old.platform_incident, None,
            "states written before the field"
        );
        let pid = DefenderIncidentId::parse("1003").unwrap();
        st.record_platform(Some(&pid));
        st.record_platform(None); // an answer without a platform id (ARM) keeps it
        assert_eq!(st.platform_incident.as_ref(), Some(&pid));
        let moved = DefenderIncidentId::parse("1009").unwrap();
        st.record_platform(Some(&moved)); // a merge moved the pair
        let back: IncidentState =
            serde_json::from_value(serde_json::to_value(&st).unwrap()).unwrap();
        assert_eq!(back.platform_incident, Some(moved));
    }
}
