//! Two-way convergence under faults (issue 16, `docs/reliability.md`): a seeded, reproducible
//! schedule of rounds in which analysts change the same incidents in Defender and in Sentinel,
//! `DefenderSync` cycles run, the playbook's webhooks are lost, replayed and reordered, and
//! faults hit every upstream (429 storms, 5xx bursts, resets before and after apply, slow
//! answers, token endpoint failures), Azurite restarts and the handler is SIGKILLed mid-cycle.
//! When the faults stop, a few cycles must converge; then the simulators' ground truth must show
//! both sides agreeing, no incident or comment lost or duplicated, every alert shipped, the
//! checkpoint past every update, and one more cycle writing nothing anywhere.
//!
//! `DSS_CONVERGE_SEED=<n>` replays one seed; `DSS_CONVERGE_SEEDS=<k>` runs `k` seeds from the
//! base seed (or from `DSS_CONVERGE_SEED`); `DSS_CONVERGE_ROUNDS=<r>` sets the rounds per seed.
//! Without them the test runs the CI-sized default (a few seeds of a few rounds).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

#[path = "e2e_converge/check.rs"]
mod check;
#[path = "e2e_converge/driver.rs"]
mod driver;
#[path = "e2e_faults/invariants.rs"]
#[allow(dead_code)]
mod invariants;

use driver::{Figures, run_seed};

/// The first seed of the default run.
const BASE_SEED: u64 = 1601;
/// Seeds and rounds of the default (CI) run.
const CI_SEEDS: u64 = 3;
const CI_ROUNDS: usize = 5;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_rounds_of_two_way_changes_under_faults_converge_with_nothing_lost_or_duplicated() {
    let first = env_u64("DSS_CONVERGE_SEED").unwrap_or(BASE_SEED);
    let seeds =
        env_u64("DSS_CONVERGE_SEEDS").unwrap_or(if std::env::var("DSS_CONVERGE_SEED").is_ok() {
            1
        } else {
            CI_SEEDS
        });
    let rounds = env_u64("DSS_CONVERGE_ROUNDS").map_or(CI_ROUNDS, |r| r as usize);
    println!(
        "converge: seeds {first}..{} × {rounds} rounds",
        first + seeds
    );
    let started = std::time::Instant::now();
    let mut all = Figures::default();
    for seed in first..first + seeds {
        println!("converge: seed {seed} (replay: DSS_CONVERGE_SEED={seed})");
        let f = run_seed(seed, rounds).await;
        println!("converge: {}", f.line());
        all.add(&f);
    }
    println!(
        "converge: TOTAL {} in {:.0} s",
        all.line(),
        started.elapsed().as_secs_f64()
    );
}
