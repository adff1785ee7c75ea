//! Where one call's time goes, for the webhook's figures. A call's wall time is split into:
//! our code running (wall and thread CPU time inside the call's polls, outside the waits below),
//! waiting on upstreams (Graph, ARM, Table Storage: from sending a request to its answer's
//! headers, retries and limiter included), waiting for the per-incident lock, and the rest —
//! the task woken but not yet running (queued behind other tasks on the runtime, or its thread
//! waiting for a core) plus any other await. Only that split tells our work from queueing on a
//! loaded machine. Counted only inside [`measure`]; elsewhere [`wait`] records nothing.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

/// What a call waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Graph, ARM or Table Storage.
    Upstream,
    /// The per-incident lock (another call for the same incident is ahead).
    Lock,
    /// Our own work moved to a blocking thread (parsing a large envelope).
    Offloaded,
}

/// A call's time, split (see the module).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub elapsed: Duration,
    pub upstream: Duration,
    pub lock: Duration,
    /// Our code running on a blocking thread (wall time): our work, not a wait.
    pub offloaded: Duration,
    /// Our code running: wall time inside the call's polls, outside the waits.
    pub busy: Duration,
    /// The thread CPU time of `busy` (less than it when the OS took the core meanwhile).
    pub cpu: Duration,
    /// Involuntary context switches during `busy`: how often the OS took the core from the
    /// thread while it ran our code (`busy - cpu` is then the scheduler's, not our work).
    pub preempted: u64,
}

impl Split {
    /// The rest of the wall time: runnable but not running (the runtime's and the OS's
    /// scheduling), or awaiting something else.
    pub fn scheduler(&self) -> Duration {
        self.elapsed
            .saturating_sub(self.upstream + self.lock + self.offloaded + self.busy)
    }
}

#[derive(Default)]
struct Clock {
    upstream: Cell<Duration>,
    lock: Cell<Duration>,
    offloaded: Cell<Duration>,
    busy: Cell<Duration>,
    cpu: Cell<Duration>,
    preempted: Cell<u64>,
    /// Open waits (a wait inside another counts once, in the outer one).
    waiting: Cell<u32>,
    /// Start of the running segment (inside a poll, outside any wait).
    segment: Cell<Option<(Instant, ThreadTimes)>>,
}

impl Clock {
    fn start_segment(&self) {
        self.segment.set(Some((Instant::now(), thread_times())));
    }

    fn end_segment(&self) {
        if let Some((wall, start)) = self.segment.take() {
            let end = thread_times();
            self.busy.set(self.busy.get() + wall.elapsed());
            self.cpu
                .set(self.cpu.get() + end.cpu.saturating_sub(start.cpu));
            let switches = end.preempted.saturating_sub(start.preempted);
            self.preempted.set(self.preempted.get() + switches);
        }
    }
}

tokio::task_local! {
    static CLOCK: Clock;
}

/// Runs `f`, returning its output and where its time went (waits awaited in this task).
pub async fn measure<F: Future>(f: F) -> (F::Output, Split) {
    let started = Instant::now();
    CLOCK
        .scope(Clock::default(), async {
            let mut f = std::pin::pin!(f);
            let out = std::future::poll_fn(|cx| {
                let _ = CLOCK.try_with(|c| {
                    if c.waiting.get() == 0 {
                        c.start_segment();
                    }
                });
                let r = f.as_mut().poll(cx);
                let _ = CLOCK.try_with(Clock::end_segment);
                r
            })
            .await;
            let split = CLOCK
                .try_with(|c| Split {
                    elapsed: started.elapsed(),
                    upstream: c.upstream.get(),
                    lock: c.lock.get(),
                    offloaded: c.offloaded.get(),
                    busy: c.busy.get(),
                    cpu: c.cpu.get(),
                    preempted: c.preempted.get(),
                })
                .unwrap_or_default();
            (out, split)
        })
        .await
}

/// Marks a wait of the current [`measure`] (if any) until the guard is dropped.
pub fn wait(kind: Wait) -> WaitGuard {
    let outer = CLOCK
        .try_with(|c| {
            let n = c.waiting.get();
            if n == 0 {
                c.end_segment();
            }
            c.waiting.set(n + 1);
            n == 0
        })
        .ok();
    WaitGuard {
        kind,
        started: Instant::now(),
        outer,
    }
}

/// An open wait (see [`wait`]).
#[must_use = "the wait ends when the guard is dropped"]
pub struct WaitGuard {
    kind: Wait,
    started: Instant,
    /// `None` outside a [`measure`]; `Some(false)` for a wait inside another.
    outer: Option<bool>,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        let Some(outer) = self.outer else { return };
        let waited = self.started.elapsed();
        let _ = CLOCK.try_with(|c| {
            let n = c.waiting.get().saturating_sub(1);
            c.waiting.set(n);
            if outer {
                let total = match self.kind {
                    Wait::Upstream => &c.upstream,
                    Wait::Lock => &c.lock,
                    Wait::Offloaded => &c.offloaded,
                };
                total.set(total.get() + waited);
            }
            if n == 0 {
                c.start_segment();
            }
        });
    }
}

/// The calling thread's CPU time and involuntary context switches so far.
#[derive(Clone, Copy, Default)]
struct ThreadTimes {
    cpu: Duration,
    preempted: u64,
}

/// Zero where they cannot be read.
#[cfg(target_os = "linux")]
fn thread_times() -> ThreadTimes {
    // SAFETY: both calls only write into the zeroed, valid out-parameters passed; the clock
    // id and `RUSAGE_THREAD` are constants Linux (glibc and musl) provides. std has no API
    // for a thread's CPU time or context switches.
    let (ts, usage) = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) != 0 {
            ts = std::mem::zeroed();
        }
        if libc::getrusage(libc::RUSAGE_THREAD, &mut usage) != 0 {
            usage = std::mem::zeroed();
        }
        (ts, usage)
    };
    ThreadTimes {
        cpu: Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        ),
        preempted: u64::try_from(usage.ru_nivcsw).unwrap_or(0),
    }
}

#[cfg(not(target_os = "linux"))]
fn thread_times() -> ThreadTimes {
    ThreadTimes::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let t = Instant::now();
        while t.elapsed() < d {
            std::hint::black_box(0u64);
        }
    }

    #[tokio::test]
    async fn waits_are_counted_only_inside_measure() {
        drop(wait(Wait::Upstream));
        let ((), split) = measure(async {
            {
                let _w = wait(Wait::Upstream);
                tokio::time::sleep(Duration::from_millis(30)).await;
                // A nested wait counts once, in the outer one.
                let _inner = wait(Wait::Upstream);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _l = wait(Wait::Lock);
            tokio::time::sleep(Duration::from_millis(20)).await;
        })
        .await;
        assert!(split.upstream >= Duration::from_millis(40), "{split:?}");
        assert!(split.upstream < Duration::from_millis(200), "{split:?}");
        assert!(split.lock >= Duration::from_millis(20), "{split:?}");
        assert!(split.lock < split.upstream, "{split:?}");
        assert!(split.busy < Duration::from_millis(10), "{split:?}");
        assert!(split.elapsed >= split.upstream + split.lock, "{split:?}");
    }

    #[tokio::test]
    async fn our_work_between_waits_is_busy_time_with_its_cpu() {
        let ((), split) = measure(async {
            spin(Duration::from_millis(20));
            {
                let _w = wait(Wait::Upstream);
                spin(Duration::from_millis(15)); // inside a wait: not ours
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            spin(Duration::from_millis(20));
        })
        .await;
        assert!(split.busy >= Duration::from_millis(40), "{split:?}");
        assert!(split.upstream >= Duration::from_millis(20), "{split:?}");
        // The spin inside the wait is upstream time only: counted as busy too, the two would
        // add up to more than the elapsed time. (Not a fixed ceiling on `busy`: the spins are
        // wall-clock, and a loaded machine preempts them.)
        assert!(
            split.busy + split.upstream <= split.elapsed + Duration::from_millis(1),
            "{split:?}"
        );
        #[cfg(target_os = "linux")]
        assert!(
            split.cpu > Duration::from_millis(10) && split.cpu <= split.busy,
            "{split:?}"
        );
    }
}
