//! Test doubles of defender-sentinel-sync's ports, shared by unit and integration tests (they
//! depend on `dss-core` only, so the root crate's unit tests see one copy of every type).
//!
//! In-memory fakes of the three ports, realistic where the engine's correctness depends on it:
//! the Sentinel fake enforces the etag (409) and moves it on a comment PUT, full-replace PUT,
//! Closed-needs-classification,
//! TP/BP-need-a-reason and the comment limits; the Defender fake pages windows 50 at a time,
//! refuses `$skip` above 500, counts, and can fail `$expand`. Every fake counts its calls and
//! can inject faults per operation.

mod fixtures;
pub use fixtures::{fixture, fixtures_dir};

use dss_core::domain::*;
use dss_core::ports::*;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use time::OffsetDateTime;
use time::macros::datetime;

/// An error to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Transient,
    Throttled,
    Rejected,
    Auth,
}

/// Attempts of one call, as the adapters' HTTP layer makes them: a transient fault (5xx, 429)
/// is retried in the fake until this many attempts failed; only then does the caller see it.
pub const ATTEMPTS: u32 = 3;

/// Queued faults per operation name, call counters, and when each call came. Like the real
/// clients, a fake owns the retries of transient faults ([`ATTEMPTS`]) and counts every
/// attempt and every 429 once.
#[derive(Debug, Default)]
pub struct Probe {
    faults: Mutex<HashMap<&'static str, VecDeque<Fault>>>,
    throttled: std::sync::atomic::AtomicU64,
    calls: Mutex<HashMap<&'static str, u64>>,
    /// Per operation, a ticket of [`CALL_ORDER`] per call: orders calls across fakes.
    order: Mutex<HashMap<&'static str, Vec<u64>>>,
}

/// One sequence for the calls of every fake, so a test can tell which call came first.
static CALL_ORDER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Probe {
    /// The next `n` calls of `op` fail with `fault`.
    pub fn fail(&self, op: &'static str, fault: Fault, n: usize) {
        let mut f = lock(&self.faults);
        f.entry(op)
            .or_default()
            .extend(std::iter::repeat_n(fault, n));
    }

    /// Calls of `op` so far.
    pub fn calls(&self, op: &'static str) -> u64 {
        lock(&self.calls).get(op).copied().unwrap_or(0)
    }

    /// Forgets the counters.
    pub fn reset_calls(&self) {
        lock(&self.calls).clear();
        lock(&self.order).clear();
    }

    /// The tickets of the calls of `op`, in call order; comparable across fakes.
    pub fn tickets(&self, op: &'static str) -> Vec<u64> {
        lock(&self.order).get(op).cloned().unwrap_or_default()
    }

    /// 429s met so far (each attempt once), as the real clients' counters report them.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One call of `op`: its attempts, each taking the next queued fault; a transient one is
    /// retried up to [`ATTEMPTS`] in all. Returns the fault the caller sees, if any.
    fn hit(&self, op: &'static str) -> Option<Fault> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            *lock(&self.calls).entry(op).or_default() += 1;
            let ticket = CALL_ORDER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            lock(&self.order).entry(op).or_default().push(ticket);
            let fault = lock(&self.faults).get_mut(op).and_then(VecDeque::pop_front);
            if fault == Some(Fault::Throttled) {
                self.throttled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            match fault {
                Some(Fault::Transient | Fault::Throttled) if attempt < ATTEMPTS => continue,
                f => return f,
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn d_err(f: Fault) -> DefenderError {
    match f {
        Fault::Transient => DefenderError::Transient("injected 503".into()),
        Fault::Throttled => DefenderError::Throttled {
            retry_after: Some(std::time::Duration::from_millis(1)),
        },
        Fault::Rejected => DefenderError::Rejected {
            status: 400,
            message: "injected".into(),
        },
        Fault::Auth => DefenderError::Auth {
            status: 401,
            message: "injected".into(),
        },
    }
}

fn s_err(f: Fault) -> SentinelError {
    match f {
        Fault::Transient => SentinelError::Transient("injected 503".into()),
        Fault::Throttled => SentinelError::Throttled {
            retry_after: Some(std::time::Duration::from_millis(1)),
        },
        Fault::Rejected => SentinelError::Rejected {
            status: 400,
            message: "injected".into(),
        },
        Fault::Auth => SentinelError::Auth {
            status: 403,
            message: "injected".into(),
        },
    }
}

// ---- Defender ----------------------------------------------------------------------------

/// Graph security incidents in memory.
#[derive(Debug, Default)]
pub struct FakeDefender {
    pub probe: Probe,
    /// Every page requested with `$expand=alerts` fails with a 5xx.
    pub expand_fails: AtomicBool,
    state: Mutex<DefenderState>,
}

#[derive(Debug, Default)]
struct DefenderState {
    incidents: BTreeMap<(TenantId, DefenderIncidentId), DefenderIncident>,
    queries: Vec<(TenantId, IncidentWindow, bool)>,
    users: HashMap<String, UserRef>,
    /// Listed items the adapter could not map: (tenant, id hint) → (error, lastUpdateDateTime).
    unmappable: BTreeMap<(TenantId, String), (String, OffsetDateTime)>,
}

const PAGE: usize = 50;

fn in_window(w: &IncidentWindow, i: &DefenderIncident) -> bool {
    i.last_update >= w.updated_from
        && w.updated_to.is_none_or(|t| i.last_update < t)
        && w.created_from.is_none_or(|t| i.created >= t)
        && w.created_to.is_none_or(|t| i.created < t)
}

impl FakeDefender {
    /// Adds or replaces an incident.
    pub fn upsert(&self, i: DefenderIncident) {
        lock(&self.state)
            .incidents
            .insert((i.tenant.clone(), i.id.clone()), i);
    }

    /// Every list query so far: tenant, window, `$expand=alerts`.
    pub fn queries(&self) -> Vec<(TenantId, IncidentWindow, bool)> {
        lock(&self.state).queries.clone()
    }

    /// Changes an incident (the caller sets `last_update` when it should move).
    pub fn edit(&self, tenant: &TenantId, id: &str, f: impl FnOnce(&mut DefenderIncident)) {
        let id = DefenderIncidentId::parse(id).unwrap_or_else(|e| panic!("{e}"));
        if let Some(i) = lock(&self.state).incidents.get_mut(&(tenant.clone(), id)) {
            f(i);
        }
    }

    /// Lists an item that cannot be mapped (`id` may be "?"), as the Graph adapter reports it:
    /// in the pages and counts of windows holding `at`; `get_incident` of its id is refused the
    /// same way until [`Self::fix_unmappable`].
    pub fn add_unmappable(&self, tenant: &TenantId, id: &str, error: &str, at: OffsetDateTime) {
        lock(&self.state)
            .unmappable
            .insert((tenant.clone(), id.into()), (error.into(), at));
    }

    /// The payload got fixed: the item becomes this (mappable) incident.
    pub fn fix_unmappable(&self, i: DefenderIncident) {
        let mut st = lock(&self.state);
        st.unmappable.remove(&(i.tenant.clone(), i.id.to_string()));
        st.incidents.insert((i.tenant.clone(), i.id.clone()), i);
    }

    fn unmappable_in<'a>(
        st: &'a DefenderState,
        tenant: &TenantId,
        w: &IncidentWindow,
    ) -> Vec<(&'a String, &'a String)> {
        let hit = |at: &OffsetDateTime| {
            *at >= w.updated_from
                && w.updated_to.is_none_or(|t| *at < t)
                && w.created_from.is_none()
        };
        st.unmappable
            .iter()
            .filter(|((t, _), (_, at))| t == tenant && hit(at))
            .map(|((_, id), (e, _))| (id, e))
            .collect()
    }

    /// Adds a directory user for `resolve_user`.
    pub fn add_user(&self, u: UserRef) {
        lock(&self.state)
            .users
            .insert(u.user_principal_name.to_ascii_lowercase(), u);
    }

    fn page(&self, qid: usize, skip: usize) -> Result<IncidentPage, DefenderError> {
        if skip > 500 {
            return Err(DefenderError::Rejected {
                status: 400,
                message: "$skip above 500".into(),
            });
        }
        let st = lock(&self.state);
        let (tenant, w, expand) = st
            .queries
            .get(qid)
            .cloned()
            .ok_or_else(|| DefenderError::Transient("bad link".into()))?;
        if expand && self.expand_fails.load(Ordering::SeqCst) {
            return Err(DefenderError::Transient("500 on $expand=alerts".into()));
        }
        // Deliberately not in time order: the engine must not rely on the server's order.
        let mut all: Vec<&DefenderIncident> = st
            .incidents
            .values()
            .filter(|i| i.tenant == tenant && in_window(&w, i))
            .collect();
        all.sort_by(|a, b| b.id.cmp(&a.id));
        let incidents: Vec<DefenderIncident> = all
            .iter()
            .skip(skip)
            .take(PAGE)
            .map(|i| DefenderIncident {
                alerts: if expand { i.alerts.clone() } else { None },
                ..(*i).clone()
            })
            .collect();
        // Unmappable items come after the good ones and take their places in the pages.
        let bad = Self::unmappable_in(&st, &tenant, &w);
        let bad_skip = skip.saturating_sub(all.len());
        let unmappable = bad
            .iter()
            .skip(bad_skip)
            .take(PAGE - incidents.len())
            .map(|(id, e)| ((*id).clone(), (*e).clone()))
            .collect();
        let total = all.len() + bad.len();
        let next_link =
            (skip + PAGE < total).then(|| format!("fake-graph://q/{qid}/skip/{}", skip + PAGE));
        Ok(IncidentPage {
            incidents,
            next_link,
            unmappable,
        })
    }
}

#[async_trait::async_trait]
impl DefenderApi for FakeDefender {
    async fn count_incidents(
        &self,
        tenant: &TenantId,
        w: &IncidentWindow,
    ) -> Result<Option<u64>, DefenderError> {
        if let Some(f) = self.probe.hit("count") {
            return Err(d_err(f));
        }
        let st = lock(&self.state);
        let good = st
            .incidents
            .values()
            .filter(|i| &i.tenant == tenant && in_window(w, i))
            .count();
        Ok(Some(
            (good + Self::unmappable_in(&st, tenant, w).len()) as u64,
        ))
    }

    async fn list_incidents(
        &self,
        tenant: &TenantId,
        w: &IncidentWindow,
        expand: bool,
    ) -> Result<IncidentPage, DefenderError> {
        if let Some(f) = self.probe.hit("list") {
            return Err(d_err(f));
        }
        let qid = {
            let mut st = lock(&self.state);
            st.queries.push((tenant.clone(), w.clone(), expand));
            st.queries.len() - 1
        };
        self.page(qid, 0)
    }

    async fn next_page(
        &self,
        _tenant: &TenantId,
        link: &str,
    ) -> Result<IncidentPage, DefenderError> {
        if let Some(f) = self.probe.hit("next_page") {
            return Err(d_err(f));
        }
        let parts: Vec<&str> = link
            .trim_start_matches("fake-graph://q/")
            .split("/skip/")
            .collect();
        let num = |s: Option<&&str>| s.and_then(|s| s.parse::<usize>().ok());
        match (num(parts.first()), num(parts.get(1))) {
            (Some(q), Some(skip)) => self.page(q, skip),
            _ => Err(DefenderError::Rejected {
                status: 400,
                message: format!("bad link {link}"),
            }),
        }
    }

    async fn get_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<Option<DefenderIncident>, DefenderError> {
        if let Some(f) = self.probe.hit("get_incident") {
            return Err(d_err(f));
        }
        let st = lock(&self.state);
        if let Some((error, _)) = st.unmappable.get(&(tenant.clone(), id.to_string())) {
            return Err(DefenderError::Rejected {
                status: 200,
                message: error.clone(),
            });
        }
        Ok(st.incidents.get(&(tenant.clone(), id.clone())).cloned())
    }

    async fn alerts_for_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<Vec<Alert>, DefenderError> {
        if let Some(f) = self.probe.hit("alerts") {
            return Err(d_err(f));
        }
        let st = lock(&self.state);
        Ok(st
            .incidents
            .get(&(tenant.clone(), id.clone()))
            .and_then(|i| i.alerts.clone())
            .unwrap_or_default())
    }

    async fn update_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        patch: &DefenderPatch,
    ) -> Result<DefenderIncident, DefenderError> {
        if let Some(f) = self.probe.hit("update_incident") {
            return Err(d_err(f));
        }
        let mut st = lock(&self.state);
        let i = st
            .incidents
            .get_mut(&(tenant.clone(), id.clone()))
            .ok_or(DefenderError::NotFound)?;
        let f = patch.apply(&i.fields());
        (i.status, i.severity, i.classification, i.determination) =
            (f.status, f.severity, f.classification, f.determination);
        (i.resolving_comment, i.assigned_to, i.custom_tags) =
            (f.resolving_comment, f.assigned_to, f.custom_tags);
        i.last_update = OffsetDateTime::now_utc();
        Ok(i.clone())
    }

    async fn add_comment(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        text: &str,
    ) -> Result<Vec<DefenderComment>, DefenderError> {
        if let Some(f) = self.probe.hit("add_comment") {
            return Err(d_err(f));
        }
        let mut st = lock(&self.state);
        let i = st
            .incidents
            .get_mut(&(tenant.clone(), id.clone()))
            .ok_or(DefenderError::NotFound)?;
        i.comments.push(DefenderComment {
            text: text.into(),
            author: Some("API-App".into()),
            created: Some(OffsetDateTime::now_utc()),
        });
        Ok(i.comments.clone())
    }

    async fn resolve_user(&self, upn: &str) -> Result<Option<UserRef>, DefenderError> {
        if let Some(f) = self.probe.hit("resolve_user") {
            return Err(d_err(f));
        }
        Ok(lock(&self.state)
            .users
            .get(&upn.to_ascii_lowercase())
            .cloned())
    }
}

// ---- Sentinel ----------------------------------------------------------------------------

/// Sentinel incidents through ARM, in memory.
#[derive(Debug, Default)]
pub struct FakeSentinel {
    pub probe: Probe,
    state: Mutex<SentinelState>,
    /// Delay of every incident PUT (to exercise deadlines and concurrency).
    pub put_delay: Mutex<Option<std::time::Duration>>,
    /// Incidents are created by the service, never by a PUT (the unified portal's way).
    service_created: AtomicBool,
}

#[derive(Debug, Default)]
struct SentinelState {
    incidents: HashMap<SentinelIncidentName, SentinelIncident>,
    comments: HashMap<SentinelIncidentName, Vec<SentinelComment>>,
    puts_per_name: HashMap<SentinelIncidentName, u64>,
    next: u64,
    reject: HashSet<SentinelIncidentName>,
    race_once: HashSet<SentinelIncidentName>,
}

impl SentinelState {
    /// The incident as the service answers it: `commentsCount` as it stands now.
    fn answer(&self, i: &SentinelIncident) -> SentinelIncident {
        let count = self.comments.get(&i.name).map_or(0, Vec::len);
        SentinelIncident {
            comments_count: Some(count as u32),
            platform_id: i.platform_id.clone(),
            ..i.clone()
        }
    }

    fn bump(&mut self) -> String {
        self.next += 1;
        format!("\"etag-{}\"", self.next)
    }
}

fn validate(i: &SentinelIncident) -> Result<(), SentinelError> {
    let bad = |m: &str| {
        Err(SentinelError::Rejected {
            status: 400,
            message: m.into(),
        })
    };
    if i.title.is_empty() {
        return bad("title is required");
    }
    if i.status == SentinelStatus::Closed && i.classification.is_none() {
        return bad("Closed requires a classification");
    }
    let needs_reason = matches!(
        i.classification,
        Some(SentinelClassification::TruePositive | SentinelClassification::BenignPositive)
    );
    if needs_reason && i.classification_reason.is_none() {
        return bad("classification must have classificationReason");
    }
    if i.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > SENTINEL_DESCRIPTION_MAX_CHARS)
    {
        return bad("description too long");
    }
    Ok(())
}

impl FakeSentinel {
    /// From now on, incidents come to exist as the service creates them ([`Provisioning::ByService`]):
    /// a PUT of one that does not exist is refused.
    pub fn set_service_created(&self, on: bool) {
        self.service_created.store(on, Ordering::Relaxed);
    }

    /// An incident the service creates (e.g. the correlation engine, from ingested alerts).
    pub fn create_by_service(&self, i: SentinelIncident) -> SentinelIncident {
        let mut st = lock(&self.state);
        st.next += 1;
        let now = OffsetDateTime::now_utc();
        let stored = SentinelIncident {
            etag: Some(st.bump()),
            incident_number: Some(st.next as i64),
            created: Some(now),
            last_modified: Some(now),
            ..i
        };
        st.incidents.insert(stored.name, stored.clone());
        stored
    }

    /// The incident as stored.
    pub fn incident(&self, name: &SentinelIncidentName) -> Option<SentinelIncident> {
        let st = lock(&self.state);
        st.incidents.get(name).map(|i| st.answer(i))
    }

    /// Number of incidents stored.
    pub fn len(&self) -> usize {
        lock(&self.state).incidents.len()
    }

    /// True when Sentinel holds no incident.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Comments of an incident, in creation order.
    pub fn comments(&self, name: &SentinelIncidentName) -> Vec<SentinelComment> {
        lock(&self.state)
            .comments
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Successful incident PUTs per name.
    pub fn puts(&self, name: &SentinelIncidentName) -> u64 {
        lock(&self.state)
            .puts_per_name
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// An analyst edits the incident in the portal (new etag, new modification time).
    pub fn analyst_edit(&self, name: &SentinelIncidentName, f: impl FnOnce(&mut SentinelIncident)) {
        let mut st = lock(&self.state);
        let etag = st.bump();
        if let Some(i) = st.incidents.get_mut(name) {
            f(i);
            i.etag = Some(etag);
            i.last_modified = Some(OffsetDateTime::now_utc());
        }
    }

    /// The incident is deleted (by an analyst or a retention job), with its comments.
    pub fn delete(&self, name: &SentinelIncidentName) {
        let mut st = lock(&self.state);
        st.incidents.remove(name);
        st.comments.remove(name);
    }

    /// Every PUT of this incident is refused with 400.
    pub fn reject(&self, name: SentinelIncidentName, on: bool) {
        let mut st = lock(&self.state);
        if on {
            st.reject.insert(name)
        } else {
            st.reject.remove(&name)
        };
    }

    /// Someone else writes the incident just before our next PUT (so it gets a 409).
    pub fn race_next_put(&self, name: SentinelIncidentName) {
        lock(&self.state).race_once.insert(name);
    }
}

#[async_trait::async_trait]
impl SentinelApi for FakeSentinel {
    fn provisioning(&self) -> Provisioning {
        if self.service_created.load(Ordering::Relaxed) {
            Provisioning::ByService
        } else {
            Provisioning::BySync
        }
    }

    async fn get_incident(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Option<SentinelIncident>, SentinelError> {
        if let Some(f) = self.probe.hit("get_incident") {
            return Err(s_err(f));
        }
        Ok(self.incident(name))
    }

    async fn put_incident(&self, i: &SentinelIncident) -> Result<SentinelIncident, SentinelError> {
        let delay = *lock(&self.put_delay);
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if let Some(f) = self.probe.hit("put_incident") {
            return Err(s_err(f));
        }
        let mut st = lock(&self.state);
        if st.reject.contains(&i.name) {
            return Err(SentinelError::Rejected {
                status: 400,
                message: "refused for this incident".into(),
            });
        }
        validate(i)?;
        if st.race_once.remove(&i.name) {
            let etag = st.bump();
            if let Some(cur) = st.incidents.get_mut(&i.name) {
                cur.etag = Some(etag);
            }
        }
        let existing = st.incidents.get(&i.name).cloned();
        if existing.is_none() && self.service_created.load(Ordering::Relaxed) {
            return Err(SentinelError::Rejected {
                status: 400,
                message: "incidents are created by the service".into(),
            });
        }
        // An etag for an incident that is gone (deleted meanwhile): refused. What ARM answers
        // here is not documented; the engine starts over with a GET whatever the refusal.
        if existing.is_none() && i.etag.is_some() {
            return Err(SentinelError::NotFound);
        }
        if let (Some(cur), Some(sent)) = (&existing, &i.etag)
            && cur.etag.as_ref() != Some(sent)
        {
            return Err(SentinelError::Conflict(format!(
                "New version of resource '{}' exists",
                i.name
            )));
        }
        st.next += 1;
        let number = existing
            .as_ref()
            .and_then(|c| c.incident_number)
            .unwrap_or(st.next as i64);
        let now = OffsetDateTime::now_utc();
        // Full replace of the writable properties; read-only ones are the service's.
        let stored = SentinelIncident {
            etag: Some(st.bump()),
            incident_number: Some(number),
            created: existing.as_ref().and_then(|c| c.created).or(Some(now)),
            last_modified: Some(now),
            ..i.clone()
        };
        st.incidents.insert(i.name, stored.clone());
        *st.puts_per_name.entry(i.name).or_default() += 1;
        Ok(st.answer(&stored))
    }

    async fn list_modified_since(
        &self,
        since: OffsetDateTime,
        _next: Option<&str>,
    ) -> Result<SentinelPage, SentinelError> {
        if let Some(f) = self.probe.hit("list_modified") {
            return Err(s_err(f));
        }
        let st = lock(&self.state);
        let incidents = st
            .incidents
            .values()
            .filter(|i| i.last_modified.is_some_and(|m| m >= since))
            .map(|i| st.answer(i))
            .collect();
        Ok(SentinelPage {
            incidents,
            next_link: None,
        })
    }

    async fn list_comments(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Vec<SentinelComment>, SentinelError> {
        if let Some(f) = self.probe.hit("list_comments") {
            return Err(s_err(f));
        }
        Ok(self.comments(name))
    }

    async fn put_comment(
        &self,
        name: &SentinelIncidentName,
        id: uuid::Uuid,
        message: &str,
    ) -> Result<SentinelComment, SentinelError> {
        if let Some(f) = self.probe.hit("put_comment") {
            return Err(s_err(f));
        }
        let mut st = lock(&self.state);
        if !st.incidents.contains_key(name) {
            return Err(SentinelError::NotFound);
        }
        if message.chars().count() > 30_000 {
            return Err(SentinelError::Rejected {
                status: 400,
                message: "comment over 30,000 characters".into(),
            });
        }
        let list = st.comments.entry(*name).or_default();
        let c = SentinelComment {
            id: id.to_string(),
            message: message.into(),
            author: Some("app".into()),
            created: Some(OffsetDateTime::now_utc()),
        };
        let answer = if let Some(existing) = list.iter_mut().find(|c| c.id == id.to_string()) {
            existing.message = message.into();
            existing.clone()
        } else {
            if list.len() >= 100 {
                return Err(SentinelError::Rejected {
                    status: 400,
                    message: "an incident holds at most 100 comments".into(),
                });
            }
            list.push(c.clone());
            c
        };
        // A comment PUT changes the incident itself, as the ARM simulator does (ARM documents
        // no etag rule for comments; the simulator is the reference): new etag, new
        // modification time.
        let etag = st.bump();
        if let Some(i) = st.incidents.get_mut(name) {
            i.etag = Some(etag);
            i.last_modified = Some(OffsetDateTime::now_utc());
        }
        Ok(answer)
    }
}

// ---- Logs Ingestion ----------------------------------------------------------------------

/// Logs Ingestion in memory: keeps every alert shipped.
#[derive(Debug, Default)]
pub struct FakeLogs {
    pub probe: Probe,
    shipped: Mutex<Vec<(String, String)>>,
}

impl FakeLogs {
    /// (incident id, alert id) of every alert shipped, in order.
    pub fn shipped(&self) -> Vec<(String, String)> {
        lock(&self.shipped).clone()
    }
}

#[async_trait::async_trait]
impl LogsIngest for FakeLogs {
    async fn ship_alerts(&self, alerts: &[AlertRecord]) -> Result<(), LogsError> {
        if let Some(f) = self.probe.hit("ship") {
            return Err(match f {
                Fault::Transient | Fault::Throttled => LogsError::Transient("injected".into()),
                Fault::Rejected => LogsError::Rejected {
                    status: 400,
                    message: "injected".into(),
                },
                Fault::Auth => LogsError::Auth {
                    status: 403,
                    message: "injected".into(),
                },
            });
        }
        lock(&self.shipped).extend(
            alerts
                .iter()
                .map(|a| (a.incident_id.to_string(), a.alert.id.clone())),
        );
        Ok(())
    }
}

// ---- builders ----------------------------------------------------------------------------

/// The test tenant.
pub fn tenant() -> TenantId {
    TenantId::parse("11111111-2222-3333-4444-555555555555").unwrap_or_else(|e| panic!("{e}"))
}

/// A fixed instant tests count from.
pub const T0: OffsetDateTime = datetime!(2026-11-20 08:00 UTC);

/// An alert with two evidence items.
pub fn alert(id: &str, at: OffsetDateTime) -> Alert {
    let ev = |kind: &str, key: &str| Evidence {
        kind: kind.into(),
        verdict: Some("suspicious".into()),
        remediation_status: None,
        roles: vec![],
        key: Some(key.into()),
        raw: RawJson::from_value(
            &serde_json::json!({"@odata.type": format!("#microsoft.graph.security.{kind}"), "key": key}),
        ),
    };
    Alert {
        id: id.into(),
        title: format!("alert {id}"),
        severity: DefenderSeverity::Medium,
        status: "new".into(),
        service_source: "microsoftDefenderForEndpoint".into(),
        detection_source: Some("antivirus".into()),
        category: Some("Malware".into()),
        created: Some(at - time::Duration::minutes(30)),
        last_update: Some(at),
        first_activity: Some(at - time::Duration::hours(1)),
        last_activity: Some(at - time::Duration::minutes(10)),
        mitre_techniques: vec!["T1059".into()],
        evidence: vec![ev("deviceEvidence", "host-1"), ev("fileEvidence", "abc123")],
        raw: RawJson::from_value(&serde_json::json!({"id": id, "title": format!("alert {id}")})),
    }
}

/// An active incident with two alerts, created an hour before its last update.
pub fn incident(tenant: &TenantId, id: u32, updated: OffsetDateTime) -> DefenderIncident {
    DefenderIncident {
        tenant: tenant.clone(),
        id: DefenderIncidentId::parse(&id.to_string()).unwrap_or_else(|e| panic!("{e}")),
        display_name: format!("Multi-stage incident {id}"),
        description: Some("Something happened".into()),
        summary: Some("Summary".into()),
        status: DefenderStatus::Active,
        severity: DefenderSeverity::High,
        classification: None,
        determination: None,
        resolving_comment: None,
        assigned_to: None,
        custom_tags: vec![],
        system_tags: vec![],
        comments: vec![],
        redirect_incident_id: None,
        web_url: None,
        created: updated - time::Duration::hours(1),
        last_update: updated,
        last_modified_by: None,
        alerts: Some(vec![
            alert(&format!("da{id}-1"), updated),
            alert(&format!("da{id}-2"), updated),
        ]),
    }
}

// ---- a state store that can fail ---------------------------------------------------------

/// The memory store, with incident writes that can be made to fail (a crash between the
/// upstream writes and the state write).
#[derive(Debug, Default)]
pub struct FlakyStore {
    pub inner: dss_core::state::memory::MemoryStateStore,
    pub fail_incident_puts: std::sync::atomic::AtomicUsize,
    /// Incident writes that succeed before the injected failures start.
    pub pass_incident_puts: std::sync::atomic::AtomicUsize,
    /// Another writer rewrites this incident's state just before the next batch write (so
    /// that transaction loses the race on it).
    pub race_next_batch_on: std::sync::Mutex<Option<SentinelIncidentName>>,
    /// Batch writes attempted (`put_incidents` calls).
    pub batch_writes: std::sync::atomic::AtomicUsize,
    /// Incident states asked for (`incident` counts one, `incidents` one per name).
    pub states_read: std::sync::atomic::AtomicUsize,
    /// Another writer inserts this state just before the next incident write (single or
    /// batch): a writer that raced the engine to a new incident.
    pub insert_before_next_write: std::sync::Mutex<Option<dss_core::state::IncidentState>>,
}

impl FlakyStore {
    /// Inserts the racing writer's state, if one is waiting.
    async fn racing_insert(&self) -> Result<(), dss_core::state::StateError> {
        let racer = lock(&self.insert_before_next_write).take();
        if let Some(state) = racer {
            use dss_core::state::StateStore;
            self.inner
                .put_incident(&state, dss_core::state::Precondition::Absent)
                .await?;
        }
        Ok(())
    }
    /// Consumes one injected failure of an incident write (single or batch), if any is left.
    fn injected_crash(&self) -> Result<(), dss_core::state::StateError> {
        let pass = self.pass_incident_puts.load(Ordering::SeqCst);
        if pass > 0 {
            self.pass_incident_puts.store(pass - 1, Ordering::SeqCst);
            return Ok(());
        }
        let left = self.fail_incident_puts.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_incident_puts.store(left - 1, Ordering::SeqCst);
            return Err(dss_core::state::StateError::Transient(
                "injected: the process died here".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl dss_core::state::StateStore for FlakyStore {
    async fn ensure_ready(&self) -> Result<(), dss_core::state::StateError> {
        self.inner.ensure_ready().await
    }
    async fn checkpoint(
        &self,
        t: &TenantId,
    ) -> Result<
        Option<dss_core::state::Versioned<dss_core::state::Checkpoint>>,
        dss_core::state::StateError,
    > {
        self.inner.checkpoint(t).await
    }
    async fn put_checkpoint(
        &self,
        t: &TenantId,
        v: &dss_core::state::Checkpoint,
        p: dss_core::state::Precondition,
    ) -> Result<dss_core::state::ETag, dss_core::state::StateError> {
        self.inner.put_checkpoint(t, v, p).await
    }
    async fn state_horizon(
        &self,
        t: &TenantId,
    ) -> Result<
        Option<dss_core::state::Versioned<dss_core::state::StateHorizon>>,
        dss_core::state::StateError,
    > {
        self.inner.state_horizon(t).await
    }
    async fn put_state_horizon(
        &self,
        t: &TenantId,
        v: &dss_core::state::StateHorizon,
        p: dss_core::state::Precondition,
    ) -> Result<dss_core::state::ETag, dss_core::state::StateError> {
        self.inner.put_state_horizon(t, v, p).await
    }
    async fn retry_set(
        &self,
        t: &TenantId,
    ) -> Result<Vec<dss_core::state::RetryEntry>, dss_core::state::StateError> {
        self.inner.retry_set(t).await
    }
    async fn put_retry(
        &self,
        t: &TenantId,
        e: &dss_core::state::RetryEntry,
    ) -> Result<(), dss_core::state::StateError> {
        self.inner.put_retry(t, e).await
    }
    async fn remove_retry(
        &self,
        t: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<(), dss_core::state::StateError> {
        self.inner.remove_retry(t, id).await
    }
    async fn sentinel_checkpoint(
        &self,
    ) -> Result<
        Option<dss_core::state::Versioned<dss_core::state::SentinelCheckpoint>>,
        dss_core::state::StateError,
    > {
        self.inner.sentinel_checkpoint().await
    }
    async fn put_sentinel_checkpoint(
        &self,
        v: &dss_core::state::SentinelCheckpoint,
        p: dss_core::state::Precondition,
    ) -> Result<dss_core::state::ETag, dss_core::state::StateError> {
        self.inner.put_sentinel_checkpoint(v, p).await
    }
    async fn incident(
        &self,
        n: &SentinelIncidentName,
    ) -> Result<
        Option<dss_core::state::Versioned<dss_core::state::IncidentState>>,
        dss_core::state::StateError,
    > {
        self.states_read.fetch_add(1, Ordering::SeqCst);
        self.inner.incident(n).await
    }
    async fn put_incident(
        &self,
        v: &dss_core::state::IncidentState,
        p: dss_core::state::Precondition,
    ) -> Result<dss_core::state::ETag, dss_core::state::StateError> {
        self.injected_crash()?;
        self.racing_insert().await?;
        self.inner.put_incident(v, p).await
    }
    async fn incidents(
        &self,
        names: &[SentinelIncidentName],
    ) -> Result<dss_core::state::IncidentStates, dss_core::state::StateError> {
        self.states_read.fetch_add(names.len(), Ordering::SeqCst);
        self.inner.incidents(names).await
    }
    /// One injected failure fails the whole batch (the process died before the transaction).
    async fn put_incidents(
        &self,
        items: &[(
            dss_core::state::IncidentState,
            dss_core::state::Precondition,
        )],
    ) -> Result<Vec<dss_core::state::ETag>, dss_core::state::StateError> {
        self.batch_writes.fetch_add(1, Ordering::SeqCst);
        self.racing_insert().await?;
        let racing = self
            .race_next_batch_on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(name) = racing
            && let Some(other) = self.inner.incident(&name).await?
        {
            let mut value = other.value;
            value.updated_at = Some(OffsetDateTime::now_utc());
            self.inner
                .put_incident(&value, dss_core::state::Precondition::Matches(other.etag))
                .await?;
        }
        self.injected_crash()?;
        self.inner.put_incidents(items).await
    }
    async fn tenant_health(
        &self,
        t: &TenantId,
    ) -> Result<Option<dss_core::state::TenantHealth>, dss_core::state::StateError> {
        self.inner.tenant_health(t).await
    }
    async fn put_tenant_health(
        &self,
        t: &TenantId,
        v: &dss_core::state::TenantHealth,
    ) -> Result<(), dss_core::state::StateError> {
        self.inner.put_tenant_health(t, v).await
    }
    async fn failed_incidents(
        &self,
        limit: usize,
    ) -> Result<Vec<dss_core::state::IncidentState>, dss_core::state::StateError> {
        self.inner.failed_incidents(limit).await
    }
}
