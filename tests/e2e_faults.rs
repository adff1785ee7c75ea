//! Robustness end to end (issue 5, `docs/sync-model.md`): the built handler under the fake
//! Functions host, against the simulators with faults, throttling, crashes, deadlines and
//! concurrent invocations; state in Azurite. Each test ends by checking the invariants
//! (`e2e_faults/invariants.rs`) and an idle cycle.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

#[path = "e2e_faults/chaos.rs"]
mod chaos;
#[path = "e2e_faults/invariants.rs"]
mod invariants;
#[path = "e2e_faults/paging.rs"]
mod paging;
#[path = "e2e_faults/retry.rs"]
mod retry;

use dss_simulators::{DefenderAction, Simulators, wellknown};
use support::world::{World, WorldOptions};

/// A world pulling one Defender tenant (most tests need only one), with extra settings.
async fn one_tenant(extra: &[(&str, &str)]) -> World {
    let mut env = vec![(
        "DEFENDER_TENANT_IDS".to_owned(),
        wellknown::TENANT_ID.to_owned(),
    )];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    World::start_with(WorldOptions {
        env,
        ..WorldOptions::default()
    })
    .await
}

/// Seeds `n` light incidents (at most `max_alerts` alerts) and gives every third one a comment
/// (so comment de-duplication is exercised; a comment moves lastUpdateDateTime to now).
fn seed_with_comments(sims: &Simulators, n: usize, seed: u64, max_alerts: usize) -> Vec<String> {
    let ids = sims.seed_capped(wellknown::TENANT_ID, n, seed, max_alerts);
    for (i, id) in ids.iter().enumerate() {
        if i % 3 == 0 {
            let comment = format!("Analyst note {i} on incident {id}: contained the host.");
            sims.defender_action(
                wellknown::TENANT_ID,
                id,
                DefenderAction::Comment { comment },
            )
            .unwrap();
        }
    }
    ids
}
