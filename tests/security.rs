//! Security end to end: the built handler under the fake Functions host, against the simulators,
//! with its state in Azurite.
//!   - hostile field values (control characters, log-injection attempts with newlines and ANSI
//!     escapes, a 30,000+ character comment, RTL overrides, zero-width characters, an invalid
//!     date) neither crash the cycle nor corrupt the logs: every stdout line is one event;
//!   - a full run (sync, analyst actions, a cycle with token failures and 5xx, SyncHealth and
//!     the webhook called with the function key and a shared secret) logs no secret, key or
//!     token: the seeded secret values and JWT-shaped strings are looked for in every line.
//!
//! (Links and redirects to other hosts: `tests/adapters_upstreams`. Lone surrogates in JSON
//! cannot pass the simulators, whose data is `serde_json::Value`: they are covered at the
//! adapters, `tests/adapters_upstreams`, and by the fuzz corpus.)
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use defender_sentinel_sync::domain::{DefenderIncidentId, SentinelIncidentName, TenantId};
use dss_fake_host::HttpCall;
use dss_simulators::{BadToken, DefenderAction, SentinelAction, wellknown};
use serde_json::{Value, json};
use support::world::{World, WorldOptions};

/// Text meant to break a line-oriented log: forged events after CR/LF (and the other line
/// breaks), ANSI escapes (clear screen, colours, a hyperlink), bidi overrides, zero-width and C0/C1
/// controls.
const HOSTILE: &str = "Ünïcødé 𝕏 \r\n2026-12-04T00:00:00.000000Z ERROR forged event=1\n\u{1b}[2J\u{1b}[31mred\u{1b}[0m \u{1b}]8;;https://evil.example\u{7}link\u{1b}]8;;\u{7} \u{202e}evil-rtl\u{202c} zero\u{200b}width\u{feff} nul\u{0} bell\u{7} c1\u{85}nel ls\u{2028}ps\u{2029} tab\tend";

/// The event the hostile text tries to forge.
const FORGED: &str = "2026-12-04T00:00:00.000000Z ERROR forged";

/// True when `line` is a whole JSON event (the JSON log format) or starts like a text event:
/// `2026-12-04T07:56:48.123456Z`.
fn is_event_start(line: &str) -> bool {
    if line.starts_with('{') {
        return serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object());
    }
    let b = line.as_bytes();
    b.len() > 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
}

/// Every stdout line is one whole event, with no terminal escape; nothing on stderr.
fn assert_one_line_per_event(world: &World) -> Vec<String> {
    let out = world.host.output();
    assert!(out.stderr.is_empty(), "stderr: {:?}", out.stderr);
    for line in &out.stdout {
        assert!(
            is_event_start(line),
            "a stdout line that is not an event of its own (log injection): {line:?}"
        );
        assert!(!line.contains('\u{1b}'), "a raw ANSI escape in: {line:?}");
        assert!(!line.contains('\r'), "a carriage return in: {line:?}");
        assert!(
            !line.starts_with(FORGED),
            "a forged event made it to a line of its own: {line:?}"
        );
    }
    out.stdout
}

fn hostile_incident(id: &str, base: &Value) -> Value {
    let mut d = base.clone();
    d["id"] = json!(id);
    d["incidentWebUrl"] = json!(format!(
        "https://security.microsoft.com/incidents/{id}?tid={}",
        wellknown::TENANT_ID
    ));
    d["displayName"] = json!(format!("title {HOSTILE}"));
    d["description"] = json!(format!("description {HOSTILE}"));
    d["assignedTo"] = json!("dana\n\u{1b}[31m@contoso.com");
    d["customTags"] = json!([format!("tag {HOSTILE}"), "\u{202e}gat", "zw\u{200b}"]);
    d["comments"] = json!([
        {
            "comment": format!("{}{HOSTILE}", "A long comment. ".repeat(2_000)),
            "createdByDisplayName": format!("author {HOSTILE}"),
            "createdDateTime": "2024-05-01T10:00:00Z"
        },
        {
            "comment": format!("short {HOSTILE}"),
            "createdByDisplayName": "x\ny",
            "createdDateTime": "2024-05-01T10:05:00Z"
        }
    ]);
    if let Some(alerts) = d["alerts"].as_array_mut() {
        for (i, a) in alerts.iter_mut().enumerate() {
            a["id"] = json!(format!("da{id}_{i}"));
            a["incidentId"] = json!(id);
            a["title"] = json!(format!("alert {HOSTILE}"));
            a["description"] = json!(HOSTILE);
        }
    }
    d
}

#[tokio::test]
async fn hostile_field_values_neither_crash_the_cycle_nor_corrupt_the_logs() {
    let world = World::start_with(WorldOptions {
        env: vec![("RUST_LOG".into(), "debug".into())],
        ..Default::default()
    })
    .await;
    let t = wellknown::TENANT_ID;
    world.sims.seed(t, 3, 5);
    let base = world.sims.defender_incidents(t)[0].clone();
    let hostile = hostile_incident("990001", &base);
    world.sims.insert_defender_incident(t, hostile).unwrap();
    // An invalid date whose text is a forged log line: the item cannot be mapped, and its error
    // (which names the value) is logged.
    let mut bad_date = hostile_incident("990002", &base);
    bad_date["createdDateTime"] = json!(format!("2024-13-99{HOSTILE}"));
    world.sims.insert_defender_incident(t, bad_date).unwrap();

    let reply = world.sync_ok().await;
    for l in &reply.logs {
        assert!(
            !l.contains('\n') && !l.contains('\r') && !l.contains('\u{1b}'),
            "an invocation log entry spans lines or carries escapes: {l:?}"
        );
    }
    let name = SentinelIncidentName::for_defender(
        &TenantId::parse(t).unwrap(),
        &DefenderIncidentId::parse("990001").unwrap(),
    )
    .to_string();
    let s = world
        .sims
        .sentinel_incident(&name)
        .expect("the hostile incident reached Sentinel");
    assert!(
        s["properties"]["title"]
            .as_str()
            .unwrap()
            .contains("forged event=1"),
        "{s}"
    );
    let comments = world.sims.sentinel_comments(&name);
    assert!(
        comments.iter().any(|c| c["properties"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("A long comment. A long comment.")),
        "the long comment was mirrored: {comments:?}"
    );

    // Analysts edit the hostile incident on both sides; the next cycle reads it back.
    world
        .sims
        .defender_action(
            t,
            "990001",
            DefenderAction::Comment {
                comment: format!("again {HOSTILE}"),
            },
        )
        .unwrap();
    world
        .sims
        .sentinel_action(
            &name,
            SentinelAction::Comment {
                message: format!("sentinel {HOSTILE}"),
            },
        )
        .unwrap();
    world.sync_ok().await;

    let lines = assert_one_line_per_event(&world);
    assert!(
        lines.iter().any(|l| l.contains("990002")),
        "the unmappable incident is logged"
    );
}

/// Strings that look like a JWT (`header.payload.` in base64url, header starting `{"`).
fn jwt_like(line: &str) -> Option<&str> {
    let start = line.find("eyJ")?;
    let rest = &line[start..];
    let token: &str = rest
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .next()
        .unwrap_or("");
    (token.split('.').filter(|p| p.len() >= 8).count() >= 2).then_some(token)
}

#[tokio::test]
async fn a_full_run_logs_no_secret_key_or_token() {
    const WEBHOOK_SECRET: &str = "seeded-webhook-secret-5b1f7a2e3c4d4e8f";
    const FUNCTION_KEY: &str = "seeded-function-key-9a0b1c2d3e4f5a6b";
    let world = World::start_with(WorldOptions {
        env: vec![
            ("RUST_LOG".into(), "debug".into()),
            ("WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into()),
        ],
        unset: vec!["WEBHOOK_AUTH".into()],
        ..Default::default()
    })
    .await;
    let t = wellknown::TENANT_ID;
    let ids = world.sims.seed(t, 6, 21);
    world.sims.seed(wellknown::TENANT_ID_2, 3, 22);
    world.sync_ok().await;

    world
        .sims
        .defender_action(
            t,
            &ids[0],
            DefenderAction::Resolve {
                classification: Some("truePositive".into()),
                determination: Some("malware".into()),
                resolving_comment: Some("done".into()),
            },
        )
        .unwrap();
    // Token failures, then a cycle that does its work.
    world.sims.queue_bad_tokens(BadToken::Expired, 2);
    world.sims.queue_bad_tokens(BadToken::WrongAudience, 2);
    let _ = world.sync().await;
    world.sync_ok().await;

    let health = world
        .host
        .invoke_http(
            "SyncHealth",
            &HttpCall::new("GET").query("code", FUNCTION_KEY),
        )
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    let webhook = HttpCall::new("POST")
        .query("code", FUNCTION_KEY)
        .header("X-Sync-Secret", WEBHOOK_SECRET)
        .header(
            "Authorization",
            &format!("Bearer {}", world.sims.token_for("api://sync", t).unwrap()),
        )
        .header("Content-Type", "application/json")
        .body(r#"{"object":{"name":"x"}}"#);
    let _ = world.host.invoke_http("SentinelWebhook", &webhook).await;

    let cs = world.azurite.connection_string();
    let account_key = cs
        .split(';')
        .find_map(|p| p.strip_prefix("AccountKey="))
        .expect("the connection string has a key")
        .to_owned();
    let secrets = [
        ("AZURE_CLIENT_SECRET", wellknown::CLIENT_SECRET.to_owned()),
        ("IDENTITY_HEADER", wellknown::IDENTITY_HEADER.to_owned()),
        ("WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("function key", FUNCTION_KEY.to_owned()),
        ("storage account key", account_key),
    ];
    let out = world.host.output();
    let lines: Vec<&String> = out.stdout.iter().chain(out.stderr.iter()).collect();
    assert!(lines.len() > 20, "a full run logs: {}", lines.len());
    for line in lines {
        for (what, secret) in &secrets {
            assert!(!line.contains(secret.as_str()), "{what} logged: {line}");
        }
        assert_eq!(jwt_like(line), None, "a token logged: {line}");
        assert!(
            !line.to_ascii_lowercase().contains("bearer ey"),
            "a bearer token logged: {line}"
        );
    }
}

#[test]
fn the_jwt_detector_finds_tokens() {
    assert!(
        jwt_like("x Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_x").is_some()
    );
    assert_eq!(jwt_like("nothing eyJ here"), None);
    assert!(is_event_start("2026-12-04T07:56:48.123456Z  INFO x"));
    assert!(!is_event_start("forged event=1"));
}

/// The demo (simulators, Azurite or memory, the handler under the fake host, analyst actions):
/// neither its own output nor the handler's log file holds a secret or a JWT, and the log file
/// is one line per event.
#[test]
fn the_demo_logs_no_secret_key_or_token() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_defender-sentinel-sync"))
        .args(["demo", "--incidents", "4", "--seed", "16"])
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let log_path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Handler log: "))
        .expect("the log path is printed");
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.lines().count() > 20, "{log}");
    let secrets = [
        wellknown::CLIENT_SECRET,
        wellknown::IDENTITY_HEADER,
        defender_sentinel_sync::adapters::table::connection::DEV_ACCOUNT_KEY,
    ];
    for (source, text) in [
        ("demo output", &*stdout),
        ("demo stderr", &*stderr),
        ("handler log", &*log),
    ] {
        for line in text.lines() {
            for secret in secrets {
                assert!(!line.contains(secret), "{source}: a secret logged: {line}");
            }
            assert_eq!(jwt_like(line), None, "{source}: a token logged: {line}");
        }
    }
    for line in log.lines() {
        assert!(
            is_event_start(line),
            "handler log: not one line per event: {line:?}"
        );
    }
    let _ = std::fs::remove_dir_all(std::path::Path::new(log_path).parent().unwrap());
}
