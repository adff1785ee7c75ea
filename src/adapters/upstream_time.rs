//! Time spent waiting on upstreams (Graph, ARM, Table Storage) by the current task, for the
//! webhook's figures: a call's own work is its wall time less this. Counted only inside
//! [`measure`]; elsewhere [`add`] does nothing.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

tokio::task_local! {
    static SPENT: Cell<Duration>;
}

/// Runs `f`, returning its output and the upstream time it spent (calls awaited in this task).
pub async fn measure<F: Future>(f: F) -> (F::Output, Duration) {
    SPENT
        .scope(Cell::new(Duration::ZERO), async {
            let out = f.await;
            (out, SPENT.with(Cell::get))
        })
        .await
}

/// Adds `d` to the current [`measure`], if any.
pub fn add(d: Duration) {
    let _ = SPENT.try_with(|c| c.set(c.get() + d));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn time_is_counted_only_inside_measure() {
        add(Duration::from_secs(1));
        let ((), spent) = measure(async {
            add(Duration::from_millis(3));
            add(Duration::from_millis(4));
        })
        .await;
        assert_eq!(spent, Duration::from_millis(7));
    }
}
