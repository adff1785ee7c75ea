//! The three functions of the README ("How it runs"). Each turns the envelope into a typed payload, calls
//! its plug-in, and always answers 200 with a JSON reply (see `envelope`).

use super::envelope::{InvocationReply, InvocationRequest};
use super::payload::{HttpRequestData, TimerInfo};
use super::plugins::HttpReply;
use super::{HostState, health};
use serde_json::{Value, json};

/// Binding names (`function-defs/*/function.json`).
const TIMER_BINDING: &str = "timer";
const HTTP_BINDING: &str = "req";

/// Logs a line to stdout (in the invocation's span) and keeps it for the reply's `Logs`.
/// Starts the `Logs` line of a `DefenderSync` invocation that holds its outcome as JSON
/// (`{"completed":…,"figures":…}`, the same value as `ReturnValue`).
pub const FIGURES_PREFIX: &str = "Cycle outcome: ";

/// A `DefenderSync` reply: the host drops `ReturnValue` unless function.json declares a
/// `$return` output binding, and a timer function has none to declare, so the outcome also goes
/// into the logs the host records (one line, [`FIGURES_PREFIX`] + JSON).
fn outcome(mut logs: Vec<String>, value: serde_json::Value) -> InvocationReply {
    logs.push(format!("{FIGURES_PREFIX}{value}"));
    InvocationReply::new(logs, value)
}

fn note(logs: &mut Vec<String>, line: String) {
    tracing::info!(message = %line);
    logs.push(line);
}

fn rejected(error: String) -> InvocationReply {
    tracing::warn!(%error, "Invocation envelope rejected.");
    InvocationReply::new(
        vec![error.clone()],
        json!({ "status": "invalid-envelope", "error": error }),
    )
}

fn http_rejected(error: String) -> InvocationReply {
    tracing::warn!(%error, "Invocation envelope rejected.");
    InvocationReply::http(HttpReply::json(400, &json!({ "error": error })).with_log(error))
}

/// Parses an envelope and one of its bindings.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], binding: &str) -> Result<T, String> {
    InvocationRequest::parse(body)?.binding(binding)
}

/// `DefenderSync`: one sync cycle, its outcome in `Logs` and `ReturnValue` (never a non-2xx:
/// a failed cycle must not look like a host-level failure).
pub(super) async fn defender_sync(
    state: &HostState,
    body: &[u8],
    deadline: tokio::time::Instant,
) -> InvocationReply {
    let timer: TimerInfo = match parse(body, TIMER_BINDING) {
        Ok(t) => t,
        Err(e) => return rejected(e),
    };
    let mut logs = Vec::new();
    if timer.is_past_due {
        note(
            &mut logs,
            "Timer is past due: this run catches up on missed occurrences.".into(),
        );
    }
    let services = match state.services(deadline).await {
        Ok(s) => s,
        Err(e) => {
            note(&mut logs, format!("Sync cycle not run: {e}."));
            return outcome(logs, json!({ "completed": false, "error": e }));
        }
    };
    let Some(runner) = services.sync.clone() else {
        note(
            &mut logs,
            "The sync engine is not built; nothing was synced.".into(),
        );
        return outcome(
            logs,
            json!({ "completed": false, "status": "sync engine is not built" }),
        );
    };
    let report = runner.run_cycle(deadline).await;
    for line in report.logs {
        note(&mut logs, line);
    }
    let completed = if report.completed {
        "completed"
    } else {
        "did not complete"
    };
    note(&mut logs, format!("Sync cycle {completed}."));
    let return_value = json!({ "completed": report.completed, "figures": report.figures });
    outcome(logs, return_value)
}

/// `SentinelWebhook`: reverse sync of one Sentinel change; answers its caller via `res`. A JSON
/// reply body also carries where the call's time went, from the envelope's parse to the reply
/// (`crate::call_clock`), in ms: `elapsed_ms` in all; `upstream_ms` waiting on Graph, ARM and
/// Table Storage; `lock_ms` waiting for the per-incident lock; `offloaded_ms` our code parsing
/// a large envelope on a blocking thread; `busy_ms` our code running on the runtime, of
/// which `cpu_ms` on the CPU (`preempted`: times the OS took the core meanwhile);
/// `scheduler_ms` the rest (woken, waiting for a thread or a core).
pub(super) async fn sentinel_webhook(
    state: &HostState,
    body: &bytes::Bytes,
    deadline: tokio::time::Instant,
) -> InvocationReply {
    let (reply, split) = crate::call_clock::measure(webhook_call(state, body, deadline)).await;
    match reply {
        Ok((reply, true)) => InvocationReply::http(with_timing(reply, &split)),
        Ok((reply, false)) => InvocationReply::http(reply),
        Err(reply) => reply,
    }
}

/// The call, and whether its reply gets the timing; `Err`: refused before the handler.
async fn webhook_call(
    state: &HostState,
    body: &bytes::Bytes,
    deadline: tokio::time::Instant,
) -> Result<(HttpReply, bool), InvocationReply> {
    let request: HttpRequestData = match parse_request(body).await {
        Ok(r) => r,
        Err(e) => return Err(http_rejected(e)),
    };
    let services = match state.services(deadline).await {
        Ok(s) => s,
        Err(e) => {
            let reply = HttpReply::json(503, &json!({ "error": e })).with_log(e);
            return Err(InvocationReply::http(reply));
        }
    };
    let Some(handler) = services.webhook.clone() else {
        // Until reverse sync exists the body is only checked, so a caller learns of a broken
        // playbook now rather than when reverse sync lands.
        let incident = match super::payload::trigger_incident(request.body.as_deref()) {
            Ok(name) => name.unwrap_or_else(|| "(not named)".into()),
            Err(e) => return Err(http_rejected(format!("SentinelWebhook: {e}"))),
        };
        let line = format!(
            "Reverse sync is not built; the webhook call for incident {incident} was not applied."
        );
        tracing::info!(message = %line);
        return Err(InvocationReply::http(
            HttpReply::json(501, &json!({ "error": "reverse sync is not built yet" }))
                .with_log(line),
        ));
    };
    let reply = handler.handle(request, deadline).await;
    for line in &reply.logs {
        tracing::info!(message = %line);
    }
    Ok((reply, handler.reports_timing()))
}

/// Envelopes larger than this are parsed on a blocking thread: parsing megabytes would hold a
/// runtime worker, and every call queued on it, for milliseconds.
const PARSED_OFF_RUNTIME: usize = 256 * 1024;

/// The HTTP request of a webhook envelope (see [`PARSED_OFF_RUNTIME`]).
async fn parse_request(body: &bytes::Bytes) -> Result<HttpRequestData, String> {
    if body.len() <= PARSED_OFF_RUNTIME {
        return parse(body, HTTP_BINDING);
    }
    let body = body.clone();
    let _ours = crate::call_clock::wait(crate::call_clock::Wait::Offloaded);
    tokio::task::spawn_blocking(move || parse(&body, HTTP_BINDING))
        .await
        .unwrap_or_else(|e| Err(format!("the invocation envelope was not parsed: {e}")))
}

/// Adds where the call's time went to a JSON object body (see [`sentinel_webhook`]).
fn with_timing(mut reply: HttpReply, split: &crate::call_clock::Split) -> HttpReply {
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    if let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(&reply.body) {
        for (k, d) in [
            ("elapsed_ms", split.elapsed),
            ("upstream_ms", split.upstream),
            ("lock_ms", split.lock),
            ("offloaded_ms", split.offloaded),
            ("busy_ms", split.busy),
            ("cpu_ms", split.cpu),
            ("scheduler_ms", split.scheduler()),
        ] {
            m.insert(k.into(), json!(ms(d)));
        }
        m.insert("preempted".into(), json!(split.preempted));
        reply.body = Value::Object(m).to_string();
    }
    reply
}

/// `SentinelWebhook` with an envelope over [`super::WEBHOOK_ENVELOPE_LIMIT`]: the caller's body
/// is surely over the 1 MiB accepted, so it is answered 413 unparsed.
pub(super) fn webhook_too_large(envelope_bytes: usize) -> InvocationReply {
    let line = format!(
        "SentinelWebhook call rejected (413): the invocation carries {envelope_bytes} bytes; a body of at most {} bytes is accepted",
        crate::webhook::trigger::MAX_BODY_BYTES
    );
    tracing::info!(message = %line);
    InvocationReply::http(
        HttpReply::json(
            413,
            &json!({ "error": format!("the body is larger than {} bytes", crate::webhook::trigger::MAX_BODY_BYTES) }),
        )
        .with_log(line),
    )
}

/// `SyncHealth`: the handler's facts and the sync figures, as JSON to the caller.
pub(super) async fn sync_health(state: &HostState, body: &[u8]) -> InvocationReply {
    if let Err(e) = parse::<HttpRequestData>(body, HTTP_BINDING) {
        return http_rejected(e);
    }
    let report: Value = health::report(state).await;
    InvocationReply::http(HttpReply::json(200, &report))
}
