//! Reverse sync of ONE incident (issue 12, part 1): a Sentinel incident an analyst changed
//! reaches its Defender incident. Reads the current Defender incident (a GET; on the timer path
//! the tenant's delta list where it tells: `defender_delta`), runs the same merge as forward
//! sync, PATCHes only the properties that change, mirrors new analyst comments into Defender
//! (marked, at most once), notes overridden Defender changes, and writes the state with
//! `If-Match` (a conflict starts the incident over).
//!
//! The merge base advances only for what both sides now agree on: a field with a Defender write
//! advances after the PATCH succeeded; a field the merge wants written to Sentinel (Defender's
//! change wins) keeps its old base, so forward sync, which owns Sentinel writes, still sees it.
//!
//! The poll that feeds this (`$filter` on `lastModifiedTimeUtc`, the Sentinel checkpoint) is not
//! built yet; the webhook of the next issue will call the same path.

use super::defender_delta::{DefenderNow, DeltaSource};
use super::fingerprint::{SENTINEL_MARKER, is_mirrored};
use super::merge::{self, Conflict, MergeBase, MergeInput, MergeOutcome, MergePolicy, Side};
use crate::domain::*;
use crate::ports::*;
use crate::state::{IncidentState, Outcome, Precondition, StateError, StateStore, Versioned};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// How the reason of an incident reverse sync parked starts (forward sync keeps such a park:
/// only reverse sync clears it).
pub const PARK_PREFIX: &str = "reverse sync: ";

/// True when the state shows the incident parked by reverse sync, PURE.
pub fn parked_by_reverse(st: &IncidentState) -> bool {
    st.last_outcome == Some(Outcome::Parked)
        && st
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with(PARK_PREFIX))
}

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

/// What reverse sync can tell about a Sentinel incident from its state alone, PURE: not ours
/// (no state, a tenant not synced here, not synced yet), or nothing changed since our last
/// write or read of it (its synced fields equal the state's snapshot and it holds the comments
/// we know of: our own writes seen again, an analyst's edit undone). `None`: it must be applied.
/// This is what keeps an unchanged incident at zero calls beyond the list page.
pub fn triage(
    st: Option<&IncidentState>,
    s: &SentinelIncident,
    tenants: &[TenantId],
) -> Option<ReverseOutcome> {
    let Some(st) = st else {
        return Some(ReverseOutcome::Unmanaged(Unmanaged::NoState));
    };
    if !tenants.contains(&st.tenant) {
        return Some(ReverseOutcome::Unmanaged(Unmanaged::ForeignTenant));
    }
    if st.defender_base.is_none() || st.sentinel_base.is_none() {
        return Some(ReverseOutcome::Unmanaged(Unmanaged::NotYetSynced));
    }
    unchanged_since_last_sync(st, s).then_some(ReverseOutcome::Unchanged)
}

/// True when the listed Sentinel incident `s` holds what the state last saw, PURE: the same
/// synced fields as the snapshot (not the same etag: Sentinel moves it on our comment PUTs
/// too), no Sentinel change still pending for Defender (the merge base's Sentinel side is what
/// Sentinel holds: forward sync keeps the old base of a field only Defender can take), and
/// exactly the comments we know of. Unknown counts and parked incidents are never
/// "unchanged".
pub fn unchanged_since_last_sync(st: &IncidentState, s: &SentinelIncident) -> bool {
    let Some(snap) = st.snapshot() else {
        return false;
    };
    let fields = s.fields();
    st.sentinel_name == s.name
        && st.last_outcome != Some(Outcome::Parked)
        && s.comments_count.is_some()
        && s.comments_count == st.sentinel_comments
        && snap.fields == fields
        && st.sentinel_base.as_ref() == Some(&fields)
}

/// The Defender incident a Sentinel incident without a state of its own may belong to, PURE:
/// the portal link in its description (`…/incidents/{id}?tid={tenant}`), only for a tenant
/// this deployment syncs and only when it names another incident than `s` (one the service
/// created from our alerts, under its own name). The state found there must name the same
/// tenant and id, so a link can never route to the wrong tenant.
pub fn routed_by_link(
    s: &SentinelIncident,
    tenants: &[TenantId],
) -> Option<(TenantId, DefenderIncidentId)> {
    let (tenant, id) = super::plan::parse_portal_link(s.description.as_deref()?)?;
    let derived = SentinelIncidentName::for_defender(&tenant, &id);
    (tenants.contains(&tenant) && derived != s.name).then_some((tenant, id))
}

impl ReverseApply<'_> {
    /// Applies the Sentinel incident `s` (as just read) to its Defender incident.
    pub async fn apply(&self, s: &SentinelIncident) -> Result<ReverseOutcome, ReverseError> {
        self.apply_read(s, None).await
    }

    /// As [`ReverseApply::apply`], with the incident's state as already read (`Some(None)`: it
    /// has none); a state conflict reads it again.
    pub async fn apply_read(
        &self,
        s: &SentinelIncident,
        read: Option<Option<Versioned<IncidentState>>>,
    ) -> Result<ReverseOutcome, ReverseError> {
        self.apply_listed(s, read, None).await
    }

    /// As [`ReverseApply::apply_read`], reading Defender from the tenant's delta list where it
    /// tells (the timer path: see `defender_delta`); a GET where it does not or without one.
    pub async fn apply_listed(
        &self,
        s: &SentinelIncident,
        mut read: Option<Option<Versioned<IncidentState>>>,
        deltas: Option<&dyn DeltaSource>,
    ) -> Result<ReverseOutcome, ReverseError> {
        let mut last = StateError::Conflict;
        let mut started = false;
        for _ in 0..ATTEMPTS {
            let v = match read.take() {
                Some(Some(v)) => Some(v),
                Some(None) => self.routed(s).await?,
                None => match self.store.incident(&s.name).await? {
                    Some(v) => Some(v),
                    None => self.routed(s).await?,
                },
            };
            // An attempt after a state conflict (another writer, maybe a Defender write of
            // ours) reads Defender again rather than trust a listing made before it.
            let deltas = deltas.filter(|_| !started);
            started = true;
            match self.attempt(s, v, deltas).await {
                Err(ReverseError::State(StateError::Conflict)) => last = StateError::Conflict,
                other => return other,
            }
        }
        Err(last.into())
    }

    /// Where the service creates incidents (the unified portal), the Defender incident an
    /// incident without a state of its own links to. Where the sync creates them, every
    /// incident of ours has its own state: one without is never routed (a native incident
    /// quoting a Defender link stays untouched).
    pub fn route(&self, s: &SentinelIncident) -> Option<(TenantId, DefenderIncidentId)> {
        (self.sentinel.provisioning() == Provisioning::ByService)
            .then(|| routed_by_link(s, self.tenants))
            .flatten()
    }

    /// The state of the Defender incident `s` links to (see [`ReverseApply::route`]), when it
    /// is exactly that tenant's incident.
    async fn routed(
        &self,
        s: &SentinelIncident,
    ) -> Result<Option<Versioned<IncidentState>>, ReverseError> {
        let Some((tenant, id)) = self.route(s) else {
            return Ok(None);
        };
        let name = SentinelIncidentName::for_defender(&tenant, &id);
        let v = self.store.incident(&name).await?;
        Ok(v.filter(|v| v.value.tenant == tenant && v.value.defender_id == id))
    }

    /// The Defender incident to merge against: as the tenant's delta list holds it, or as the
    /// state records it when the list shows Defender unchanged since (see
    /// [`super::defender_delta::DefenderDelta::current`]); otherwise (no list, the list cannot
    /// tell) read with a GET. Defender's comments are only needed to check a claim left in the
    /// state (a crash between a comment POST and the state write): a state holding one reads
    /// the incident, since a listing may predate the POST.
    async fn defender_now(
        &self,
        st: &IncidentState,
        deltas: Option<&dyn DeltaSource>,
    ) -> Result<Option<DefenderIncident>, ReverseError> {
        // A claim is checked against Defender's comments as they are now: a listing made
        // before another instance's POST would not show it (converge seed 3005).
        let deltas = deltas.filter(|_| !holds_claims(st));
        if let Some(delta) = match deltas {
            Some(src) => src.delta(&st.tenant).await,
            None => None,
        } {
            match delta.current(st) {
                DefenderNow::Listed(d) | DefenderNow::AsStored(d) => return Ok(Some(d)),
                DefenderNow::Unknown => {}
            }
        }
        Ok(self
            .defender
            .get_incident(&st.tenant, &st.defender_id)
            .await?)
    }

    async fn attempt(
        &self,
        s: &SentinelIncident,
        v: Option<Versioned<IncidentState>>,
        deltas: Option<&dyn DeltaSource>,
    ) -> Result<ReverseOutcome, ReverseError> {
        if let Some(out) = triage(v.as_ref().map(|v| &v.value), s, self.tenants) {
            return Ok(out);
        }
        let Some(v) = v else {
            return Ok(ReverseOutcome::Unmanaged(Unmanaged::NoState));
        };
        let (mut st, etag) = (v.value, v.etag);
        let (Some(bd), Some(bs)) = (st.defender_base.clone(), st.sentinel_base.clone()) else {
            return Ok(ReverseOutcome::Unmanaged(Unmanaged::NotYetSynced));
        };
        let old = MergeBase {
            defender: bd,
            sentinel: bs,
        };
        let Some(d) = self.defender_now(&st, deltas).await? else {
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
        if let Some(reason) = owner_defender_cannot_take(&outcome, s) {
            return self.park(st, etag, reason).await;
        }
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
        let mut etag = etag;
        // Held to the end of this attempt, past the state write that records the posted
        // comments: until then a claim of this process is a POST under way.
        let mut posting = None;
        let (posted, count) = self
            .mirror_comments(s, &mut st, &after, &mut etag, &mut posting)
            .await?;
        applied.comments += posted;
        applied.comments += self.conflict_notes(&outcome, &mut st, &after).await?;

        let base = advanced_base(&old, &outcome, &after.fields(), &sf);
        let nothing = !applied.patched && applied.comments == 0 && base == old;
        // Comments found already posted (a crash before the state write) are only recorded.
        let recorded = st.mirrored_comments.len() != recorded;
        // Forward sync had seen Defender up to our read; `d` may hold more than the merged fields
        // (a new comment or alert): then forward sync must still take it (issue 16, converge).
        let forward_saw_d = st.defender_last_update == Some(d.last_update);
        if outcome.sentinel_writes.is_empty() && applied.patched && forward_saw_d {
            // Our own PATCH, seen by the next Graph pull, is then no change.
            st.defender_last_update = Some(after.last_update);
        }
        st.defender_base = Some(base.defender);
        st.sentinel_base = Some(base.sentinel);
        // The incident as just read is Sentinel's truth at its etag: the next poll compares
        // with it, and forward sync can update from it without a read.
        // (Only for the incident the state is named after: one reached by its link is another.)
        let own = st.sentinel_name == s.name;
        let seen_moved = own
            && (st.sentinel_etag() != s.etag.as_deref()
                || st.snapshot().is_none()
                || st.sentinel_comments != count);
        if own {
            st.record_sentinel(s.etag.clone(), super::snapshot::take(s));
            st.record_platform(s.platform_id.as_ref());
            st.sentinel_comments = count;
        }
        if nothing && !recorded && st.last_outcome != Some(Outcome::Parked) {
            if seen_moved {
                self.store
                    .put_incident(&st, Precondition::Matches(etag))
                    .await?;
            }
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
        st.last_error = Some(format!("{PARK_PREFIX}{reason}"));
        st.updated_at = Some(OffsetDateTime::now_utc());
        self.store
            .put_incident(&st, Precondition::Matches(etag))
            .await?;
        Ok(ReverseOutcome::Parked(reason))
    }

    /// Posts each analyst comment of `s` not yet in Defender, at most once, even across
    /// instances: the comments to post are first claimed in the state with `If-Match` (a
    /// second instance loses that write and starts over, then finds them claimed), and only
    /// then posted. A comment already carrying its reference in Defender (a crash after the
    /// POST, before the state write) is only recorded; a claim still fresh whose comment is
    /// not in Defender yet is another instance's POST under way: the incident is held
    /// (transient) and retried; a claim older than [`CLAIM_LEASE`] died with its instance and
    /// is taken over, and so is one made by another process of this instance (the host runs one
    /// handler process per instance: see [`ClaimHolder`]) or by this process with no task
    /// posting it, once its POST has settled ([`DefenderApi::write_settle`]: a POST cut off
    /// without an answer, by the timeout or a kill, may still be applied). A comment whose
    /// claim is taken over is looked for in Defender, read again, before it is posted.
    async fn mirror_comments(
        &self,
        s: &SentinelIncident,
        st: &mut IncidentState,
        d: &DefenderIncident,
        etag: &mut crate::state::ETag,
        posting: &mut Option<Posting>,
    ) -> Result<(usize, Option<u32>), ReverseError> {
        // An incident Sentinel says holds no comment is not listed.
        let comments = match s.comments_count {
            Some(0) => Vec::new(),
            _ => self.sentinel.list_comments(&s.name).await?,
        };
        let count = u32::try_from(comments.len()).ok();
        let now = OffsetDateTime::now_utc();
        let settle = settle_of(self.defender.write_settle());
        let mut to_post = Vec::new();
        let mut taken_over = false;
        for c in comments.iter().filter(|c| !is_mirrored(&c.message)) {
            let fp = sentinel_comment_fingerprint(c);
            let claim = claimed(st, &fp);
            if claim.is_none() && st.mirrored_comments.contains(&fp) {
                continue;
            }
            if carries_ref(d, &fp) {
                release_claim(st, &fp);
                st.mirrored_comments.insert(fp);
                continue;
            }
            let posting_here = Posting::in_flight(&s.name, &fp);
            if claim.as_ref().is_some_and(|c| {
                claim_holds(c, now, ClaimHolder::this_process(), posting_here, settle)
            }) {
                return Err(StateError::Transient(format!(
                    "comment {fp} is being posted to Defender (by another instance, or a POST \
                     cut off here may still land)"
                ))
                .into());
            }
            taken_over |= claim.is_some();
            to_post.push((c, fp));
        }
        if taken_over {
            // A claim's POST may have been applied after `d` was read (issue 16, converge
            // finding 7): Defender as it is now, read after the claim settled, decides.
            if let Some(now_d) = self
                .defender
                .get_incident(&st.tenant, &st.defender_id)
                .await?
            {
                to_post.retain(|(_, fp)| {
                    let landed = carries_ref(&now_d, fp);
                    if landed {
                        release_claim(st, fp);
                        st.mirrored_comments.insert(fp.clone());
                    }
                    !landed
                });
            }
        }
        if to_post.is_empty() {
            return Ok((0, count));
        }
        for (_, fp) in &to_post {
            release_claim(st, fp);
            st.mirrored_comments.insert(claim_key(fp, now));
            st.mirrored_comments.insert(fp.clone());
        }
        // Marked in flight before the claim is written: a task of this process that then finds
        // the claim knows it is being posted (and one that finds it unmarked, that it is not).
        *posting = Some(Posting::start(
            &s.name,
            to_post.iter().map(|(_, fp)| fp.as_str()),
        ));
        *etag = self
            .store
            .put_incident(st, Precondition::Matches(etag.clone()))
            .await?;
        let mut posted = 0;
        for (c, fp) in to_post {
            self.defender
                .add_comment(&st.tenant, &st.defender_id, &defender_message(c, &fp))
                .await?;
            release_claim(st, &fp);
            posted += 1;
        }
        Ok((posted, count))
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

/// Why the Sentinel owner cannot go to Defender, PURE: Defender's `assignedTo` takes a user
/// principal name; a Sentinel owner known only by object id (a group, a user Sentinel shows
/// without a UPN or email) would reach Defender as "unassigned". Such an incident is parked
/// with this reason instead.
pub fn owner_defender_cannot_take(outcome: &MergeOutcome, s: &SentinelIncident) -> Option<String> {
    let unassigns = matches!(outcome.defender_writes.assigned_to, Some(None));
    let owned = s.owner.object_id.is_some() && s.owner.upn_or_email().is_none();
    (unassigns && owned).then(|| {
        let who = s
            .owner
            .assigned_to
            .clone()
            .or_else(|| s.owner.object_id.map(|o| o.to_string()))
            .unwrap_or_default();
        format!("the Sentinel owner '{who}' has no user principal name Defender can assign")
    })
}

/// How long a claim to post a comment holds before another instance may take it over (a POST
/// takes seconds; a claim this old died with its instance).
pub const CLAIM_LEASE: time::Duration = time::Duration::minutes(2);
const CLAIM_PREFIX: &str = "posting:";

/// Who holds a claim: the host instance and this handler process. The Functions host runs one
/// handler process per instance (and starts a new one after a kill), so a claim of this
/// instance made by another process died with that process and is taken over at once instead
/// of after [`CLAIM_LEASE`] (the convergence suite's seed 3007: a handler SIGKILLed between
/// the claim and the POST held the comment for the whole lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHolder {
    instance: String,
    process: String,
}

impl ClaimHolder {
    /// This process: the instance from `WEBSITE_INSTANCE_ID` (set by the Functions platform on
    /// each instance; host metadata, not a setting) or the host name, and a random id drawn
    /// once per process.
    pub fn this_process() -> &'static ClaimHolder {
        static HOLDER: std::sync::OnceLock<ClaimHolder> = std::sync::OnceLock::new();
        HOLDER.get_or_init(|| {
            let instance = std::env::var("WEBSITE_INSTANCE_ID")
                .ok()
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .unwrap_or_default();
            ClaimHolder::new(&instance, &uuid::Uuid::new_v4().simple().to_string())
        })
    }

    /// A holder from its parts, kept to the characters a state key can carry.
    pub fn new(instance: &str, process: &str) -> Self {
        let clean = |t: &str| -> String {
            t.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
                .take(64)
                .collect()
        };
        Self {
            instance: clean(instance),
            process: clean(process),
        }
    }

    /// Whether a claim by `self` died with its process, as `me` sees it: same instance,
    /// another process.
    fn died_on(&self, me: &ClaimHolder) -> bool {
        !self.instance.is_empty() && self.instance == me.instance && self.process != me.process
    }
}

/// A recorded claim: when, and by whom (`None` for a claim written before holders were kept).
#[derive(Debug)]
struct Claim {
    at: OffsetDateTime,
    by: Option<ClaimHolder>,
}

/// The state key claiming comment `fp` for posting since `at`, by this process.
fn claim_key(fp: &str, at: OffsetDateTime) -> String {
    claim_key_by(fp, at, ClaimHolder::this_process())
}

fn claim_key_by(fp: &str, at: OffsetDateTime, by: &ClaimHolder) -> String {
    format!(
        "{CLAIM_PREFIX}{fp}@{}@{}/{}",
        at.unix_timestamp(),
        by.instance,
        by.process
    )
}

/// The latest claim on comment `fp` for posting, if one is recorded.
fn claimed(st: &IncidentState, fp: &str) -> Option<Claim> {
    let prefix = format!("{CLAIM_PREFIX}{fp}@");
    st.mirrored_comments
        .iter()
        .filter_map(|k| {
            let rest = k.strip_prefix(&prefix)?;
            let (at, by) = match rest.split_once('@') {
                Some((at, by)) => (at, by.split_once('/').map(|(i, p)| ClaimHolder::new(i, p))),
                None => (rest, None),
            };
            let at = OffsetDateTime::from_unix_timestamp(at.parse::<i64>().ok()?).ok()?;
            Some(Claim { at, by })
        })
        .max_by_key(|c| c.at)
}

/// The settle time of claims from the port's ([`DefenderApi::write_settle`]).
fn settle_of(d: std::time::Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(CLAIM_LEASE)
}

/// Whether a claim still holds at `now` for the process `me`, PURE: younger than the lease,
/// and, when made by `me`, still being posted by a task of `me` (`posting_here`) or not yet
/// settled, and when made by another process of `me`'s instance (gone: one handler process
/// per instance), not yet settled. Not settled: younger than `settle`, the time a POST that
/// ended without an answer (cut off by the call timeout, a reset, a kill) may still be applied
/// by the service (issue 16, converge finding 7: taken over at once, such a POST landed after
/// the next attempt had read Defender, and the comment was posted twice). Claims keep whole
/// seconds (the time rounded down), so a claim may be up to a second younger than it reads:
/// that second is added.
fn claim_holds(
    c: &Claim,
    now: OffsetDateTime,
    me: &ClaimHolder,
    posting_here: bool,
    settle: time::Duration,
) -> bool {
    let age = now - c.at;
    let unsettled = settle.is_positive() && age < settle + time::Duration::SECOND;
    age < CLAIM_LEASE
        && match &c.by {
            Some(by) if by == me => posting_here || unsettled,
            Some(by) if by.died_on(me) => unsettled,
            Some(_) | None => true,
        }
}

/// The comments this process is posting right now (claimed, POST not yet answered), by
/// incident and fingerprint; a guard removes its entries when the posting ends, however it
/// ends.
struct Posting(Vec<String>);

impl Posting {
    fn set() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
        static SET: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
            std::sync::OnceLock::new();
        SET.get_or_init(Default::default)
    }

    fn key(name: &SentinelIncidentName, fp: &str) -> String {
        format!("{name}/{fp}")
    }

    fn in_flight(name: &SentinelIncidentName, fp: &str) -> bool {
        Self::set()
            .lock()
            .map(|s| s.contains(&Self::key(name, fp)))
            // A poisoned set: assume in flight (hold, never post twice).
            .unwrap_or(true)
    }

    fn start<'a>(name: &SentinelIncidentName, fps: impl Iterator<Item = &'a str>) -> Posting {
        let keys: Vec<String> = fps.map(|fp| Self::key(name, fp)).collect();
        if let Ok(mut s) = Self::set().lock() {
            s.extend(keys.iter().cloned());
        }
        Posting(keys)
    }
}

impl Drop for Posting {
    fn drop(&mut self) {
        if let Ok(mut s) = Self::set().lock() {
            for k in &self.0 {
                s.remove(k);
            }
        }
    }
}

/// True when the state holds a claim to post a comment (its POST may have landed unrecorded).
fn holds_claims(st: &IncidentState) -> bool {
    st.mirrored_comments
        .iter()
        .any(|k| k.starts_with(CLAIM_PREFIX))
}

/// Drops every claim on comment `fp`.
fn release_claim(st: &mut IncidentState, fp: &str) {
    let prefix = format!("{CLAIM_PREFIX}{fp}@");
    st.mirrored_comments.retain(|k| !k.starts_with(&prefix));
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
