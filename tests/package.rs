//! The deployment zip: built by the documented command (scripts/package.sh), unpacked, its
//! layout, modes and function definitions checked against the README, and the packaged
//! binary started the way the host starts it. The packaged binary carries no test machinery:
//! none of the simulators', the fake host's or the demo's strings, and not the build machine's
//! path.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

mod support;

use dss_fake_host::{FakeHost, HandlerSpec, HttpCall, TimerCall};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const BIN: &str = "defender-sentinel-sync";

/// Strings only the `demo` feature brings in: the simulators (test CA, token endpoint, MSI
/// endpoint, control API), the fake Functions host (reply checks, Azurite) and the demo.
const DEMO_ONLY: &[&str] = &[
    "dss-simulators test CA",
    "Unauthorized: missing or invalid X-IDENTITY-HEADER",
    "The app requested an unsupported grant type.",
    "/control/defender/{tenant}/incidents",
    "empty body (the host would hang until functionTimeout)",
    "the handler is not running",
    "cannot start Azurite",
    "All synced fields agree on both sides",
];

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The check below means something: a build with the demo (this test's own binary, default
/// features) carries every one of those strings.
#[cfg(feature = "demo")]
#[test]
fn a_build_with_the_demo_carries_the_simulator_strings() {
    let bin = std::fs::read(support::handler_bin()).expect("the test build of the binary");
    let missing: Vec<&str> = DEMO_ONLY
        .iter()
        .copied()
        .filter(|s| !contains(&bin, s))
        .collect();
    assert!(missing.is_empty(), "not in the demo build: {missing:?}");
}

fn build_zip(out: &Path) -> std::path::PathBuf {
    let status = std::process::Command::new(support::repo().join("scripts/package.sh"))
        .env("PACKAGE_OUT_DIR", out)
        .status()
        .expect("scripts/package.sh runs");
    assert!(status.success(), "scripts/package.sh failed");
    out.join(format!("{BIN}.zip"))
}

/// Unpacks every file with its stored Unix mode; returns (name → mode).
fn unpack(zip_path: &Path, dest: &Path) -> Vec<(String, u32)> {
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(zip_path).expect("zip")).expect("zip parses");
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("entry");
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_owned();
        let mode = entry.unix_mode().expect("zip stores Unix modes") & 0o7777;
        let path = dest.join(&name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read entry");
        std::fs::write(&path, bytes).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        files.push((name, mode));
    }
    files
}

/// x86-64 ELF with no program interpreter (static, or static-pie).
fn assert_static_x86_64_elf(bytes: &[u8]) {
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(bytes[4], 2, "64-bit");
    assert_eq!(
        u16::from_le_bytes([bytes[0x12], bytes[0x13]]),
        0x3e,
        "x86-64"
    );
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let phentsize = u16::from_le_bytes([bytes[0x36], bytes[0x37]]) as usize;
    let phnum = u16::from_le_bytes([bytes[0x38], bytes[0x39]]) as usize;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        assert_ne!(p_type, 3, "PT_INTERP: the binary is dynamically linked");
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("valid JSON")
}

fn assert_bindings(app: &Path) {
    let timer = read_json(&app.join("DefenderSync/function.json"));
    assert_eq!(
        timer["bindings"],
        json!([{"name": "timer", "type": "timerTrigger", "direction": "in", "schedule": "%DEFENDER_SYNC_SCHEDULE%", "runOnStartup": false, "useMonitor": true}])
    );
    assert!(
        timer.get("retry").is_none(),
        "a failed cycle must not be retried by the host"
    );
    for (name, method, route) in [
        ("SentinelWebhook", "post", "sentinel/webhook"),
        ("SyncHealth", "get", "sync/health"),
    ] {
        let f = read_json(&app.join(format!("{name}/function.json")));
        let b = &f["bindings"];
        assert_eq!(b.as_array().map(Vec::len), Some(2), "{name}");
        assert_eq!(
            (
                b[0]["name"].as_str(),
                b[0]["type"].as_str(),
                b[0]["direction"].as_str()
            ),
            (Some("req"), Some("httpTrigger"), Some("in")),
            "{name}"
        );
        assert_eq!(b[0]["authLevel"], "function", "{name}");
        assert_eq!(b[0]["methods"], json!([method]), "{name}");
        assert_eq!(b[0]["route"], route, "{name}");
        assert_eq!(
            b[1],
            json!({"name": "res", "type": "http", "direction": "out"}),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_zip_has_the_deployed_layout_and_its_binary_serves() {
    let out = tempfile::tempdir().expect("temp");
    let zip_path = build_zip(out.path());
    let app = tempfile::tempdir().expect("temp");
    let files = unpack(&zip_path, app.path());

    let names: BTreeSet<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let expected: BTreeSet<&str> = [
        BIN,
        "host.json",
        "DefenderSync/function.json",
        "SentinelWebhook/function.json",
        "SyncHealth/function.json",
    ]
    .into();
    assert_eq!(names, expected);
    for (name, mode) in &files {
        assert_eq!(
            *mode,
            if name == BIN { 0o755 } else { 0o644 },
            "mode of {name}"
        );
    }
    let binary = std::fs::read(app.path().join(BIN)).expect("binary");
    assert_static_x86_64_elf(&binary);
    let test_machinery: Vec<&str> = DEMO_ONLY
        .iter()
        .copied()
        .filter(|s| contains(&binary, s))
        .collect();
    assert!(
        test_machinery.is_empty(),
        "the packaged binary carries test machinery: {test_machinery:?}"
    );
    let repo = support::repo();
    assert!(
        !contains(&binary, &repo.to_string_lossy()),
        "the packaged binary names the build machine's path {}",
        repo.display()
    );
    let host = read_json(&app.path().join("host.json"));
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        BIN
    );
    assert!(
        host["customHandler"]["description"]
            .get("arguments")
            .is_none()
    );
    assert_eq!(host["version"], "2.0");
    assert_bindings(app.path());

    // Start it as the host would: executable from host.json, cwd = app root.
    let mut spec = HandlerSpec::from_app_root(app.path()).expect("host.json names the binary");
    assert_eq!(spec.program, app.path().join(BIN));
    spec.clear_env = true;
    for (k, v) in support::settings() {
        spec.env.insert(k.to_owned(), v);
    }
    let handler = FakeHost::start(spec)
        .await
        .expect("the packaged binary answers GET /");
    let health = handler
        .invoke_http("SyncHealth", &HttpCall::new("GET"))
        .await
        .expect("valid reply");
    assert_eq!(health.status, 200);
    assert_eq!(
        health.json().expect("json")["functionTimeoutSeconds"],
        600.0
    );
    handler
        .invoke_timer("DefenderSync", &TimerCall::default())
        .await
        .expect("valid timer reply");
}
