//! Under the Functions host the handler logs JSON lines, and runs the permission self-check
//! once after startup (`SYNC_STARTUP_CHECK`), logging a warning that names each missing
//! permission.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

mod support;

use dss_fake_host::FakeHost;
use dss_simulators::{Api, Fault, FaultPlan, SimConfig, Simulators};
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_checks_its_permissions_after_startup_and_logs_json() {
    let sims = Simulators::start(SimConfig::default())
        .await
        .expect("simulators start");
    sims.set_faults(Api::Arm, FaultPlan::rate(Fault::Forbidden, 1.0));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sims.cert_pem()).unwrap();
    let app = support::staged_app();
    let mut spec = support::spec(app.path());
    for (k, v) in sims.handler_env(&ca.to_string_lossy()) {
        spec.env.insert(k, v);
    }
    // Loopback endpoints leave the check off by default; switch it on.
    spec.env.insert("SYNC_STARTUP_CHECK".into(), "true".into());
    let host = FakeHost::start(spec).await.expect("handler starts");

    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..100 {
        lines = host
            .output()
            .stdout
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let checks = lines
            .iter()
            .filter(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Self-check"))
            })
            .count();
        if checks >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let checks: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Self-check"))
        })
        .collect();
    // Two Defender tenants, user look-ups, ARM, Logs, the state table (memory: skipped).
    assert_eq!(checks.len(), 6, "{lines:#?}");
    let warnings: Vec<&&Value> = checks.iter().filter(|l| l["level"] == "WARN").collect();
    assert_eq!(warnings.len(), 1, "{checks:#?}");
    let line = warnings[0]["line"].as_str().unwrap();
    assert!(
        line.contains("MISSING Microsoft Sentinel Contributor"),
        "{line}"
    );
    assert_eq!(
        warnings[0]["api"],
        "Azure Resource Manager: Sentinel incidents"
    );
    assert!(
        checks
            .iter()
            .filter(|l| l["level"] == "INFO")
            .all(|l| l["line"].as_str().unwrap().ends_with("| OK")
                || l["line"].as_str().unwrap().contains("skipped")),
        "{checks:#?}"
    );
    drop(host);
    sims.shutdown().await;
}
