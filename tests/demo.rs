//! `defender-sentinel-sync demo` end to end: the built binary starts the simulators, Azurite
//! (or in-memory state) and itself as the handler under the fake host, and must report that both
//! sides agree.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

#[test]
fn demo_with_six_incidents_propagates_every_action_and_ends_in_agreement() {
    let out = Command::new(env!("CARGO_BIN_EXE_defender-sentinel-sync"))
        .args(["demo", "--incidents", "6", "--seed", "11"])
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("BEFORE the analyst actions"), "{stdout}");
    assert!(stdout.contains("AFTER the analyst actions"), "{stdout}");
    assert!(
        stdout.contains("All synced fields agree on both sides (6 incidents)."),
        "{stdout}"
    );
    // Seven Defender actions, each seen in Sentinel; five Sentinel actions, each seen in
    // Defender; one conflict, decided by the policy on both sides.
    assert_eq!(
        stdout.lines().filter(|l| l.ends_with(" ✓")).count(),
        13,
        "{stdout}"
    );
    assert!(
        stdout.contains("Sentinel analysts (reverse sync)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("latest-wins kept the later (Sentinel) tags → both sides from-sentinel"),
        "{stdout}"
    );
    assert!(!stdout.contains('✗'), "{stdout}");
    assert!(
        stdout.contains("→ S #") && stdout.contains("Closed TruePositive/SuspiciousActivity ✓"),
        "{stdout}"
    );
    // A Sentinel analyst's close reaches Defender through SentinelWebhook; hostile calls are
    // refused and write nothing.
    assert!(
        stdout.contains("playbook → SentinelWebhook: HTTP 200 applied in "),
        "{stdout}"
    );
    assert!(
        stdout.contains("is now resolved / truePositive"),
        "{stdout}"
    );
    assert!(stdout.contains("wrong X-Sync-Secret: HTTP 401"), "{stdout}");
    assert!(stdout.contains("5 MB body: HTTP 413"), "{stdout}");
    assert!(
        stdout.contains("Defender writes by the replay and the hostile calls: 0"),
        "{stdout}"
    );
    // Handler logs go to a file, not to the terminal.
    assert!(!stdout.contains("Forward cycle finished"), "{stdout}");
    let log = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Handler log: "))
        .expect("the log path is printed");
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("Forward cycle finished")
    );
    for line in stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "wider than 100 columns: {line}"
        );
    }
    let _ = std::fs::remove_dir_all(std::path::Path::new(log).parent().unwrap());
}

#[test]
fn demo_with_the_unified_target_agrees_and_the_webhook_applies_a_platform_change() {
    let out = Command::new(env!("CARGO_BIN_EXE_defender-sentinel-sync"))
        .args(["demo", "--target", "unified", "--incidents", "2"])
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("one each: yes ✓; holding two customers' alerts: 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("playbook → SentinelWebhook: HTTP 200 applied")
            && stdout.contains("has the comment: yes ✓"),
        "{stdout}"
    );
    assert!(stdout.contains("Both sides agree."), "{stdout}");
    assert!(!stdout.contains('✗'), "{stdout}");
}
