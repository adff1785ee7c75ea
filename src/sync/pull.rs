//! Pulling a tenant's incidents window by window and page by page: split windows holding more
//! than 500 incidents, fall back from `$expand=alerts` on 5xx, deliver the pages' incidents in
//! batches while the next pages are fetched, and say where the watermark must stop. A window
//! whose pages held fewer items than `@odata.count` (Graph has been seen to stop paging
//! silently), or one without a count that reached 500, is read again in halves; one that cannot
//! be split holds the watermark.

use super::cycle::{Outcome, TenantCycle};
use super::incident::IncidentSync;
use super::plan;
use super::report::Tally;
use super::retry_set::{Parked, RetrySet};
use crate::domain::records::Checkpoint;
use crate::domain::*;
use crate::ports::*;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use time::OffsetDateTime;

/// What a pull delivered, and the earliest instant not known to be delivered (if any).
#[derive(Debug, Default)]
pub(super) struct Pulled {
    pub hold: Option<OffsetDateTime>,
    pub delivered: Vec<(OffsetDateTime, String)>,
}

impl Pulled {
    fn hold_at(&mut self, t: OffsetDateTime) {
        self.hold = Some(self.hold.map_or(t, |h| h.min(t)));
    }
}

/// Graph pages (of 50) are delivered in batches of about this many incidents: a batch's states
/// are read and written with a few Table requests per partition, so bigger batches mean fewer,
/// fuller requests. Memory grows with them: two batches in flight and one being read.
pub(super) const DELIVERY_BATCH: usize = 200;
/// Batches delivered at the same time (while the next pages are fetched).
const BATCHES_IN_FLIGHT: usize = 2;

/// One delivered batch: what it delivered or held, and whether the pull may go on.
struct PageDone {
    out: Pulled,
    go_on: bool,
    /// Start of the batch's earliest window: held when the batch stops the pull, since the rest
    /// of that window is then not delivered.
    window_from: OffsetDateTime,
}

/// Incidents of pages read but not yet handed over for delivery. A batch fills across window
/// boundaries, so a window's last pages wait for the next window's first ones.
#[derive(Default)]
struct Pending {
    incidents: Vec<DefenderIncident>,
    pages: u64,
    /// Start of the earliest window the incidents come from (held if they are not delivered).
    from: Option<OffsetDateTime>,
}

impl Pending {
    fn add(&mut self, incidents: &mut Vec<DefenderIncident>, window_from: OffsetDateTime) {
        self.incidents.append(incidents);
        self.pages += 1;
        self.from = Some(self.from.map_or(window_from, |f| f.min(window_from)));
    }

    fn full(&self) -> bool {
        self.incidents.len() >= DELIVERY_BATCH
    }
}

/// Why a page could not be read.
enum PageError {
    /// `$expand=alerts` failed with a 5xx: read the window again without it.
    Fallback,
    Failed(DefenderError),
}

/// How paging a window ended.
#[derive(PartialEq, Eq)]
enum Leaf {
    Done,
    /// `$expand=alerts` was turned off: page the window again.
    Again,
}

/// What delivering a batch needs (all shared, so a batch in flight holds its own copy).
#[derive(Clone, Copy)]
pub(super) struct Delivery<'a> {
    pub defender: &'a dyn DefenderApi,
    pub cycle: &'a TenantCycle,
    pub incidents: &'a IncidentSync<'a>,
    pub retries: &'a RetrySet<'a>,
    pub parked: &'a Parked,
    /// Delivered at the watermark instant in an earlier cycle: skipped without a state read.
    pub at_watermark: Option<&'a Checkpoint>,
}

/// The pages read and the batches being delivered: what the pull owns while it runs.
struct InFlight<'a> {
    out: Pulled,
    batches: FuturesUnordered<BoxFuture<'a, PageDone>>,
    pending: Pending,
    /// False once a batch or a page stopped the pull.
    go_on: bool,
}

impl<'a> InFlight<'a> {
    fn merge(&mut self, done: PageDone) {
        self.out.delivered.extend(done.out.delivered);
        if let Some(t) = done.out.hold {
            self.out.hold_at(t);
        }
        if !done.go_on {
            self.out.hold_at(done.window_from);
            self.go_on = false;
        }
    }

    /// Awaits `fetch` while the batches in flight keep being delivered.
    async fn drive<T>(&mut self, fetch: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(fetch);
        loop {
            tokio::select! {
                r = &mut fetch => return r,
                Some(done) = self.batches.next(), if !self.batches.is_empty() => self.merge(done),
            }
        }
    }

    /// Hands the pending incidents over for delivery (nothing when no page is pending).
    fn hand_over(&mut self, delivery: Delivery<'a>, more: bool) {
        let taken = std::mem::take(&mut self.pending);
        if let Some(from) = taken.from {
            let batch = delivery.deliver(taken.incidents, taken.pages, more, from);
            self.batches.push(Box::pin(batch));
        }
    }

    /// Waits until fewer than `n` batches are in flight.
    async fn wait_below(&mut self, n: usize) {
        while self.batches.len() >= n {
            if let Some(done) = self.batches.next().await {
                self.merge(done);
            }
        }
    }
}

/// Pulls one tenant's window: owns the pages read and the batches in flight.
pub(super) struct Puller<'a> {
    delivery: Delivery<'a>,
    flight: InFlight<'a>,
    /// Items (incidents and unmappable ones) the pages of the current window held.
    read: u64,
    /// Incidents already delivered by this pull, as (`lastUpdateDateTime`, id): filled when a
    /// short window is read again, so its halves do not deliver them (and ship their alert
    /// rows) a second time. Empty, and never looked at, otherwise.
    reread: HashSet<(OffsetDateTime, String)>,
}

/// Counting a window failed: it holds the watermark and the pull stops.
struct CountFailed;

impl<'a> Puller<'a> {
    pub fn new(delivery: Delivery<'a>) -> Self {
        Self {
            delivery,
            flight: InFlight {
                out: Pulled::default(),
                batches: FuturesUnordered::new(),
                pending: Pending::default(),
                go_on: true,
            },
            read: 0,
            reread: HashSet::new(),
        }
    }

    /// Pulls every incident of `window`, splitting it while it holds more than 500.
    ///
    /// Pages are delivered in batches of about [`DELIVERY_BATCH`] incidents while the next ones
    /// are fetched, up to [`BATCHES_IN_FLIGHT`] batches at once. Window boundaries do not stop
    /// that: the next window is counted and read while the previous one's batches are being
    /// delivered, and its first pages fill the batch the previous window's last pages began.
    /// Delivery order does not matter to the checkpoint, which only needs every delivered id and
    /// the earliest hold (a batch not delivered holds the start of its earliest window).
    pub async fn run(mut self, window: IncidentWindow) -> Pulled {
        let mut stack = vec![window];
        while let Some(w) = stack.pop() {
            // Windows pop in time order: what is left starts at `w`.
            if !self.flight.go_on || self.stopped_at_deadline() {
                self.flight.out.hold_at(w.updated_from);
                break;
            }
            let Ok(count) = self.count(&w).await else {
                break;
            };
            if count == Some(0) {
                continue;
            }
            if count.is_some_and(|n| n > plan::MAX_WINDOW_INCIDENTS) {
                if let Some((a, b)) = plan::split_window(&w) {
                    stack.push(b);
                    stack.push(a);
                    continue;
                }
                tracing::warn!(
                    count,
                    message = "A window cannot be split further; paging it as far as Graph allows."
                );
            }
            while self.page_through(&w, count).await == Leaf::Again {}
            if !self.flight.go_on {
                self.flight.out.hold_at(w.updated_from);
            } else if let Some((a, b)) = self.short_window(&w, count).await {
                stack.push(b);
                stack.push(a);
            }
        }
        self.finish().await
    }

    /// Checks a window read to its end against its count (Graph has been seen to stop paging
    /// silently). A short one comes back in halves to read again, once the batches in flight
    /// are delivered (so no incident is delivered twice at once); one that cannot be split
    /// holds the watermark.
    async fn short_window(
        &mut self,
        w: &IncidentWindow,
        count: Option<u64>,
    ) -> Option<(IncidentWindow, IncidentWindow)> {
        if plan::judge_window(count, self.read) == plan::WindowRead::Complete {
            return None;
        }
        let read = self.read;
        let Some(halves) = plan::split_window(w) else {
            let counted = count.map_or("an unknown number".into(), |n| n.to_string());
            let cycle = self.delivery.cycle;
            cycle.tally.error(format!(
                "Graph served {read} of {counted} incidents of one instant; the watermark holds"
            ));
            self.flight.out.hold_at(w.updated_from);
            return None;
        };
        tracing::warn!(read, count = ?count, message = "A window came back short (or uncounted and full); reading it again in smaller windows.");
        self.flight.hand_over(self.delivery, true);
        self.flight.wait_below(1).await;
        self.reread
            .extend(self.flight.out.delivered.iter().cloned());
        Some(halves)
    }

    /// The last batch: delivered, unless the pull stopped on an error that forbids it; then
    /// what the batches in flight held.
    async fn finish(mut self) -> Pulled {
        if !self.flight.go_on {
            if let Some(from) = self.flight.pending.from {
                self.flight.out.hold_at(from);
            }
        } else {
            self.flight.hand_over(self.delivery, false);
        }
        self.flight.wait_below(1).await;
        self.flight.out
    }

    fn stopped_at_deadline(&mut self) -> bool {
        let cycle = self.delivery.cycle;
        if cycle.out_of_time() {
            cycle
                .tally
                .error("the cycle stopped at its deadline; the next one continues".into());
            return true;
        }
        false
    }

    /// How many incidents the window holds (`None`: Graph gave no count); a failed count holds
    /// the window.
    async fn count(&mut self, w: &IncidentWindow) -> Result<Option<u64>, CountFailed> {
        let cycle = self.delivery.cycle;
        let count = self.delivery.defender.count_incidents(&cycle.tenant, w);
        self.flight.drive(count).await.map_err(|e| {
            cycle.tally.error(format!("counting incidents: {e}"));
            self.flight.out.hold_at(w.updated_from);
            CountFailed
        })
    }

    /// Pages one window that holds at most 500 incidents, leaving its last batches in flight
    /// and its last pages pending. Stops the pull (the window then holds the watermark) when a
    /// page fails or a batch met an error that stops the cycle.
    async fn page_through(&mut self, w: &IncidentWindow, count: Option<u64>) -> Leaf {
        let (defender, cycle) = (self.delivery.defender, self.delivery.cycle);
        self.read = 0;
        let expand = cycle.expand.load(Ordering::Relaxed);
        let first = fetch(
            cycle,
            expand,
            defender.list_incidents(&cycle.tenant, w, expand),
        );
        let mut page = match self.flight.drive(first).await {
            Ok(p) => p,
            Err(PageError::Fallback) => return Leaf::Again,
            Err(PageError::Failed(e)) => return self.page_failed(w, &e),
        };
        loop {
            self.take_page(w, &mut page).await;
            // Whatever is still pending is held by `finish`.
            if !self.flight.go_on {
                return Leaf::Done;
            }
            // Uncounted: never page past what a window may hold (Graph refuses `$skip` beyond
            // it); `short_window` reads such a window again in halves.
            let full = count.is_none() && self.read >= plan::MAX_WINDOW_INCIDENTS;
            let Some(link) = page.next_link.take().filter(|_| !full) else {
                return Leaf::Done;
            };
            if self.stopped_at_deadline() {
                self.flight.go_on = false;
                return Leaf::Done;
            }
            let next = fetch(cycle, expand, defender.next_page(&cycle.tenant, &link));
            page = match self.flight.drive(next).await {
                Ok(p) => p,
                Err(e) => return self.next_page_failed(w, e).await,
            };
        }
    }

    /// A following page failed. What was read stays delivered. After a fallback the window is
    /// read again once the batches in flight are done (so no incident is delivered twice at
    /// once).
    async fn next_page_failed(&mut self, w: &IncidentWindow, e: PageError) -> Leaf {
        self.flight.hand_over(self.delivery, true);
        match e {
            PageError::Fallback => {
                self.flight.wait_below(1).await;
                if self.flight.go_on {
                    Leaf::Again
                } else {
                    Leaf::Done
                }
            }
            PageError::Failed(e) => self.page_failed(w, &e),
        }
    }

    /// A page's incidents join the pending batch, handed over once it is full.
    async fn take_page(&mut self, w: &IncidentWindow, page: &mut IncidentPage) {
        self.read += (page.incidents.len() + page.unmappable.len()) as u64;
        if !self.reread.is_empty() {
            let seen = &self.reread;
            page.incidents
                .retain(|i| !seen.contains(&(i.last_update, i.id.to_string())));
        }
        self.delivery
            .park_unmappable(w, std::mem::take(&mut page.unmappable))
            .await;
        self.flight.pending.add(&mut page.incidents, w.updated_from);
        if self.flight.pending.full() || self.delivery.cycle.out_of_time() {
            self.flight.hand_over(self.delivery, true);
            self.flight.wait_below(BATCHES_IN_FLIGHT).await;
        }
    }

    fn page_failed(&mut self, w: &IncidentWindow, e: &DefenderError) -> Leaf {
        tracing::warn!(error = %e, message = "A page of incidents failed; the watermark holds.");
        let cycle = self.delivery.cycle;
        cycle.tally.error(format!("reading incidents: {e}"));
        self.flight.out.hold_at(w.updated_from);
        self.flight.go_on = false;
        Leaf::Done
    }
}

/// A page, or why it could not be read.
async fn fetch(
    cycle: &TenantCycle,
    expand: bool,
    page: impl std::future::Future<Output = Result<IncidentPage, DefenderError>>,
) -> Result<IncidentPage, PageError> {
    match page.await {
        Ok(p) => Ok(p),
        // A 5xx (not a 429) the client's retries did not get past: the production stall other
        // connectors hit, `$expand=alerts` failing on big incidents.
        Err(e @ DefenderError::Transient(_)) if expand => {
            tracing::warn!(error = %e, message = "Listing with $expand=alerts failed; reading each incident with its alerts on its own.");
            cycle.expand.store(false, Ordering::Relaxed);
            Err(PageError::Fallback)
        }
        Err(e) => Err(PageError::Failed(e)),
    }
}

impl Delivery<'_> {
    /// Items of a page that Graph listed but the adapter could not map. One with a usable id is
    /// parked in the retry set (the watermark passes it; each cycle's retry `get_incident`
    /// fails the same way, with backoff, until the payload is fixed). One without a usable id
    /// cannot be retried: it is logged and counted as failed, and does not hold the watermark
    /// either (it would come back every cycle and pin it: the stall of invariant 2).
    async fn park_unmappable(&self, w: &IncidentWindow, items: Vec<(String, String)>) {
        let tally = &self.cycle.tally;
        Tally::add(&tally.seen, items.len() as u64);
        for (hint, error) in items {
            match DefenderIncidentId::parse(&hint) {
                // Already in the retry set: retried (and re-parked) at the start of this cycle.
                Ok(id) if self.parked.contains(&id) => {}
                // Its lastUpdateDateTime is unknown: the window start is a lower bound of it.
                Ok(id) => {
                    let error = format!("cannot be mapped: {error}");
                    self.retries.park(&id, w.updated_from, error, None).await
                }
                Err(_) => {
                    tracing::error!(incident_id = %hint, error = %error, message = "A Defender incident without a usable id cannot be mapped nor retried.");
                    Tally::add(&tally.failed, 1);
                    tally.error(format!("incident {hint}: cannot be mapped and has no usable id, so it cannot be retried: {error}"));
                }
            }
        }
    }

    /// Delivers the incidents of `pages` Graph pages as one batch; `go_on` false on an error
    /// that stops the tenant's cycle (credentials).
    async fn deliver(
        self,
        incidents: Vec<DefenderIncident>,
        pages: u64,
        more: bool,
        window_from: OffsetDateTime,
    ) -> PageDone {
        let count = incidents.len();
        let mut out = Pulled::default();
        let go_on = self.deliver_incidents(incidents, &mut out).await;
        let delivered = out.delivered.len();
        tracing::info!(
            pages,
            incidents = count,
            delivered,
            more,
            message = "Pages of incidents done."
        );
        self.cycle.batch_done(pages, count, delivered, more);
        PageDone {
            out,
            go_on,
            window_from,
        }
    }

    /// Counts the incidents seen and takes out those already delivered (at the watermark) or
    /// waiting in the retry set: they count as delivered. Returns the rest.
    fn skip_done(
        &self,
        incidents: Vec<DefenderIncident>,
        out: &mut Pulled,
    ) -> Vec<DefenderIncident> {
        let tally = &self.cycle.tally;
        Tally::add(&tally.seen, incidents.len() as u64);
        let mut work = Vec::with_capacity(incidents.len());
        for i in incidents {
            let id = i.id.to_string();
            let at_mark = self
                .at_watermark
                .is_some_and(|c| c.watermark == i.last_update && c.ids_at_watermark.contains(&id));
            if at_mark {
                Tally::add(&tally.unchanged, 1);
            }
            if at_mark || self.parked.waits(&i) {
                out.delivered.push((i.last_update, id));
            } else {
                work.push(i);
            }
        }
        work
    }

    /// Skips what is already delivered or waits in the retry set, syncs the rest, and records
    /// each outcome; false when the cycle must stop.
    async fn deliver_incidents(&self, incidents: Vec<DefenderIncident>, out: &mut Pulled) -> bool {
        let tally = &self.cycle.tally;
        let work = self.skip_done(incidents, out);
        let mut go_on = true;
        for (id, t, outcome) in self.incidents.sync_batch(work, false).await {
            match outcome {
                Outcome::Written | Outcome::Unchanged => {
                    if self.parked.contains(&id) {
                        Tally::add(&tally.cleared, 1);
                        self.retries.unpark(&id).await;
                    }
                    out.delivered.push((t, id.to_string()));
                }
                Outcome::Parked(msg) => {
                    self.retries.park(&id, t, msg, None).await;
                    out.delivered.push((t, id.to_string()));
                }
                Outcome::Held(_) => out.hold_at(t),
                Outcome::Fatal(_) => {
                    out.hold_at(t);
                    go_on = false;
                }
            }
        }
        go_on
    }
}
