//! The `sync` subcommand with the handler's settings: exit 0 after a completed cycle, non-zero
//! when a tenant cannot complete.

use super::common::*;
use super::health::UNCONSENTED;
use crate::support::world::World;
use dss_simulators::{DefenderAction, wellknown};
use std::collections::BTreeMap;
use std::process::Output;

async fn run_sync(env: BTreeMap<String, String>) -> Output {
    run(env, false).await
}

/// Runs `sync`; `terminal`: with stdout on a pseudo-terminal (util-linux `script`).
async fn run(env: BTreeMap<String, String>, terminal: bool) -> Output {
    let bin = env!("CARGO_BIN_EXE_defender-sentinel-sync");
    tokio::task::spawn_blocking(move || {
        let mut cmd = if terminal {
            let mut c = std::process::Command::new("script");
            c.args(["-qefc", &format!("'{bin}' sync"), "/dev/null"]);
            c
        } else {
            let mut c = std::process::Command::new(bin);
            c.arg("sync");
            c
        };
        cmd.env_clear().envs(env).output().expect("the binary runs")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn sync_exits_0_after_a_completed_cycle_and_non_zero_when_a_tenant_cannot_complete() {
    let world = World::start().await;
    let t = wellknown::TENANT_ID;
    let ids = world.sims.seed_capped(t, 4, 71, 2);
    // On a terminal: a progress line per page.
    let out = run(world.env.clone(), true).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("tenant {t}: 4 seen, 4 written")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "tenant {t}: page 1 done (4 incidents; 4 delivered so far)"
        )),
        "{stdout}"
    );
    for id in &ids {
        sentinel_of(&world, t, id);
    }
    assert_eq!(world.sims.sentinel_incidents().len(), 4);

    // Not a terminal: no progress lines; the change reaches Sentinel.
    act(
        &world,
        t,
        &ids[0],
        DefenderAction::SetSeverity {
            severity: "high".into(),
        },
    );
    let out = run_sync(world.env.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(" page "), "{stdout}");
    assert_eq!(
        sentinel_of(&world, t, &ids[0])["properties"]["severity"],
        "High"
    );

    let mut env = world.env.clone();
    env.insert("DEFENDER_TENANT_IDS".into(), format!("{t},{UNCONSENTED}"));
    let out = run_sync(env).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("tenant {UNCONSENTED}:")) && stdout.contains("NOT completed"),
        "{stdout}"
    );
}
