//! Pulling a tenant's incidents window by window and page by page: split windows holding more
//! than 500 incidents, fall back from `$expand=alerts` on 5xx, deliver each page's incidents
//! with bounded concurrency, and say where the watermark must stop.

use super::forward::{ForwardSync, TenantCtx};
use super::incident::Outcome;
use super::plan;
use super::report::Tally;
use crate::domain::*;
use crate::ports::*;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
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

impl PageDone {
    fn merge_into(self, out: &mut Pulled) -> bool {
        out.delivered.extend(self.out.delivered);
        if let Some(t) = self.out.hold {
            out.hold_at(t);
        }
        if !self.go_on {
            out.hold_at(self.window_from);
        }
        self.go_on
    }
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

/// Awaits `fetch` while the batches in flight keep being delivered (and merged into `out`).
async fn drive<T>(
    fetch: impl std::future::Future<Output = T>,
    inflight: &mut FuturesUnordered<impl std::future::Future<Output = PageDone>>,
    out: &mut Pulled,
    go_on: &mut bool,
) -> T {
    tokio::pin!(fetch);
    loop {
        tokio::select! {
            r = &mut fetch => return r,
            Some(done) = inflight.next(), if !inflight.is_empty() => *go_on &= done.merge_into(out),
        }
    }
}

/// Why a page could not be read.
enum PageError {
    /// `$expand=alerts` failed with a 5xx: read the window again without it.
    Fallback,
    Failed(DefenderError),
}

impl ForwardSync {
    /// Pulls every incident of `window`, splitting it while it holds more than 500.
    ///
    /// Pages are delivered in batches of about [`DELIVERY_BATCH`] incidents while the next ones
    /// are fetched, up to [`BATCHES_IN_FLIGHT`] batches at once. Window boundaries do not stop
    /// that: the next window is counted and read while the previous one's batches are being
    /// delivered, and its first pages fill the batch the previous window's last pages began.
    /// Delivery order does not matter to the checkpoint, which only needs every delivered id and
    /// the earliest hold (a batch not delivered holds the start of its earliest window).
    pub(super) async fn pull(&self, ctx: &TenantCtx, window: IncidentWindow) -> Pulled {
        let mut out = Pulled::default();
        let mut inflight: FuturesUnordered<BoxFuture<'_, PageDone>> = FuturesUnordered::new();
        let mut pending = Pending::default();
        let mut go_on = true;
        let mut stack = vec![window];
        while let Some(w) = stack.pop() {
            // Windows pop in time order: what is left starts at `w`.
            if !go_on {
                out.hold_at(w.updated_from);
                break;
            }
            if ctx.out_of_time() {
                ctx.tally
                    .error("the cycle stopped at its deadline; the next one continues".into());
                out.hold_at(w.updated_from);
                break;
            }
            let count = drive(
                self.defender.count_incidents(&ctx.tenant, &w),
                &mut inflight,
                &mut out,
                &mut go_on,
            )
            .await;
            let count = match count {
                Ok(n) => n,
                Err(e) => {
                    ctx.tally.error(format!("counting incidents: {e}"));
                    out.hold_at(w.updated_from);
                    break;
                }
            };
            if count == 0 {
                continue;
            }
            if count > plan::MAX_WINDOW_INCIDENTS {
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
            self.pull_leaf(ctx, &w, &mut out, &mut inflight, &mut go_on, &mut pending)
                .await;
        }
        // The last batch: delivered, unless the pull stopped on an error that forbids it.
        if !go_on {
            if let Some(from) = pending.from {
                out.hold_at(from);
            }
        } else {
            inflight.extend(self.deliver_pending(ctx, &mut pending, false));
        }
        // What the last batches held is merged into `out`; nothing else is left to stop.
        while let Some(r) = inflight.next().await {
            r.merge_into(&mut out);
        }
        out
    }

    /// Hands the pending incidents over for delivery; `None` when no page is pending.
    fn deliver_pending<'a>(
        &'a self,
        ctx: &'a TenantCtx,
        pending: &mut Pending,
        more: bool,
    ) -> Option<BoxFuture<'a, PageDone>> {
        let taken = std::mem::take(pending);
        let from = taken.from?;
        Some(Box::pin(self.deliver_page(
            ctx,
            taken.incidents,
            taken.pages,
            more,
            from,
        )))
    }

    /// Pages one window that holds at most 500 incidents, leaving its last batches in
    /// `inflight` and its last pages in `pending`. Sets `go_on` false when the pull must stop
    /// (the window then holds the watermark).
    async fn pull_leaf<'a>(
        &'a self,
        ctx: &'a TenantCtx,
        w: &IncidentWindow,
        out: &mut Pulled,
        inflight: &mut FuturesUnordered<BoxFuture<'a, PageDone>>,
        go_on: &mut bool,
        pending: &mut Pending,
    ) {
        'restart: loop {
            let expand = ctx.expand.load(Ordering::Relaxed);
            let first = self.fetch(
                ctx,
                expand,
                self.defender.list_incidents(&ctx.tenant, w, expand),
            );
            let mut page = match drive(first, inflight, out, go_on).await {
                Ok(p) => p,
                Err(PageError::Fallback) => continue 'restart,
                Err(PageError::Failed(e)) => {
                    *go_on = self.page_failed(ctx, w, out, &e);
                    break;
                }
            };
            loop {
                self.park_unmappable(ctx, w, std::mem::take(&mut page.unmappable))
                    .await;
                pending.add(&mut page.incidents, w.updated_from);
                if pending.full() || ctx.out_of_time() {
                    inflight.extend(self.deliver_pending(ctx, pending, true));
                    while inflight.len() >= BATCHES_IN_FLIGHT {
                        if let Some(r) = inflight.next().await {
                            *go_on &= r.merge_into(out);
                        }
                    }
                }
                // Whatever is still pending is held by `pull`.
                if !*go_on {
                    break 'restart;
                }
                let Some(link) = page.next_link.take() else {
                    break 'restart;
                };
                if ctx.out_of_time() {
                    ctx.tally
                        .error("the cycle stopped at its deadline; the next one continues".into());
                    *go_on = false;
                    break 'restart;
                }
                let next = self.fetch(ctx, expand, self.defender.next_page(&ctx.tenant, &link));
                page = match drive(next, inflight, out, go_on).await {
                    Ok(p) => p,
                    // What was read stays delivered; the window is read again once the
                    // batches in flight are done (so no incident is delivered twice at once).
                    Err(PageError::Fallback) => {
                        inflight.extend(self.deliver_pending(ctx, pending, true));
                        while let Some(r) = inflight.next().await {
                            *go_on &= r.merge_into(out);
                        }
                        if !*go_on {
                            break 'restart;
                        }
                        continue 'restart;
                    }
                    Err(PageError::Failed(e)) => {
                        inflight.extend(self.deliver_pending(ctx, pending, true));
                        *go_on = self.page_failed(ctx, w, out, &e);
                        break 'restart;
                    }
                };
            }
        }
        if !*go_on {
            out.hold_at(w.updated_from);
        }
    }

    fn report_page(
        &self,
        ctx: &TenantCtx,
        pages: u64,
        incidents: usize,
        delivered: usize,
        more: bool,
    ) {
        let page = ctx.pages.fetch_add(pages, Ordering::Relaxed) + pages;
        let delivered =
            ctx.delivered.fetch_add(delivered as u64, Ordering::Relaxed) as usize + delivered;
        if let Some(progress) = &self.progress {
            progress(&super::forward::PageProgress {
                tenant: ctx.tenant.clone(),
                page,
                incidents,
                delivered,
                more,
            });
        }
    }

    fn page_failed(
        &self,
        ctx: &TenantCtx,
        w: &IncidentWindow,
        out: &mut Pulled,
        e: &DefenderError,
    ) -> bool {
        tracing::warn!(error = %e, message = "A page of incidents failed; the watermark holds.");
        ctx.tally.error(format!("reading incidents: {e}"));
        out.hold_at(w.updated_from);
        false
    }

    async fn fetch(
        &self,
        ctx: &TenantCtx,
        expand: bool,
        page: impl std::future::Future<Output = Result<IncidentPage, DefenderError>>,
    ) -> Result<IncidentPage, PageError> {
        match page.await {
            Ok(p) => Ok(p),
            // A 5xx (not a 429) the client's retries did not get past.
            Err(e @ DefenderError::Transient(_)) if expand => {
                // The production stall other connectors hit: `$expand=alerts` 5xx on big incidents.
                tracing::warn!(error = %e, message = "Listing with $expand=alerts failed; falling back to alerts_v2.");
                ctx.expand.store(false, Ordering::Relaxed);
                Err(PageError::Fallback)
            }
            Err(e) => Err(PageError::Failed(e)),
        }
    }

    /// Items of a page that Graph listed but the adapter could not map. One with a usable id is
    /// parked in the retry set (the watermark passes it; each cycle's retry `get_incident`
    /// fails the same way, with backoff, until the payload is fixed). One without a usable id
    /// cannot be retried: it is logged and counted as failed, and does not hold the watermark
    /// either (it would come back every cycle and pin it: the stall of invariant 2).
    async fn park_unmappable(
        &self,
        ctx: &TenantCtx,
        w: &IncidentWindow,
        items: Vec<(String, String)>,
    ) {
        Tally::add(&ctx.tally.seen, items.len() as u64);
        for (hint, error) in items {
            match DefenderIncidentId::parse(&hint) {
                // Already in the retry set: retried (and re-parked) at the start of this cycle.
                Ok(id) if ctx.parked.contains_key(id.as_str()) => {}
                // Its lastUpdateDateTime is unknown: the window start is a lower bound of it.
                Ok(id) => {
                    self.park(
                        ctx,
                        &id,
                        w.updated_from,
                        format!("cannot be mapped: {error}"),
                        None,
                    )
                    .await
                }
                Err(_) => {
                    tracing::error!(incident_id = %hint, error = %error, message = "A Defender incident without a usable id cannot be mapped nor retried.");
                    Tally::add(&ctx.tally.failed, 1);
                    ctx.tally.error(format!("incident {hint}: cannot be mapped and has no usable id, so it cannot be retried: {error}"));
                }
            }
        }
    }

    /// Delivers the incidents of `pages` Graph pages as one batch; `go_on` false on an error
    /// that stops the tenant's cycle (credentials).
    async fn deliver_page(
        &self,
        ctx: &TenantCtx,
        incidents: Vec<DefenderIncident>,
        pages: u64,
        more: bool,
        window_from: OffsetDateTime,
    ) -> PageDone {
        let count = incidents.len();
        let mut out = Pulled::default();
        let go_on = self.deliver_incidents(ctx, incidents, &mut out).await;
        tracing::info!(
            pages,
            incidents = count,
            delivered = out.delivered.len(),
            more,
            message = "Pages of incidents done."
        );
        self.report_page(ctx, pages, count, out.delivered.len(), more);
        PageDone {
            out,
            go_on,
            window_from,
        }
    }

    async fn deliver_incidents(
        &self,
        ctx: &TenantCtx,
        incidents: Vec<DefenderIncident>,
        out: &mut Pulled,
    ) -> bool {
        Tally::add(&ctx.tally.seen, incidents.len() as u64);
        let mut work = Vec::with_capacity(incidents.len());
        for i in incidents {
            let id = i.id.to_string();
            let at_mark = ctx
                .at_watermark
                .as_ref()
                .is_some_and(|c| c.watermark == i.last_update && c.ids_at_watermark.contains(&id));
            if at_mark {
                Tally::add(&ctx.tally.unchanged, 1);
            }
            // A parked incident waits for its backoff, unless Defender changed it since it was
            // parked: the change may well be the fix, so it is tried at once.
            let parked_unchanged = ctx.parked.get(&id).is_some_and(|t| i.last_update <= *t);
            if at_mark || parked_unchanged {
                out.delivered.push((i.last_update, id));
            } else {
                work.push(i);
            }
        }
        let outcomes = self.sync_batch(ctx, work, false).await;
        let mut go_on = true;
        for (id, t, outcome) in outcomes {
            match outcome {
                Outcome::Written | Outcome::Unchanged => {
                    if ctx.parked.contains_key(id.as_str()) {
                        Tally::add(&ctx.tally.cleared, 1);
                        self.unpark(ctx, &id).await;
                    }
                    out.delivered.push((t, id.to_string()));
                }
                Outcome::Parked(msg) => {
                    self.park(ctx, &id, t, msg, None).await;
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
