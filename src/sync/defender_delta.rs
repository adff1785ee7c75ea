//! What the timer path's reverse sync reads of Defender (issue 12, performance): instead of one
//! Graph GET per Sentinel-changed incident, ONE list per tenant of the Defender incidents
//! changed since the forward checkpoint's lower bound (the forward pull's own `$filter`, with
//! its overlap), listed just before the poll applies that tenant's first change, and listed
//! again once it is a few seconds old.
//!
//! Why that is as good as the GET. Forward sync runs before the poll in the same cycle and its
//! checkpoint passes a Defender incident only once it is delivered (its state then holds
//! `defender_last_update` and, as `defender_base`, exactly Defender's fields at that time: the
//! merge's Defender base is always the Defender value it merged) or parked (in the retry set).
//! So an incident the list does not hold was last changed before the list's lower bound, and its
//! state's Defender side is current unless forward sync parked it; an incident changed since
//! (after the forward pull too) is in the list, and the listed incident is used exactly as the
//! GET's answer was. Whenever the list cannot tell (no checkpoint, a page failed, a window that
//! cannot be split, a forward park, a state newer than the list's bound), the GET stays.
//!
//! What remains: a Defender change made between the list and the PATCH, to the very field the
//! PATCH writes, is overwritten unseen; the GET had the same window, now it is bounded by
//! [`RELIST_AFTER`] plus one incident's apply instead of milliseconds.

use crate::domain::*;
use crate::ports::*;
use crate::state::{IncidentState, Outcome, StateStore};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

/// A tenant's list is listed again once it is this old when an incident needs it.
pub const RELIST_AFTER: Duration = Duration::from_secs(5);

/// Graph serves a listing up to `$skip` 500: a window holding more is listed in halves.
const WINDOW_MAX: usize = 500;

/// A window narrower than this is not split further (the list is then incomplete).
const SPLIT_MIN: time::Duration = time::Duration::seconds(1);

/// One tenant's Defender incidents changed since `since`, as listed at `listed_at`.
#[derive(Debug, Clone)]
pub struct DefenderDelta {
    pub tenant: TenantId,
    /// The list's lower bound: the forward checkpoint's watermark less the overlap.
    pub since: OffsetDateTime,
    /// Every incident with `lastUpdateDateTime ge since`, by id.
    pub listed: HashMap<DefenderIncidentId, DefenderIncident>,
    /// Incidents forward sync parked (their state may lag behind Defender).
    pub forward_parked: HashSet<DefenderIncidentId>,
    pub listed_at: Instant,
}

/// What a delta list says of an incident's Defender side.
#[derive(Debug, Clone, PartialEq)]
pub enum DefenderNow {
    /// Changed since the bound: the incident as listed (what a GET would have answered).
    Listed(DefenderIncident),
    /// Not changed since the bound and the state is current: Defender holds the state's
    /// `defender_base` at `defender_last_update` (no comments known).
    AsStored(DefenderIncident),
    /// The list cannot tell: read the incident.
    Unknown,
}

impl DefenderDelta {
    /// What this list says of the Defender incident of `st`, PURE. `AsStored` only when the
    /// state is forward sync's delivered record of a version older than the bound: a state
    /// synced at or after the bound should have been listed (a list that missed it is not
    /// trusted), a forward park (retry set or state) may lag behind Defender. A listing older
    /// than the state (written since the list) is not used either.
    pub fn current(&self, st: &IncidentState) -> DefenderNow {
        if st.tenant != self.tenant {
            return DefenderNow::Unknown;
        }
        if let Some(d) = self.listed.get(&st.defender_id) {
            // A state newer than the listing (the webhook wrote since the list): read again.
            if st.defender_last_update.is_some_and(|at| at > d.last_update) {
                return DefenderNow::Unknown;
            }
            return DefenderNow::Listed(d.clone());
        }
        let forward_park = (st.last_outcome == Some(Outcome::Parked)
            && !super::reverse::parked_by_reverse(st))
            || self.forward_parked.contains(&st.defender_id);
        match (&st.defender_base, st.defender_last_update) {
            (Some(base), Some(at)) if at < self.since && !forward_park => {
                DefenderNow::AsStored(stored_incident(st, base, at))
            }
            _ => DefenderNow::Unknown,
        }
    }
}

/// The Defender incident as the state records it, PURE: its synced fields and modification
/// time; nothing else is known (no comments, no alerts, no title).
pub fn stored_incident(
    st: &IncidentState,
    f: &DefenderFields,
    at: OffsetDateTime,
) -> DefenderIncident {
    DefenderIncident {
        tenant: st.tenant.clone(),
        id: st.defender_id.clone(),
        display_name: String::new(),
        description: None,
        summary: None,
        status: f.status.clone(),
        severity: f.severity.clone(),
        classification: f.classification.clone(),
        determination: f.determination.clone(),
        resolving_comment: f.resolving_comment.clone(),
        assigned_to: f.assigned_to.clone(),
        custom_tags: f.custom_tags.clone(),
        system_tags: Vec::new(),
        comments: Vec::new(),
        redirect_incident_id: None,
        web_url: None,
        created: at,
        last_update: at,
        last_modified_by: None,
        alerts: None,
    }
}

/// Where reverse sync gets a tenant's delta list from (the poll; none on the webhook path).
#[async_trait::async_trait]
pub trait DeltaSource: Send + Sync {
    /// The tenant's current list, listed now if there is none or it is too old; `None` when it
    /// cannot be listed (the incident is then read with a GET).
    async fn delta(&self, tenant: &TenantId) -> Option<Arc<DefenderDelta>>;
}

/// The delta lists of one poll: one per tenant, listed when first needed and again once older
/// than `relist_after`. Each spends its own tenant's Graph budget (the Graph client's limiter).
pub struct DefenderLists<'a> {
    pub defender: &'a dyn DefenderApi,
    pub store: &'a dyn StateStore,
    /// The forward pull's overlap: the list starts this long before the forward watermark.
    pub overlap: time::Duration,
    pub relist_after: Duration,
    lists: HashMap<TenantId, tokio::sync::Mutex<Option<Arc<DefenderDelta>>>>,
    /// Lists made (each may have several pages), for the figures.
    pub listed: AtomicU64,
}

impl<'a> DefenderLists<'a> {
    pub fn new(
        defender: &'a dyn DefenderApi,
        store: &'a dyn StateStore,
        tenants: &[TenantId],
        overlap: Duration,
    ) -> Self {
        Self {
            defender,
            store,
            overlap: time::Duration::try_from(overlap).unwrap_or(time::Duration::MAX),
            relist_after: RELIST_AFTER,
            lists: tenants
                .iter()
                .map(|t| (t.clone(), tokio::sync::Mutex::new(None)))
                .collect(),
            listed: AtomicU64::new(0),
        }
    }

    /// Lists `tenant`'s incidents changed since its forward watermark less the overlap; `None`
    /// without a checkpoint or when any page failed.
    async fn list(&self, tenant: &TenantId) -> Option<DefenderDelta> {
        let listed_at = Instant::now();
        let checkpoint = match self.store.checkpoint(tenant).await {
            Ok(Some(c)) => c.value,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, message = "Checkpoint not read: reverse sync reads each incident.");
                return None;
            }
        };
        let since = checkpoint.watermark - self.overlap;
        let forward_parked = match self.store.retry_set(tenant).await {
            Ok(entries) => entries
                .into_iter()
                .filter(|e| !e.reverse)
                .map(|e| e.incident_id)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, message = "Retry set not read: reverse sync reads each incident.");
                return None;
            }
        };
        self.listed.fetch_add(1, Ordering::Relaxed);
        let now = OffsetDateTime::now_utc();
        let mut listed = HashMap::new();
        // Windows still to list: `[from, to)`, `to = None` for open-ended.
        let mut windows = vec![(since, None::<OffsetDateTime>)];
        while let Some((from, to)) = windows.pop() {
            match self.window(tenant, from, to).await {
                Ok(Some(items)) => {
                    for d in items {
                        keep_newest(&mut listed, d);
                    }
                }
                Ok(None) => {
                    let end = to.unwrap_or(now).max(from);
                    let mid = from + (end - from) / 2;
                    if mid - from < SPLIT_MIN {
                        tracing::warn!(
                            message =
                                "Defender delta list incomplete: reverse sync reads each incident."
                        );
                        return None;
                    }
                    windows.push((from, Some(mid)));
                    windows.push((mid, to));
                }
                Err(e) => {
                    tracing::warn!(error = %e, message = "Defender delta list failed: reverse sync reads each incident.");
                    return None;
                }
            }
        }
        Some(DefenderDelta {
            tenant: tenant.clone(),
            since,
            listed,
            forward_parked,
            listed_at,
        })
    }

    /// Every incident of one window, or `None` when it holds more than Graph pages through or
    /// fewer arrived than its `@odata.count` (Graph has been seen to stop paging silently; an
    /// incident missing from the list would be taken as unchanged). The count is read first:
    /// in the open-ended window incidents only enter while it is listed, so a complete list
    /// never holds fewer; a closed window an incident left meanwhile is read again in halves.
    async fn window(
        &self,
        tenant: &TenantId,
        from: OffsetDateTime,
        to: Option<OffsetDateTime>,
    ) -> Result<Option<Vec<DefenderIncident>>, DefenderError> {
        let window = IncidentWindow {
            updated_from: from,
            updated_to: to,
            created_from: None,
            created_to: None,
        };
        let count = self.defender.count_incidents(tenant, &window).await?;
        if count.is_some_and(|c| c >= WINDOW_MAX as u64) {
            return Ok(None);
        }
        let mut page = self.defender.list_incidents(tenant, &window, false).await?;
        let (mut out, mut items) = (Vec::new(), 0usize);
        loop {
            // An item Graph could not map is not known: the incident is read with a GET
            // (it is not listed, and a state synced since the bound is never `AsStored`).
            items += page.incidents.len() + page.unmappable.len();
            out.append(&mut page.incidents);
            let Some(next) = page.next_link.take() else {
                let short = count.is_some_and(|c| (items as u64) < c);
                return Ok((!short).then_some(out));
            };
            if items >= WINDOW_MAX {
                return Ok(None);
            }
            page = self.defender.next_page(tenant, &next).await?;
        }
    }
}

/// Keeps the newer of two listings of one incident (windows may be read at different times).
fn keep_newest(m: &mut HashMap<DefenderIncidentId, DefenderIncident>, d: DefenderIncident) {
    match m.get(&d.id) {
        Some(old) if old.last_update >= d.last_update => {}
        _ => {
            m.insert(d.id.clone(), d);
        }
    }
}

#[async_trait::async_trait]
impl DeltaSource for DefenderLists<'_> {
    async fn delta(&self, tenant: &TenantId) -> Option<Arc<DefenderDelta>> {
        let slot = self.lists.get(tenant)?;
        let mut slot = slot.lock().await;
        if let Some(d) = slot.as_ref()
            && d.listed_at.elapsed() < self.relist_after
        {
            return Some(d.clone());
        }
        let fresh = self.list(tenant).await.map(Arc::new);
        slot.clone_from(&fresh);
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dss_test_support::*;

    fn state(id: u32, at: OffsetDateTime) -> IncidentState {
        let d = incident(&tenant(), id, at);
        let mut st = IncidentState::new(tenant(), d.id.clone());
        st.defender_last_update = Some(at);
        st.defender_base = Some(d.fields());
        st.last_outcome = Some(Outcome::Synced);
        st
    }

    fn delta(since: OffsetDateTime, listed: Vec<DefenderIncident>) -> DefenderDelta {
        DefenderDelta {
            tenant: tenant(),
            since,
            listed: listed.into_iter().map(|d| (d.id.clone(), d)).collect(),
            forward_parked: HashSet::new(),
            listed_at: Instant::now(),
        }
    }

    /// Graph as it has been seen to behave: one incident missing from the pages (not from the
    /// count).
    struct Dropping {
        inner: FakeDefender,
        drop: DefenderIncidentId,
    }

    impl Dropping {
        fn cut(&self, mut p: IncidentPage) -> IncidentPage {
            p.incidents.retain(|i| i.id != self.drop);
            p
        }
    }

    #[async_trait::async_trait]
    impl DefenderApi for Dropping {
        async fn count_incidents(
            &self,
            t: &TenantId,
            w: &IncidentWindow,
        ) -> Result<Option<u64>, DefenderError> {
            self.inner.count_incidents(t, w).await
        }
        async fn list_incidents(
            &self,
            t: &TenantId,
            w: &IncidentWindow,
            e: bool,
        ) -> Result<IncidentPage, DefenderError> {
            Ok(self.cut(self.inner.list_incidents(t, w, e).await?))
        }
        async fn next_page(&self, t: &TenantId, l: &str) -> Result<IncidentPage, DefenderError> {
            Ok(self.cut(self.inner.next_page(t, l).await?))
        }
        async fn get_incident(
            &self,
            t: &TenantId,
            id: &DefenderIncidentId,
        ) -> Result<Option<DefenderIncident>, DefenderError> {
            self.inner.get_incident(t, id).await
        }
        async fn alerts_for_incident(
            &self,
            t: &TenantId,
            id: &DefenderIncidentId,
        ) -> Result<Vec<Alert>, DefenderError> {
            self.inner.alerts_for_incident(t, id).await
        }
        async fn update_incident(
            &self,
            t: &TenantId,
            id: &DefenderIncidentId,
            p: &DefenderPatch,
        ) -> Result<DefenderIncident, DefenderError> {
            self.inner.update_incident(t, id, p).await
        }
        async fn add_comment(
            &self,
            t: &TenantId,
            id: &DefenderIncidentId,
            text: &str,
        ) -> Result<Vec<DefenderComment>, DefenderError> {
            self.inner.add_comment(t, id, text).await
        }
        async fn resolve_user(&self, upn: &str) -> Result<Option<UserRef>, DefenderError> {
            self.inner.resolve_user(upn).await
        }
    }

    /// A store whose tenant's forward watermark is now.
    async fn store_at_now() -> FlakyStore {
        use crate::state::Precondition;
        let store = FlakyStore::default();
        let cp = crate::domain::records::Checkpoint {
            watermark: OffsetDateTime::now_utc(),
            ids_at_watermark: Default::default(),
        };
        store
            .put_checkpoint(&tenant(), &cp, Precondition::Absent)
            .await
            .unwrap();
        store
    }

    fn recent(n: u32) -> DefenderIncident {
        let now = OffsetDateTime::now_utc();
        incident(
            &tenant(),
            n,
            now - time::Duration::milliseconds(i64::from(n) * 300),
        )
    }

    #[tokio::test]
    async fn a_list_short_of_its_count_is_not_trusted() {
        let d = Dropping {
            inner: FakeDefender::default(),
            drop: recent(2).id,
        };
        for n in 1..=3 {
            d.inner.upsert(recent(n));
        }
        let store = store_at_now().await;
        let lists = DefenderLists::new(&d, &store, &[tenant()], Duration::from_secs(300));
        assert!(
            lists.delta(&tenant()).await.is_none(),
            "an incident Graph left out of the pages must not be taken as unchanged"
        );
        // Without the drop the same list is complete.
        let lists = DefenderLists::new(&d.inner, &store, &[tenant()], Duration::from_secs(300));
        let delta = lists.delta(&tenant()).await.expect("complete");
        assert_eq!(delta.listed.len(), 3);
    }

    #[tokio::test]
    async fn a_window_over_graphs_paging_limit_is_listed_in_halves() {
        let d = FakeDefender::default();
        for n in 1..=600 {
            d.upsert(recent(n));
        }
        let store = store_at_now().await;
        let lists = DefenderLists::new(&d, &store, &[tenant()], Duration::from_secs(300));
        let delta = lists.delta(&tenant()).await.expect("listed in halves");
        assert_eq!(delta.listed.len(), 600);
        // Listed again only once it is old: the same list answers meanwhile.
        let again = lists.delta(&tenant()).await.expect("cached");
        assert!(Arc::ptr_eq(&delta, &again));
        assert_eq!(lists.listed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_listed_incident_is_used_as_listed_and_an_older_one_as_stored() {
        let since = T0;
        let old = T0 - time::Duration::minutes(10);
        let mut newer = incident(&tenant(), 1, T0 + time::Duration::minutes(1));
        newer.custom_tags = vec!["set in Defender".into()];
        let dl = delta(since, vec![newer.clone()]);
        assert_eq!(dl.current(&state(1, old)), DefenderNow::Listed(newer));
        match dl.current(&state(2, old)) {
            DefenderNow::AsStored(d) => {
                assert_eq!(d.fields(), incident(&tenant(), 2, old).fields());
                assert_eq!(d.last_update, old);
                assert!(d.comments.is_empty(), "comments are not known");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_list_is_not_trusted_where_the_state_may_lag_behind_defender() {
        let since = T0;
        let dl = delta(since, Vec::new());
        // Synced at or after the bound but not listed: the list missed it.
        assert_eq!(dl.current(&state(1, since)), DefenderNow::Unknown);
        let old = T0 - time::Duration::minutes(10);
        // Parked by forward sync (state or retry set): the state may be older than Defender.
        let mut parked = state(2, old);
        parked.last_outcome = Some(Outcome::Parked);
        parked.last_error = Some("mapping".into());
        assert_eq!(dl.current(&parked), DefenderNow::Unknown);
        let mut in_retry = delta(since, Vec::new());
        in_retry.forward_parked.insert(state(3, old).defender_id);
        assert_eq!(in_retry.current(&state(3, old)), DefenderNow::Unknown);
        // Parked by reverse sync: forward sync still records Defender; the state is current.
        let mut reverse_parked = state(4, old);
        reverse_parked.last_outcome = Some(Outcome::Parked);
        reverse_parked.last_error = Some(format!("{}owner", super::super::reverse::PARK_PREFIX));
        assert!(matches!(
            dl.current(&reverse_parked),
            DefenderNow::AsStored(_)
        ));
        // A state newer than its listing (written since the list, e.g. by the webhook).
        let listed = incident(&tenant(), 7, since + time::Duration::minutes(1));
        let newer = state(7, since + time::Duration::minutes(2));
        assert_eq!(
            delta(since, vec![listed]).current(&newer),
            DefenderNow::Unknown
        );
        // Another tenant's list never answers for this one.
        let mut other = delta(since, Vec::new());
        other.tenant = TenantId::parse("22222222-2222-2222-2222-222222222222").unwrap();
        assert_eq!(other.current(&state(5, old)), DefenderNow::Unknown);
        // No merge base, no modification time: nothing to build from.
        let mut bare = state(6, old);
        bare.defender_last_update = None;
        assert_eq!(dl.current(&bare), DefenderNow::Unknown);
    }
}
