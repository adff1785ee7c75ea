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
