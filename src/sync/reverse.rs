//! Reverse sync of ONE incident (issue 12, part 1): a Sentinel incident an analyst changed
//! reaches its Defender incident. Reads the current Defender incident, runs the same merge as
//! forward sync, PATCHes only the properties that change, mirrors new analyst comments into
//! Defender (marked, at most once), notes overridden Defender changes, and writes the state with
//! `If-Match` (a conflict starts the incident over).
//!
//! The merge base advances only for what both sides now agree on: a field with a Defender write
//! advances after the PATCH succeeded; a field the merge wants written to Sentinel (Defender's
//! change wins) keeps its old base, so forward sync, which owns Sentinel writes, still sees it.
//!
//! The poll that feeds this (`$filter` on `lastModifiedTimeUtc`, the Sentinel checkpoint) is not
//! built yet; the webhook of the next issue will call the same path.

use super::fingerprint::{SENTINEL_MARKER, is_mirrored};
use super::merge::{self, Conflict, MergeBase, MergeInput, MergeOutcome, MergePolicy, Side};
use crate::domain::*;
use crate::ports::*;
use crate::state::{IncidentState, Outcome, Precondition, StateError, StateStore};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// How often a state conflict (another writer) starts the incident over before giving up.
const ATTEMPTS: usize = 3;

/// What reverse sync did with one Sentinel incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReverseOutcome {
    /// Not ours: no state (created in Sentinel or by another connector), a tenant this
    /// deployment does not sync, or an incident forward sync has not completed yet. Untouched.
    Unmanaged(Unmanaged),
    /// Both sides already agree (including our own forward writes seen again): nothing written.
    Unchanged,
    /// Written to Defender.
    Applied(Applied),
    /// Cannot be mapped or was refused by Graph; recorded in the state with its reason.
    Parked(String),
    /// The Defender incident no longer exists.
    DefenderGone,
}

/// Why an incident is not ours to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmanaged {
    /// No state: a native Sentinel incident or another connector's.
    NoState,
    /// The state names a Defender tenant this deployment does not sync (never written to).
    ForeignTenant,
    /// Forward sync has not stored a merge base yet.
    NotYetSynced,
}

/// The writes of an applied incident.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// A Graph PATCH was sent.
    pub patched: bool,
    /// Comments posted to Defender (analyst comments and conflict notes).
    pub comments: usize,
    /// Conflicts the policy decided.
    pub conflicts: usize,
}

/// Why an incident could not be applied now (its checkpoint must hold).
#[derive(Debug, thiserror::Error)]
pub enum ReverseError {
    #[error(transparent)]
    Defender(#[from] DefenderError),
    #[error(transparent)]
    Sentinel(#[from] SentinelError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl ReverseError {
    /// What the caller does next (a state conflict that outlived the attempts is transient).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Defender(e) => e.class(),
            Self::Sentinel(e) => e.class(),
            Self::State(StateError::Auth(_)) => ErrorClass::Auth,
            Self::State(StateError::Invalid(_)) => ErrorClass::Rejected,
            Self::State(_) => ErrorClass::Transient,
        }
    }
}

/// Applies Sentinel changes to Defender, one incident at a time.
pub struct ReverseApply<'a> {
    pub defender: &'a dyn DefenderApi,
    pub sentinel: &'a dyn SentinelApi,
    pub store: &'a dyn StateStore,
    pub policy: &'a MergePolicy,
    /// The Defender tenants this deployment syncs: nothing is ever written to another.
    pub tenants: &'a [TenantId],
}

impl ReverseApply<'_> {
    /// Applies the Sentinel incident `s` (as just read) to its Defender incident.
    pub async fn apply(&self, s: &SentinelIncident) -> Result<ReverseOutcome, ReverseError> {
        let mut last = StateError::Conflict;
        for _ in 0..ATTEMPTS {
            match self.attempt(s).await {
                Err(ReverseError::State(StateError::Conflict)) => last = StateError::Conflict,
                other => return other,
            }
        }
        Err(last.into())
    }

    async fn attempt(&self, s: &SentinelIncident) -> Result<ReverseOutcome, ReverseError> {
        let Some(v) = self.store.incident(&s.name).await? else {
            return Ok(ReverseOutcome::Unmanaged(Unmanaged::NoState));
        };
        let (mut st, etag) = (v.value, v.etag);
        if !self.tenants.contains(&st.tenant) {
            return Ok(ReverseOutcome::Unmanaged(Unmanaged::ForeignTenant));
        }
        let (Some(bd), Some(bs)) = (st.defender_base.clone(), st.sentinel_base.clone()) else {
            return Ok(ReverseOutcome::Unmanaged(Unmanaged::NotYetSynced));
        };
        let old = MergeBase {
            defender: bd,
            sentinel: bs,
        };
        let Some(d) = self
            .defender
            .get_incident(&st.tenant, &st.defender_id)
            .await?
        else {
            return Ok(ReverseOutcome::DefenderGone);
        };
        let sf = s.fields();
        let df = d.fields();
        let input = MergeInput {
            base: Some(&old),
            defender: &df,
            sentinel: Some(&sf),
            defender_modified: d.last_update,
            sentinel_modified: s.last_modified,
        };
        let outcome = match merge::merge(input, self.policy) {
            Ok(o) => o,
            Err(e) => return self.park(st, etag, e.to_string()).await,
        };
        let mut applied = Applied {
            conflicts: outcome.conflicts.len(),
            ..Applied::default()
        };
        let mut after = d.clone();
        if !outcome.defender_writes.is_empty() {
            match self
                .defender
                .update_incident(&st.tenant, &st.defender_id, &outcome.defender_writes)
                .await
            {
                Ok(answer) => after = answer,
                Err(e) if e.class() == ErrorClass::Rejected => {
                    return self.park(st, etag, e.to_string()).await;
                }
                Err(DefenderError::NotFound) => return Ok(ReverseOutcome::DefenderGone),
                Err(e) => return Err(e.into()),
            }
            applied.patched = true;
        }
        let recorded = st.mirrored_comments.len();
        applied.comments += self.mirror_comments(s, &mut st, &after).await?;
        applied.comments += self.conflict_notes(&outcome, &mut st, &after).await?;

        let base = advanced_base(&old, &outcome, &after.fields(), &sf);
        let nothing = !applied.patched && applied.comments == 0 && base == old;
        // Comments found already posted (a crash before the state write) are only recorded.
        let recorded = st.mirrored_comments.len() != recorded;
        if outcome.sentinel_writes.is_empty() && applied.patched {
            // Our own PATCH, seen by the next Graph pull, is then no change.
            st.defender_last_update = Some(after.last_update);
        }
        st.defender_base = Some(base.defender);
        st.sentinel_base = Some(base.sentinel);
        if st.sentinel_etag() != s.etag.as_deref() {
            // Sentinel moved since our last write: forward sync re-reads it instead of trusting
            // a snapshot of another etag.
            st.record_sentinel(s.etag.clone(), None);
        }
        if nothing && !recorded && st.last_outcome != Some(Outcome::Parked) {
            return Ok(ReverseOutcome::Unchanged);
        }
        st.last_outcome = Some(Outcome::Synced);
        st.last_error = None;
        st.updated_at = Some(OffsetDateTime::now_utc());
        self.store
            .put_incident(&st, Precondition::Matches(etag))
            .await?;
        Ok(if nothing && !recorded {
            ReverseOutcome::Unchanged
        } else {
            ReverseOutcome::Applied(applied)
        })
    }

    /// Records why the incident cannot be applied (shown by SyncHealth); nothing is written to
    /// Defender.
    async fn park(
        &self,
        mut st: IncidentState,
        etag: crate::state::ETag,
        reason: String,
    ) -> Result<ReverseOutcome, ReverseError> {
        st.last_outcome = Some(Outcome::Parked);
        st.last_error = Some(format!("reverse sync: {reason}"));
        st.updated_at = Some(OffsetDateTime::now_utc());
        self.store
            .put_incident(&st, Precondition::Matches(etag))
            .await?;
        Ok(ReverseOutcome::Parked(reason))
    }

    /// Posts each analyst comment of `s` not yet in Defender, once. A comment already carrying
    /// its reference in Defender (a crash after the POST, before the state write) is only
    /// recorded.
    async fn mirror_comments(
        &self,
        s: &SentinelIncident,
        st: &mut IncidentState,
        d: &DefenderIncident,
    ) -> Result<usize, ReverseError> {
        let comments = self.sentinel.list_comments(&s.name).await?;
        let mut posted = 0;
        for c in comments.iter().filter(|c| !is_mirrored(&c.message)) {
            let fp = sentinel_comment_fingerprint(c);
            if st.mirrored_comments.contains(&fp) {
                continue;
            }
            if !carries_ref(d, &fp) {
                self.defender
                    .add_comment(&st.tenant, &st.defender_id, &defender_message(c, &fp))
                    .await?;
                posted += 1;
            }
            st.mirrored_comments.insert(fp);
        }
        Ok(posted)
    }

    /// One Defender comment per conflict Sentinel won (Defender's change was overridden).
    async fn conflict_notes(
        &self,
        outcome: &MergeOutcome,
        st: &mut IncidentState,
        d: &DefenderIncident,
    ) -> Result<usize, ReverseError> {
        let mut posted = 0;
        for c in outcome
            .conflicts
            .iter()
            .filter(|c| c.winner == Side::Sentinel)
        {
            let text = defender_conflict_message(c, &self.policy.conflict);
            let fp = text_fingerprint("conflict", &text);
            if st.mirrored_comments.contains(&fp) {
                continue;
            }
            if !carries_ref(d, &fp) {
                let body = format!("{text} (ref {fp})");
                self.defender
                    .add_comment(&st.tenant, &st.defender_id, &body)
                    .await?;
                posted += 1;
            }
            st.mirrored_comments.insert(fp);
        }
        Ok(posted)
    }
}

fn carries_ref(d: &DefenderIncident, fp: &str) -> bool {
    let r = format!("(ref {fp})");
    d.comments.iter().any(|c| c.text.contains(&r))
}

fn text_fingerprint(kind: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0x1f]);
    h.update(text.as_bytes());
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Stable identity of a Sentinel comment: its ARM id (comments have ids, unlike Defender's).
pub fn sentinel_comment_fingerprint(c: &SentinelComment) -> String {
    text_fingerprint("sentinel-comment", &c.id.to_ascii_lowercase())
}

/// The Defender text of a Sentinel analyst comment: marked (never mirrored back) and carrying
/// its reference (so a retry finds it instead of posting it again).
pub fn defender_message(c: &SentinelComment, fp: &str) -> String {
    let author = c.author.as_deref().unwrap_or("unknown");
    format!("{SENTINEL_MARKER}(ref {fp}) {author}:\n{}", c.message)
}

/// The Defender note on a conflict Sentinel won.
pub fn defender_conflict_message(c: &Conflict, policy: &ConflictPolicyName) -> String {
    format!(
        "{SENTINEL_MARKER}Sync conflict on {:?}: it was changed here to {} and in Sentinel to {}; \
         the conflict policy ({policy}) kept Sentinel's value and overrode the change made here.",
        c.field, c.defender_value, c.sentinel_value
    )
}

/// The base to store after reverse sync, PURE: a field the merge wants written to Sentinel keeps
/// its old base (forward sync writes it); every other field takes both sides' values now
/// (`defender` is Defender after the PATCH, `sentinel` the Sentinel incident merged against).
pub fn advanced_base(
    old: &MergeBase,
    outcome: &MergeOutcome,
    defender: &DefenderFields,
    sentinel: &SentinelFields,
) -> MergeBase {
    let w = &outcome.sentinel_writes;
    let (mut d, mut s) = (defender.clone(), sentinel.clone());
    let (od, os) = (&old.defender, &old.sentinel);
    if w.status.is_some() {
        (d.status, s.status) = (od.status.clone(), os.status.clone());
    }
    if w.severity.is_some() {
        (d.severity, s.severity) = (od.severity.clone(), os.severity.clone());
    }
    if w.classification.is_some() {
        (d.classification, d.determination, d.resolving_comment) = (
            od.classification.clone(),
            od.determination.clone(),
            od.resolving_comment.clone(),
        );
        (
            s.classification,
            s.classification_reason,
            s.classification_comment,
        ) = (
            os.classification.clone(),
            os.classification_reason.clone(),
            os.classification_comment.clone(),
        );
    }
    if w.owner_upn.is_some() {
        (d.assigned_to, s.owner_upn) = (od.assigned_to.clone(), os.owner_upn.clone());
    }
    if w.tags.is_some() {
        (d.custom_tags, s.tags) = (od.custom_tags.clone(), os.tags.clone());
    }
    MergeBase {
        defender: d,
        sentinel: s,
    }
}

#[cfg(test)]
#[path = "reverse_tests.rs"]
mod tests;
