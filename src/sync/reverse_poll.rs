//! The Sentinel poll of reverse sync (issue 12, part 2): lists the workspace's incidents changed
//! since the Sentinel checkpoint (less an overlap), follows the pages, hands each incident once
//! to [`ReverseApply`], and moves the checkpoint only past incidents that were applied, found
//! unchanged or unmanaged, or parked. An incident that failed transiently holds it.

use super::reverse::{ReverseApply, ReverseOutcome};
use crate::domain::records::ReverseFigures;
use crate::domain::*;
use crate::ports::*;
use crate::state::{IncidentState, Precondition, SentinelCheckpoint, StateStore, Versioned};
use futures::StreamExt;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

/// Tunables of the poll.
#[derive(Debug, Clone, PartialEq)]
pub struct ReverseOptions {
    /// How far back the first poll looks.
    pub lookback: Duration,
    /// Each poll starts this long before the checkpoint (ARM writes can become visible late).
    pub overlap: Duration,
}

impl Default for ReverseOptions {
    fn default() -> Self {
        Self {
            lookback: Duration::from_secs(24 * 3600),
            overlap: Duration::from_secs(5 * 60),
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
    /// Changed incidents not started because the deadline came (they hold the checkpoint).
    pub out_of_time: u64,
    /// True when every page was read and the checkpoint moved as far as it may.
    pub completed: bool,
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

/// One poll of the workspace's changed incidents.
pub struct ReversePoll<'a> {
    pub apply: ReverseApply<'a>,
    pub sentinel: &'a dyn SentinelApi,
    pub store: &'a dyn StateStore,
    pub opts: &'a ReverseOptions,
    /// Incidents applied at once (as forward sync's `sentinel_concurrency`).
    pub concurrency: usize,
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
        let now = OffsetDateTime::now_utc();
        let stored = match self.store.sentinel_checkpoint().await {
            Ok(c) => c,
            Err(e) => {
                r.errors.push(format!("Sentinel checkpoint: {e}"));
                return r;
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
            let done = self.page(fresh, deadline, &mut r).await;
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
            return r;
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
                return r;
            }
        }
        r.completed = earliest_failed.is_none();
        r
    }

    /// One page: its states in one read, the unchanged and unmanaged ones decided from them,
    /// the rest applied concurrently. Answers each incident with whether it no longer holds
    /// the checkpoint.
    async fn page(
        &self,
        page: Vec<SentinelIncident>,
        deadline: Instant,
        r: &mut ReverseReport,
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
            let tenant = match read.as_ref().and_then(Option::as_ref) {
                Some(v) => Some(v.value.tenant.clone()),
                None => self.apply.route(&s).map(|(t, _)| t),
            };
            if let Some(t) = tenant.filter(|t| self.apply.tenants.contains(t)) {
                owner.insert(s.name, t);
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
                    let ok = self.count(r, &s, owner.get(&s.name), Ok(o));
                    out.push((s.last_modified, ok));
                }
                None => work.push((s, read)),
            }
        }
        let applied: Vec<(SentinelIncident, Polled)> = futures::stream::iter(work)
            .map(|(s, read)| self.one(s, read, deadline))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for (s, p) in applied {
            let ok = match p {
                Polled::Outcome(o) => self.count(r, &s, owner.get(&s.name), o),
                Polled::OutOfTime => {
                    r.out_of_time += 1;
                    if let Some(t) = owner.get(&s.name) {
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
    fn one(
        &self,
        s: SentinelIncident,
        read: Option<Option<Versioned<IncidentState>>>,
        deadline: Instant,
    ) -> BoxFuture<'_, (SentinelIncident, Polled)> {
        Box::pin(async move {
            if Instant::now() >= deadline {
                return (s, Polled::OutOfTime);
            }
            let o = self.apply.apply_read(&s, read).await;
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
