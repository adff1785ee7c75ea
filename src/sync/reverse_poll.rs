//! The Sentinel poll of reverse sync (issue 12, part 2): lists the workspace's incidents changed
//! since the Sentinel checkpoint (less an overlap), follows the pages, hands each incident once
//! to [`ReverseApply`], and moves the checkpoint only past incidents that were applied, found
//! unchanged or unmanaged, or parked. An incident that failed transiently holds it.

use super::defender_delta::DefenderLists;
use super::reverse::{ReverseApply, ReverseOutcome};
use crate::domain::records::ReverseFigures;
use crate::domain::*;
use crate::ports::*;
use crate::state::{
    IncidentState, Precondition, RetryEntry, SentinelCheckpoint, StateStore, Versioned,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::Instrument;

/// Tunables of the poll.
#[derive(Debug, Clone, PartialEq)]
pub struct ReverseOptions {
    /// How far back the first poll looks.
    pub lookback: Duration,
    /// Each poll starts this long before the checkpoint (ARM writes can become visible late).
    pub overlap: Duration,
    /// First delay before a parked incident is retried (doubled per attempt), and its cap.
    pub park_backoff: Duration,
    pub park_backoff_max: Duration,
}

impl Default for ReverseOptions {
    fn default() -> Self {
        Self {
            lookback: Duration::from_secs(24 * 3600),
            overlap: Duration::from_secs(5 * 60),
            park_backoff: Duration::from_secs(60),
            park_backoff_max: Duration::from_secs(3600),
        }
    }
}

/// Figures of one poll.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReverseReport {
    /// Sentinel incidents listed (each once per poll).
    pub seen: u64,
    /// Incidents we do not manage (native, another connector's, a tenant not synced here).
    pub unmanaged: u64,
    /// Incidents already in agreement (our own writes seen again included).
    pub unchanged: u64,
    /// Defender PATCHes sent.
    pub defender_writes: u64,
    /// Comments posted to Defender (analyst comments and conflict notes).
    pub comments: u64,
    /// Conflicts decided by the policy.
    pub conflicts: u64,
    /// Incidents parked (unmappable, refused by Graph); they do not hold the checkpoint.
    pub parked: u64,
    /// Incidents that failed transiently; they hold the checkpoint.
    pub failed: u64,
    /// Throttled upstream calls (429) during the poll (not in any tenant's figure).
    pub throttled: u64,
    pub errors: Vec<String>,
    /// Pages of the incident list read.
    pub pages: u64,
    /// Defender delta lists made (one per tenant with a change to apply, again once a few
    /// seconds old; each may span several Graph pages).
    pub defender_lists: u64,
    /// Changed incidents not started because the deadline came (they hold the checkpoint).
    pub out_of_time: u64,
    /// True when every page was read and the checkpoint moved as far as it may.
    pub completed: bool,
    /// Parked incidents that left the retry set.
    pub cleared: u64,
    /// Each Defender tenant's share (incidents of ours only: not the unmanaged ones).
    pub per_tenant: BTreeMap<TenantId, ReverseFigures>,
}

/// Where the checkpoint goes after a poll, PURE: never backwards; to the latest modification
/// seen, unless an incident failed (then no further than the earliest failed one, which the
/// next poll reads again since the filter is `ge`).
pub fn advance_sentinel_checkpoint(
    current: Option<OffsetDateTime>,
    latest_done: Option<OffsetDateTime>,
    earliest_failed: Option<OffsetDateTime>,
) -> Option<OffsetDateTime> {
    let target = match (latest_done, earliest_failed) {
        (_, Some(f)) => Some(latest_done.map_or(f, |d| d.min(f))),
        (d, None) => d,
    };
    match (current, target) {
        (Some(c), Some(t)) => Some(c.max(t)),
        (c, t) => c.or(t),
    }
}

/// A page of the Sentinel poll done (for the `sync` subcommand's progress lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollProgress {
    /// Pages done in this poll, from 1.
    pub page: u64,
    /// Incidents of the page (each once per poll).
    pub incidents: usize,
    /// Incidents seen so far in this poll, and of those, the ones written to Defender.
    pub seen: u64,
    pub defender_writes: u64,
    /// True when another page follows.
    pub more: bool,
}

/// Receives [`PollProgress`] reports.
pub type PollProgressFn = std::sync::Arc<dyn Fn(&PollProgress) + Send + Sync>;

/// One poll of the workspace's changed incidents.
pub struct ReversePoll<'a> {
    pub apply: ReverseApply<'a>,
    pub sentinel: &'a dyn SentinelApi,
    pub store: &'a dyn StateStore,
    pub opts: &'a ReverseOptions,
    /// Incidents applied at once (as forward sync's `sentinel_concurrency`).
    pub concurrency: usize,
    /// Told after every page.
    pub progress: Option<PollProgressFn>,
    /// The forward pull's overlap: each tenant's Defender delta list starts this long before
    /// its forward watermark (see `defender_delta`).
    pub defender_overlap: Duration,
}

/// How one listed incident ended in a poll.
enum Polled {
    Outcome(Result<ReverseOutcome, super::reverse::ReverseError>),
    /// Not started: the deadline came first (holds the checkpoint).
    OutOfTime,
}

impl ReversePoll<'_> {
    /// Polls once, stopping before `deadline` (the checkpoint then moves only past what was
    /// done). Each page's states are read in one call; an incident that did not change since
    /// our last write or read of it (the pure [`super::reverse::triage`]) costs nothing more;
    /// the others are applied `concurrency` at a time.
    pub async fn run(&self, deadline: Instant) -> ReverseReport {
        let mut r = ReverseReport::default();
        let parked = self.parked(&mut r).await;
        let mut settle = Vec::new();
        // Defender is read once per tenant (a delta list), not once per incident.
        let lists = DefenderLists::new(
            self.apply.defender,
            self.store,
            self.apply.tenants,
            self.defender_overlap,
        );
        self.poll(deadline, &lists, &mut r, &mut settle).await;
        self.retry_due(&parked, deadline, &lists, &mut r, &mut settle)
            .await;
        r.defender_lists = lists.listed.load(std::sync::atomic::Ordering::Relaxed);
        self.settle(&parked, settle, &mut r).await;
        r
    }

    /// The reverse entries of every tenant's retry set.
    async fn parked(&self, r: &mut ReverseReport) -> HashMap<IncidentKey, RetryEntry> {
        let mut out = HashMap::new();
        for tenant in self.apply.tenants {
            match self.store.retry_set(tenant).await {
                Ok(entries) => out.extend(
                    entries
                        .into_iter()
                        .filter(|e| e.reverse)
                        .map(|e| ((tenant.clone(), e.incident_id.clone()), e)),
                ),
                Err(e) => push_error(r, format!("retry set of {tenant}: {e}")),
            }
        }
        out
    }

    /// Retries the parked incidents due that this poll did not list: each read from Sentinel
    /// and applied again.
    async fn retry_due(
        &self,
        parked: &HashMap<IncidentKey, RetryEntry>,
        deadline: Instant,
        lists: &DefenderLists<'_>,
        r: &mut ReverseReport,
        settle: &mut Vec<(IncidentKey, Settle)>,
    ) {
        let now = OffsetDateTime::now_utc();
        let done: HashSet<IncidentKey> = settle.iter().map(|(k, _)| k.clone()).collect();
        for (key, e) in parked {
            if e.next_attempt > now || done.contains(key) || Instant::now() >= deadline {
                continue;
            }
            let s = match self.sentinel.find_mirror(&key.0, &key.1).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    settle.push((key.clone(), Settle::Cleared));
                    continue;
                }
                Err(err) => {
                    push_error(r, format!("retrying {}: {err}", key.1));
                    continue;
                }
            };
            r.seen += 1;
            let outcome = self.apply.apply_listed(&s, None, Some(lists)).await;
            let parked = match &outcome {
                Ok(ReverseOutcome::Parked(reason)) => Some(reason.clone()),
                _ => None,
            };
            let ok = outcome.is_ok();
            self.count(r, &s, Some(&key.0), outcome);
            if ok {
                settle.push((key.clone(), parked.map_or(Settle::Cleared, Settle::Parked)));
            }
        }
    }

    /// Parks (with backoff) and clears the incidents this poll settled. An entry forward sync
    /// owns is left to it.
    async fn settle(
        &self,
        parked: &HashMap<IncidentKey, RetryEntry>,
        settle: Vec<(IncidentKey, Settle)>,
        r: &mut ReverseReport,
    ) {
        let now = OffsetDateTime::now_utc();
        for ((tenant, id), what) in settle {
            let prev = parked.get(&(tenant.clone(), id.clone()));
            let result = match what {
                Settle::Cleared if prev.is_some() => {
                    r.cleared += 1;
                    self.store.remove_retry(&tenant, &id).await
                }
                Settle::Cleared => Ok(()),
                Settle::Parked(reason) => {
                    let attempts = prev.map_or(1, |p| p.attempts.saturating_add(1));
                    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
                    let delay = self
                        .opts
                        .park_backoff
                        .saturating_mul(factor)
                        .min(self.opts.park_backoff_max);
                    let entry = RetryEntry {
                        incident_id: id.clone(),
                        last_update: now,
                        attempts,
                        last_error: format!("reverse sync: {reason}"),
                        next_attempt: now
                            + time::Duration::try_from(delay).unwrap_or(time::Duration::MAX),
                        reverse: true,
                    };
                    self.put_unless_forwards(&tenant, &entry).await
                }
            };
            if let Err(e) = result {
                push_error(r, format!("retry set, incident {id}: {e}"));
            }
        }
    }

    /// Puts a reverse entry unless forward sync parked the incident itself (its entry wins).
    async fn put_unless_forwards(
        &self,
        tenant: &TenantId,
        entry: &RetryEntry,
    ) -> Result<(), crate::state::StateError> {
        let forwards = self
            .store
            .retry_set(tenant)
            .await?
            .iter()
            .any(|e| e.incident_id == entry.incident_id && !e.reverse);
        if forwards {
            return Ok(());
        }
        self.store.put_retry(tenant, entry).await
    }

    /// The pages of changed incidents, and the checkpoint.
    async fn poll(
        &self,
        deadline: Instant,
        lists: &DefenderLists<'_>,
        r: &mut ReverseReport,
        settle: &mut Vec<(IncidentKey, Settle)>,
    ) {
        let now = OffsetDateTime::now_utc();
        let stored = match self.store.sentinel_checkpoint().await {
            Ok(c) => c,
            Err(e) => {
                r.errors.push(format!("Sentinel checkpoint: {e}"));
                return;
            }
        };
        let current = stored.as_ref().map(|c| c.value.watermark);
        let since = current.map_or(now - self.opts.lookback, |w| w - self.opts.overlap);
        let mut seen = HashSet::new();
        let (mut latest_done, mut earliest_failed) = (None::<OffsetDateTime>, None);
        let mut next: Option<String> = None;
        let mut complete = true;
        loop {
            if Instant::now() >= deadline {
                complete = false;
                break;
            }
            let page = match self
                .sentinel
                .list_modified_since(since, next.as_deref())
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    r.errors.push(format!("Sentinel incident list: {e}"));
                    complete = false;
                    break;
                }
            };
            r.pages += 1;
            let next_link = page.next_link;
            let fresh: Vec<SentinelIncident> = page
                .incidents
                .into_iter()
                .filter(|s| seen.insert(s.name))
                .collect();
            r.seen += fresh.len() as u64;
            let incidents = fresh.len();
            let done = self.page(fresh, deadline, lists, r, settle).await;
            if let Some(progress) = &self.progress {
                progress(&PollProgress {
                    page: r.pages,
                    incidents,
                    seen: r.seen,
                    defender_writes: r.defender_writes,
                    more: next_link.is_some(),
                });
            }
            for (modified, ok) in done {
                let at = modified.unwrap_or(now);
                let slot = if ok {
                    &mut latest_done
                } else {
                    complete &= r.out_of_time == 0;
                    &mut earliest_failed
                };
                *slot = Some(match (ok, *slot) {
                    (true, Some(t)) => t.max(at),
                    (false, Some(t)) => t.min(at),
                    (_, None) => at,
                });
            }
            if r.out_of_time > 0 {
                complete = false;
            }
            match next_link {
                Some(l) if complete => next = Some(l),
                _ => break,
            }
        }
        if !complete {
            // Pages not read may hold older changes: hold the checkpoint where it is.
            r.completed = false;
            return;
        }
        let to = advance_sentinel_checkpoint(current, latest_done, earliest_failed);
        if let Some(w) = to.filter(|w| Some(*w) != current) {
            let pre = stored.map_or(Precondition::Absent, |c| Precondition::Matches(c.etag));
            if let Err(e) = self
                .store
                .put_sentinel_checkpoint(&SentinelCheckpoint { watermark: w }, pre)
                .await
            {
                r.errors.push(format!("Sentinel checkpoint: {e}"));
                return;
            }
        }
        r.completed = earliest_failed.is_none();
    }

    /// One page: its states in one read, the unchanged and unmanaged ones decided from them,
    /// the rest applied concurrently. Answers each incident with whether it no longer holds
    /// the checkpoint.
    async fn page(
        &self,
        page: Vec<SentinelIncident>,
        deadline: Instant,
        lists: &DefenderLists<'_>,
        r: &mut ReverseReport,
        settle: &mut Vec<(IncidentKey, Settle)>,
    ) -> Vec<(Option<OffsetDateTime>, bool)> {
        let names: Vec<SentinelIncidentName> = page.iter().map(|s| s.name).collect();
        let mut states = if names.is_empty() {
            Some(Default::default())
        } else {
            match self.store.incidents(&names).await {
                Ok(m) => Some(m),
                Err(e) => {
                    push_error(r, format!("incident states: {e}"));
                    None
                }
            }
        };
        let mut work = Vec::new();
        let mut out = Vec::with_capacity(page.len());
        // Whose incident each one is (for the per-tenant figures): ours only.
        let mut owner = HashMap::new();
        for s in page {
            let read = states.as_mut().map(|m| m.remove(&s.name));
            let key = match read.as_ref().and_then(Option::as_ref) {
                Some(v) => Some((v.value.tenant.clone(), v.value.defender_id.clone())),
                None => self.apply.route(&s),
            };
            if let Some(k) = key.filter(|(t, _)| self.apply.tenants.contains(t)) {
                owner.insert(s.name, k);
            }
            // No state of its own but a link to one of our tenants' incidents: applied (the
            // apply finds that incident's state).
            let decided = read.as_ref().and_then(|v| {
                let routed = v.is_none() && self.apply.route(&s).is_some();
                let triage =
                    super::reverse::triage(v.as_ref().map(|v| &v.value), &s, self.apply.tenants);
                triage.filter(|_| !routed)
            });
            match decided {
                Some(o) => {
                    note(settle, owner.get(&s.name), &Ok(o.clone()));
                    let ok = self.count(r, &s, owner.get(&s.name).map(|k| &k.0), Ok(o));
                    out.push((s.last_modified, ok));
                }
                None => work.push((s, read)),
            }
        }
        let applied: Vec<(SentinelIncident, Polled)> = futures::stream::iter(work)
            .map(|(s, read)| self.one(s, read, deadline, lists))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for (s, p) in applied {
            let ok = match p {
                Polled::Outcome(o) => {
                    note(settle, owner.get(&s.name), &o);
                    self.count(r, &s, owner.get(&s.name).map(|k| &k.0), o)
                }
                Polled::OutOfTime => {
                    r.out_of_time += 1;
                    if let Some((t, _)) = owner.get(&s.name) {
                        r.per_tenant.entry(t.clone()).or_default().seen += 1;
                    }
                    false
                }
            };
            out.push((s.last_modified, ok));
        }
        out
    }

    /// Applies one changed incident unless the deadline came first.
    fn one<'b>(
        &'b self,
        s: SentinelIncident,
        read: Option<Option<Versioned<IncidentState>>>,
        deadline: Instant,
        lists: &'b DefenderLists<'_>,
    ) -> BoxFuture<'b, (SentinelIncident, Polled)> {
        Box::pin(async move {
            if Instant::now() >= deadline {
                return (s, Polled::OutOfTime);
            }
            let span = tracing::info_span!("reverse_incident", sentinel_incident = %s.name);
            let o = self
                .apply
                .apply_listed(&s, read, Some(lists))
                .instrument(span)
                .await;
            (s, Polled::Outcome(o))
        })
    }

    /// Counts one incident's outcome; true when it no longer holds the checkpoint.
    fn count(
        &self,
        r: &mut ReverseReport,
        s: &SentinelIncident,
        tenant: Option<&TenantId>,
        outcome: Result<ReverseOutcome, super::reverse::ReverseError>,
    ) -> bool {
        let mut t = ReverseFigures {
            seen: 1,
            ..ReverseFigures::default()
        };
        let done = match outcome {
            Ok(ReverseOutcome::Unmanaged(_)) => {
                r.unmanaged += 1;
                // Not ours: in no tenant's figures.
                return true;
            }
            Ok(ReverseOutcome::Unchanged) | Ok(ReverseOutcome::DefenderGone) => {
                r.unchanged += 1;
                true
            }
            Ok(ReverseOutcome::Applied(a)) => {
                t.defender_writes = u64::from(a.patched);
                t.comments = a.comments as u64;
                t.conflicts = a.conflicts as u64;
                r.defender_writes += t.defender_writes;
                r.comments += t.comments;
                r.conflicts += t.conflicts;
                true
            }
            Ok(ReverseOutcome::Parked(reason)) => {
                r.parked += 1;
                t.parked = 1;
                push_error(r, format!("{}: parked: {reason}", s.name));
                true
            }
            Err(e) => {
                r.failed += 1;
                t.failed = 1;
                push_error(r, format!("{}: {e}", s.name));
                false
            }
        };
        if let Some(tenant) = tenant {
            let f = r.per_tenant.entry(tenant.clone()).or_default();
            f.seen += t.seen;
            f.defender_writes += t.defender_writes;
            f.comments += t.comments;
            f.conflicts += t.conflicts;
            f.parked += t.parked;
            f.failed += t.failed;
        }
        done
    }
}

/// A Defender incident of a tenant (the retry set's key).
type IncidentKey = (TenantId, DefenderIncidentId);

/// What the retry set learns from an incident of ours this poll.
enum Settle {
    /// Parked (with its reason): into the retry set, with backoff.
    Parked(String),
    /// Done (applied, unchanged, gone, no longer ours): out of the retry set.
    Cleared,
}

/// Notes an outcome for the retry set (a transient failure leaves it as it is).
fn note(
    settle: &mut Vec<(IncidentKey, Settle)>,
    key: Option<&IncidentKey>,
    outcome: &Result<ReverseOutcome, super::reverse::ReverseError>,
) {
    let Some(key) = key else { return };
    match outcome {
        Ok(ReverseOutcome::Parked(reason)) => {
            settle.push((key.clone(), Settle::Parked(reason.clone())))
        }
        Ok(_) => settle.push((key.clone(), Settle::Cleared)),
        Err(_) => {}
    }
}

fn push_error(r: &mut ReverseReport, e: String) {
    if r.errors.len() < 20 {
        r.errors.push(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dss_test_support::T0;

    fn at(min: i64) -> OffsetDateTime {
        T0 + time::Duration::minutes(min)
    }

    #[test]
    fn the_checkpoint_moves_to_the_latest_done_and_never_back() {
        assert_eq!(
            advance_sentinel_checkpoint(None, Some(at(5)), None),
            Some(at(5))
        );
        assert_eq!(
            advance_sentinel_checkpoint(Some(at(9)), Some(at(5)), None),
            Some(at(9))
        );
        assert_eq!(
            advance_sentinel_checkpoint(Some(at(1)), None, None),
            Some(at(1))
        );
        assert_eq!(advance_sentinel_checkpoint(None, None, None), None);
    }

    #[test]
    fn a_failed_incident_holds_the_checkpoint_at_itself() {
        assert_eq!(
            advance_sentinel_checkpoint(Some(at(1)), Some(at(9)), Some(at(4))),
            Some(at(4))
        );
        assert_eq!(
            advance_sentinel_checkpoint(Some(at(6)), Some(at(9)), Some(at(4))),
            Some(at(6)),
            "never backwards"
        );
        assert_eq!(
            advance_sentinel_checkpoint(None, None, Some(at(4))),
            Some(at(4))
        );
    }
}
