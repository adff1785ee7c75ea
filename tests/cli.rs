//! The command line of the README ("How it runs").
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

mod support;

use std::process::Command;

fn run(args: &[&str], port: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(support::handler_bin());
    cmd.args(args).env_clear();
    if let Some(p) = port {
        cmd.env("FUNCTIONS_CUSTOMHANDLER_PORT", p);
    }
    cmd.output().expect("runs")
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        &["--help"][..],
        &["serve", "--help"],
        &["sync", "--help"],
        &["check", "--help"],
        &["demo", "--help"],
    ] {
        let out = run(sub, None);
        assert!(out.status.success(), "{sub:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{sub:?}"
        );
    }
}

#[test]
fn no_subcommand_and_no_port_prints_help_and_fails() {
    let out = run(&[], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("serve"));
}

#[test]
fn no_subcommand_with_the_host_port_serves_and_validates_settings() {
    // With the port set but no settings, it tries to serve and stops naming what is missing.
    let out = run(&[], Some("1"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("AZURE_TENANT_ID") && stderr.contains("SENTINEL_SUBSCRIPTION_ID"),
        "{stderr}"
    );
}

#[test]
fn serve_without_a_port_names_the_variable() {
    let out = run(&["serve"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FUNCTIONS_CUSTOMHANDLER_PORT"));
}

#[test]
fn sync_with_missing_settings_exits_non_zero_naming_each() {
    let out = run(&["sync"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for setting in [
        "AZURE_TENANT_ID",
        "SENTINEL_SUBSCRIPTION_ID",
        "SENTINEL_RESOURCE_GROUP",
        "SENTINEL_WORKSPACE_NAME",
    ] {
        assert!(err.contains(setting), "{setting} not named in: {err}");
    }
}

/// A build without the `demo` feature (the deployed package) keeps the subcommand and says
/// plainly that it has no demo.
#[cfg(not(feature = "demo"))]
#[test]
fn demo_in_a_build_without_it_says_so() {
    let out = run(&["demo"], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("this build has no demo"), "{stderr}");
}

/// The handler's environment against fresh simulators (state in memory).
async fn sims_env() -> (
    dss_simulators::Simulators,
    tempfile::TempDir,
    Vec<(String, String)>,
) {
    sims_env_with(dss_simulators::SimConfig::default()).await
}

async fn sims_env_with(
    cfg: dss_simulators::SimConfig,
) -> (
    dss_simulators::Simulators,
    tempfile::TempDir,
    Vec<(String, String)>,
) {
    let sims = dss_simulators::Simulators::start(cfg)
        .await
        .expect("simulators start");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sims.cert_pem()).unwrap();
    let mut env = sims.handler_env(&ca.to_string_lossy());
    env.extend(
        [
            ("SYNC_STATE_STORE", "memory"),
            ("WEBHOOK_SECRET", "0123456789abcdef0123"),
            ("DEFENDER_SYNC_SCHEDULE", "0 */5 * * * *"),
            ("PATH", "/usr/bin:/bin"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    (sims, dir, env)
}

async fn run_with(
    args: &'static [&'static str],
    env: Vec<(String, String)>,
) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(support::handler_bin())
            .args(args)
            .env_clear()
            .envs(env)
            .output()
            .expect("runs")
    })
    .await
    .unwrap()
}

/// Every request the simulators saw (but Entra's) is a call of `adapters::calls::CALLS`: same
/// API, same method, and its path template ends with the simulator's route.
fn assert_requests_are_listed(sims: &dss_simulators::Simulators) {
    use defender_sentinel_sync::adapters::calls::{CALLS, Upstream};
    let normalize = |p: &str| {
        let p = p.split('?').next().unwrap_or(p);
        let mut out = String::new();
        let mut in_brace = false;
        for c in p.chars() {
            match c {
                '{' => {
                    in_brace = true;
                    out.push_str("{}");
                }
                '}' => in_brace = false,
                _ if !in_brace => out.push(c),
                _ => {}
            }
        }
        out
    };
    let counters = sims.counters();
    let mut seen = 0;
    for (api, ops) in &counters.by_api {
        let upstream = match api.as_str() {
            "graph" => Upstream::Graph,
            "arm" => Upstream::Arm,
            "logs" => Upstream::Logs,
            _ => continue,
        };
        for op in ops.keys() {
            seen += 1;
            let (method, route) = op.split_once(' ').unwrap();
            let route = normalize(route);
            assert!(
                CALLS.iter().any(|c| c.upstream == upstream
                    && c.method == method
                    && normalize(c.path).ends_with(&route)),
                "{api} {op}: not in adapters::calls::CALLS"
            );
        }
    }
    assert!(seen >= 3, "{counters:?}");
}

/// With `SYNC_LOG_FORMAT=json` (the default under the Functions host) every log line is one
/// JSON object: the per-tenant line carries its tenant and its span, and the cycle's summary
/// line carries the figures the saved queries in infra/ read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_fields_and_one_summary_line_per_cycle() {
    let (sims, _dir, mut env) = sims_env().await;
    sims.seed(dss_simulators::wellknown::TENANT_ID, 3, 7);
    env.push(("SYNC_LOG_FORMAT".into(), "json".into()));
    let out = run_with(&["sync"], env).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    let logs: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{') && l.contains("\"level\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summaries: Vec<_> = logs
        .iter()
        .filter(|l| l["message"] == "Cycle summary.")
        .collect();
    assert_eq!(summaries.len(), 1, "{stdout}");
    let s = summaries[0];
    assert_eq!(s["level"], "INFO");
    // 3 Defender incidents pulled, then the same 3 listed again by the Sentinel poll.
    assert_eq!(s["seen"], 6, "{s}");
    assert_eq!(s["written"], 3, "{s}");
    assert_eq!(s["failed"], 0);
    assert_eq!(s["parked"], 0);
    assert_eq!(s["throttled"], 0);
    assert_eq!(s["tenants"], 2);
    assert_eq!(s["outcome"], "completed");
    assert_eq!(s["direction"], "both");
    assert!(s["lag_seconds"].is_u64(), "{s}");
    let tenant_line = logs
        .iter()
        .find(|l| {
            l["message"] == "Forward cycle finished."
                && l["tenant"] == dss_simulators::wellknown::TENANT_ID
        })
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(tenant_line["seen"], 3);
    // Lines inside the tenant's cycle carry its span (incidents' lines carry an `incident`
    // span with `incident_id` the same way).
    assert!(
        logs.iter().any(|l| l["spans"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "forward_cycle"
                && s["tenant"] == dss_simulators::wellknown::TENANT_ID))),
        "no line carries the forward_cycle span: {stdout}"
    );
    assert_requests_are_listed(&sims);
    sims.shutdown().await;
}

/// `check` against the simulators: every line OK and exit 0; then each API refusing with 403
/// (a missing grant, `Fault::Forbidden`) makes its line name the permission or role to grant,
/// and the exit code non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_each_missing_permission_and_fails_until_all_pass() {
    use dss_simulators::{Api, Fault, FaultPlan};
    let (sims, _dir, env) = sims_env().await;
    let run_check = |env: Vec<(String, String)>| run_with(&["check"], env);

    let out = run_check(env.clone()).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("tenant "))
        .collect();
    // Two Defender tenants, users, ARM, Logs, the (memory) state table.
    assert_eq!(lines.len(), 6, "{stdout}");
    assert_eq!(
        lines.iter().filter(|l| l.ends_with("| OK")).count(),
        5,
        "{stdout}"
    );
    assert!(
        stdout.contains("skipped: SYNC_STATE_STORE=memory"),
        "{stdout}"
    );
    for tenant in [
        dss_simulators::wellknown::TENANT_ID,
        dss_simulators::wellknown::TENANT_ID_2,
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!(
                "tenant {tenant} | Microsoft Graph: Defender incidents | OK"
            ))),
            "{stdout}"
        );
    }

    let cases = [
        (
            Api::Graph,
            "/security/incidents",
            "SecurityIncident.ReadWrite.All",
            2,
        ),
        (Api::Graph, "/users/", "User.Read.All", 1),
        (
            Api::Arm,
            "Microsoft.SecurityInsights",
            "Microsoft Sentinel Contributor",
            1,
        ),
        (
            Api::Logs,
            "dataCollectionRules",
            "Monitoring Metrics Publisher",
            1,
        ),
    ];
    for (api, path, permission, count) in cases {
        sims.set_faults(api, FaultPlan::rate(Fault::Forbidden, 1.0).for_path(path));
        let out = run_check(env.clone()).await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(out.status.code(), Some(1), "{permission}: {stdout}");
        let missing: Vec<&str> = stdout
            .lines()
            .filter(|l| l.contains("| MISSING "))
            .collect();
        assert_eq!(missing.len(), count, "{permission}: {stdout}");
        assert!(
            missing
                .iter()
                .all(|l| l.contains(&format!("MISSING {permission} "))),
            "{permission}: {stdout}"
        );
        sims.set_faults(api, FaultPlan::default());
    }
    sims.shutdown().await;
}

/// An MSSP app not consented in one of the Defender tenants: that tenant's line names the
/// permission to consent there, with Entra's error; the other tenant is OK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_a_defender_tenant_without_consent() {
    use dss_simulators::wellknown::{TENANT_ID, TENANT_ID_2};
    let mut cfg = dss_simulators::SimConfig::default();
    cfg.apps[0].tenants.retain(|t| t != TENANT_ID_2);
    let (sims, _dir, env) = sims_env_with(cfg).await;
    let out = run_with(&["check"], env).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = |tenant: &str| {
        stdout
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "tenant {tenant} | Microsoft Graph: Defender incidents"
                ))
            })
            .unwrap_or_else(|| panic!("{stdout}"))
            .to_owned()
    };
    assert!(line(TENANT_ID).ends_with("| OK"), "{stdout}");
    let missing = line(TENANT_ID_2);
    assert!(
        missing
            .contains("MISSING SecurityIncident.ReadWrite.All (grant it on each Defender tenant"),
        "{missing}"
    );
    assert!(missing.contains("AADSTS700016"), "{missing}");
    sims.shutdown().await;
}

/// Consented with `SecurityIncident.Read.All` only (the token's `roles` claim): the reads pass,
/// but the line names `SecurityIncident.ReadWrite.All` (writes would be refused) and the
/// user look-ups name `User.Read.All`. With both granted, everything passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_the_application_permissions_from_the_token() {
    let mut cfg = dss_simulators::SimConfig::default();
    let app = cfg.apps[0].client_id.clone();
    cfg.app_roles
        .insert(app.clone(), vec!["SecurityIncident.Read.All".into()]);
    let (sims, _dir, env) = sims_env_with(cfg).await;
    let out = run_with(&["check"], env).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let missing: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("| MISSING "))
        .collect();
    assert_eq!(missing.len(), 3, "{stdout}");
    assert_eq!(
        missing
            .iter()
            .filter(
                |l| l.contains("Defender incidents | MISSING SecurityIncident.ReadWrite.All ")
                    && l.contains("SecurityIncident.Read.All")
            )
            .count(),
        2,
        "{stdout}"
    );
    assert!(
        missing
            .iter()
            .any(|l| l.contains("user look-ups (owners) | MISSING User.Read.All ")),
        "{stdout}"
    );
    sims.shutdown().await;

    let mut cfg = dss_simulators::SimConfig::default();
    cfg.app_roles.insert(
        app,
        vec![
            "SecurityIncident.ReadWrite.All".into(),
            "User.Read.All".into(),
        ],
    );
    let (sims, _dir, env) = sims_env_with(cfg).await;
    let out = run_with(&["check"], env).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    sims.shutdown().await;
}
