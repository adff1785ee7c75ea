//! The demo's SentinelWebhook step: a Sentinel analyst closes an incident, the playbook's call
//! (the trigger body the Sentinel simulator renders, with the secret) goes through the fake host
//! to SentinelWebhook, and the close is in Defender when the call returns; the time it took is
//! printed. Then hostile calls (a wrong secret, a 5 MB body) are refused and write nothing.

use super::check::Pair;
use super::setup::System;
use crate::domain::{DefenderStatus, SentinelStatus, TenantId};
use dss_fake_host::{HttpCall, HttpResponse};
use dss_simulators::SentinelAction;
use std::time::Instant;

/// A playbook call carrying `secret`.
fn call(body: String, secret: &str) -> HttpCall {
    HttpCall::new("POST")
        .query("code", "function-key")
        .header("Content-Type", "application/json")
        .header("X-Sync-Secret", secret)
        .body(body)
}

fn error_of(res: &HttpResponse) -> String {
    res.json()
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| res.body.clone())
}

/// Runs the step; `true` when the close reached Defender and every hostile call was refused.
pub async fn run(sys: &System, tenants: &[TenantId], pairs: &[Pair]) -> anyhow::Result<bool> {
    let Some(p) = pairs.iter().find(|p| {
        p.defender.status == DefenderStatus::Active
            && p.sentinel
                .as_ref()
                .is_some_and(|s| s.status != SentinelStatus::Closed)
    }) else {
        println!("  (no open incident left to close in Sentinel)");
        return Ok(true);
    };
    let (Some(s), Some(tenant)) = (&p.sentinel, tenants.get(p.tenant_no - 1)) else {
        return Ok(true);
    };
    let number = s.incident_number.unwrap_or_default();
    let name = s.name.to_string();
    let body = sys
        .sims
        .sentinel_action(
            &name,
            SentinelAction::SetStatus {
                status: "Closed".into(),
                classification: Some("TruePositive".into()),
                classification_reason: Some("SuspiciousActivity".into()),
                classification_comment: Some("Closed in Sentinel (demo)".into()),
            },
        )
        .map_err(|e| anyhow::anyhow!("closing S #{number} in Sentinel: {e}"))?
        .to_string();
    println!("  an analyst closes S #{number} in Sentinel as TruePositive/SuspiciousActivity");
    sys.sims.reset_counters();

    let secret = &sys.webhook_secret;
    let started = Instant::now();
    let res = sys
        .host
        .invoke_http("SentinelWebhook", &call(body.clone(), secret))
        .await?;
    let took = started.elapsed();
    let d = sys
        .sims
        .defender_incident(tenant.as_str(), p.defender.id.as_str())
        .unwrap_or_default();
    let (status, class) = (
        d["status"].as_str().unwrap_or("?"),
        d["classification"].as_str().unwrap_or("?"),
    );
    let result = res
        .json()
        .ok()
        .and_then(|v| v["result"].as_str().map(str::to_owned))
        .unwrap_or_default();
    println!(
        "  playbook → SentinelWebhook: HTTP {} {result} in {:.1} ms (through the fake host)",
        res.status,
        took.as_secs_f64() * 1000.0
    );
    println!(
        "  D{} #{} in Defender is now {status} / {class}",
        p.tenant_no, p.defender.id
    );
    let mut ok = res.status == 200 && status == "resolved" && class == "truePositive";

    let replay = sys
        .host
        .invoke_http("SentinelWebhook", &call(body.clone(), secret))
        .await?;
    println!(
        "  the same call again (a replay): HTTP {} {}",
        replay.status,
        replay
            .json()
            .ok()
            .and_then(|v| v["result"].as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    ok &= replay.status == 200;

    let writes_before = graph_writes(sys);
    let hostile = [
        (
            "a wrong X-Sync-Secret",
            call(body.clone(), "not-the-secret-at-all"),
        ),
        ("a 5 MB body", call("x".repeat(5_000_000), secret)),
    ];
    for (what, c) in hostile {
        let res = sys.host.invoke_http("SentinelWebhook", &c).await?;
        println!(
            "  hostile call with {what}: HTTP {}, {}",
            res.status,
            error_of(&res)
        );
        ok &= matches!(res.status, 401 | 413);
    }
    let wrote = graph_writes(sys) - writes_before;
    println!("  Defender writes by the replay and the hostile calls: {wrote}");
    ok &= wrote == 0;
    if !ok {
        println!("  ✗ the webhook step did not go as expected");
    }
    Ok(ok)
}

/// Graph writes (PATCH, POST) counted by the simulator since its last reset.
fn graph_writes(sys: &System) -> u64 {
    sys.sims
        .counters()
        .by_api
        .get("graph")
        .map(|ops| {
            ops.iter()
                .filter(|(op, _)| !op.starts_with("GET "))
                .map(|(_, n)| n.calls)
                .sum()
        })
        .unwrap_or(0)
}
