//! SentinelWebhook benchmarks (not timed tests): the release handler as its own process under the
//! fake host, the `dss-simulators` release bin in another process (throttling off), state in
//! Azurite. Prints figures; the lead runs it on a quiet machine.
//!
//!     cargo build --release -p defender-sentinel-sync -p dss-simulators -p dss-fake-host
//!     target/release/bench_webhook --incidents 1000 --concurrency 50
//!
//! 1. A `DefenderSync` cycle creates the Sentinel incidents; an analyst closes each in Sentinel.
//! 2. `changes`: one webhook per incident (the trigger body of the close, with the secret), at
//!    `--concurrency`: wall latency through the fake host; where each call's time went inside
//!    the handler, as it reports per call in the reply body (`crate::call_clock`): waiting on
//!    Graph, ARM and Table Storage (`upstream_ms`), waiting for the per-incident lock
//!    (`lock_ms`), our code running (`busy_ms`, of which `cpu_ms` on the CPU, and how often the
//!    OS took the core meanwhile, `preempted`) and the rest
//!    (`scheduler_ms`: woken but waiting for a runtime thread or a core); the handler's CPU
//!    seconds per call (`/proc/<pid>/stat`); Defender writes per webhook (target 1); peak RSS.
//! 3. `replays`: the same webhooks again (target 0 Defender writes).
//! 4. `echoes`: every incident changed in Defender and synced forward by a cycle; the trigger
//!    body of each of our own Sentinel writes is delivered (target 0 Defender writes).
//! 5. `rejected`: as many calls refused: half with a wrong secret, half with a 5 MB body
//!    (p99 and RSS must stay flat).
//!
//! Options: `--handler <bin>` (default target/release/defender-sentinel-sync), `--sims <bin>`
//! (target/release/dss-simulators), `--repo <dir>` (host.json, function-defs, tools/azurite).

#[allow(dead_code)]
#[path = "../bench_forward/sims.rs"]
mod sims;

use dss_fake_host::azurite::Azurite;
use dss_fake_host::bench_proc::{TempDir, cpu_seconds, loadavg, vm_kb};
use dss_fake_host::{FakeHost, HandlerSpec, HttpCall, TimerCall, stage_app_root};
use futures::StreamExt;
use serde_json::{Value, json};
use sims::SimsProcess;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-webhook-secret-0123456789";

struct Args {
    incidents: usize,
    concurrency: usize,
    handler: PathBuf,
    sims: PathBuf,
    repo: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        incidents: 1000,
        concurrency: 50,
        handler: "target/release/defender-sentinel-sync".into(),
        sims: "target/release/dss-simulators".into(),
        repo: ".".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{x} needs a value"))
        };
        match x.as_str() {
            "--incidents" => a.incidents = val()?.parse()?,
            "--concurrency" => a.concurrency = val()?.parse()?,
            "--handler" => a.handler = val()?.into(),
            "--sims" => a.sims = val()?.into(),
            "--repo" => a.repo = val()?.into(),
            other => anyhow::bail!(
                "unknown argument {other}; usage: bench_webhook [--incidents N] [--concurrency C] [--handler BIN] [--sims BIN] [--repo DIR]"
            ),
        }
    }
    a.handler = std::fs::canonicalize(&a.handler)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.handler.display()))?;
    a.sims =
        std::fs::canonicalize(&a.sims).map_err(|e| anyhow::anyhow!("{}: {e}", a.sims.display()))?;
    a.repo = std::fs::canonicalize(&a.repo)?;
    Ok(a)
}

struct Bench {
    sims: SimsProcess,
    host: FakeHost,
    tenant: String,
    _azurite: Azurite,
    _app: TempDir,
}

/// One webhook call as the bench saw it.
struct Sample {
    status: u16,
    result: String,
    wall: Duration,
    /// The handler's own figures (reply body): whole call and its upstream part, in ms.
    elapsed_ms: f64,
    upstream_ms: f64,
    lock_ms: f64,
    busy_ms: f64,
    cpu_ms: f64,
    scheduler_ms: f64,
    preempted: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let b = setup(&a).await?;
    let n = a.incidents;
    println!(
        "bench_webhook | {n} incidents, {} concurrent | handler pid {} | {} cores | load {}",
        a.concurrency,
        b.host.pid().unwrap_or(0),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        loadavg()
    );
    let t = Instant::now();
    let reply = b
        .host
        .invoke_timer("DefenderSync", &TimerCall::default())
        .await?;
    anyhow::ensure!(
        reply.return_value["completed"] == json!(true),
        "the first cycle did not complete: {:?}",
        reply.logs
    );
    println!(
        "setup: first DefenderSync {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let names = b.sentinel_names().await?;
    anyhow::ensure!(
        names.len() == n,
        "{} Sentinel incidents, not {n}",
        names.len()
    );
    let closes = b.close_all(&names).await?;
    let pid = b.host.pid().unwrap_or(0);
    let rss0 = vm_kb(pid, "VmRSS:")?;

    let calls: Vec<HttpCall> = closes
        .iter()
        .map(|body| call(body.clone(), SECRET))
        .collect();
    b.sims.reset_counters().await?;
    let s = b.run(&calls, a.concurrency).await;
    report("changes (an analyst's close each)", &s, &b, n, pid).await?;

    b.sims.reset_counters().await?;
    let s = b.run(&calls, a.concurrency).await;
    report("replays (the same calls again)", &s, &b, n, pid).await?;

    let echoes = b.echoes(&names).await?;
    let calls: Vec<HttpCall> = echoes
        .iter()
        .map(|body| call(body.clone(), SECRET))
        .collect();
    b.sims.reset_counters().await?;
    let s = b.run(&calls, a.concurrency).await;
    report("echoes (our own forward writes)", &s, &b, n, pid).await?;

    let big = "x".repeat(5_000_000);
    let rejected: Vec<HttpCall> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                call(closes[i % closes.len()].clone(), "not-the-secret-at-all")
            } else {
                call(big.clone(), SECRET)
            }
        })
        .collect();
    let rss_before = vm_kb(pid, "VmRSS:")?;
    b.sims.reset_counters().await?;
    let s = b.run(&rejected, a.concurrency).await;
    report("rejected (wrong secret / 5 MB body)", &s, &b, n, pid).await?;
    println!(
        "  handler VmRSS: {:.1} MB before the bench, {:.1} MB before the rejected calls, {:.1} MB after",
        rss0 as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        vm_kb(pid, "VmRSS:")? as f64 / 1024.0
    );
    println!("load average after: {}", loadavg());
    Ok(())
}

/// A playbook call with `secret`.
fn call(body: String, secret: &str) -> HttpCall {
    HttpCall::new("POST")
        .query("code", "function-key")
        .header("Content-Type", "application/json")
        .header("X-Sync-Secret", secret)
        .body(body)
}

async fn setup(a: &Args) -> anyhow::Result<Bench> {
    let app = TempDir::new("dss-bench-webhook")?;
    stage_app_root(
        &app.0,
        &a.repo.join("host.json"),
        &a.repo.join("function-defs"),
    )?;
    let azurite = Azurite::start(&a.repo)?;
    let sims = SimsProcess::start(&a.sims, &app.0.join("sim-ca.pem"), "off")?;
    let tenant = sims.env.get("AZURE_TENANT_ID").cloned().unwrap_or_default();
    let ids = sims
        .post(
            &format!("/control/defender/{tenant}/seed"),
            &json!({"n": a.incidents, "seed": 7, "alerts": 1, "evidence": 1}),
        )
        .await?;
    anyhow::ensure!(
        ids["ids"].as_array().map_or(0, Vec::len) == a.incidents,
        "seeding failed: {ids}"
    );
    let mut spec = HandlerSpec::new(&a.handler, &app.0, &app.0);
    spec.clear_env = true;
    spec.env
        .insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    spec.env.extend(sims.env.clone());
    // The allocator's options, to compare (e.g. MIMALLOC_PURGE_DECOMMITS=0).
    spec.env
        .extend(std::env::vars().filter(|(k, _)| k.starts_with("MIMALLOC_")));
    for (k, v) in [
        ("AzureWebJobsStorage", azurite.connection_string().as_str()),
        ("DEFENDER_TENANT_IDS", tenant.as_str()),
        ("WEBHOOK_SECRET", SECRET),
        ("DEFENDER_SYNC_SCHEDULE", "0 */5 * * * *"),
        ("FUNCTIONS_WORKER_RUNTIME", "custom"),
        ("AzureFunctionsJobHost__functionTimeout", "00:10:00"),
        ("SYNC_BENCH_UNLIMITED", "true"),
        ("RUST_LOG", "warn"),
    ] {
        spec.env.insert(k.into(), v.into());
    }
    spec.invocation_timeout = Duration::from_secs(11 * 60);
    let host = FakeHost::start(spec).await?;
    Ok(Bench {
        sims,
        host,
        tenant,
        _azurite: azurite,
        _app: app,
    })
}

impl Bench {
    async fn sentinel_names(&self) -> anyhow::Result<Vec<String>> {
        let list = self.sims.get("/control/sentinel/incidents").await?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// An analyst closes every incident in Sentinel; the trigger bodies, in order.
    async fn close_all(&self, names: &[String]) -> anyhow::Result<Vec<String>> {
        let action = json!({"action": "set_status", "status": "Closed",
            "classification": "TruePositive", "classification_reason": "SuspiciousActivity",
            "classification_comment": "bench"});
        self.per_incident(names, |name| {
            let action = action.clone();
            async move {
                self.sims
                    .post(&format!("/control/sentinel/incidents/{name}"), &action)
                    .await
            }
        })
        .await
    }

    /// Every incident changed in Defender (a tag), a cycle writes them to Sentinel; the trigger
    /// bodies of those writes (what the automation rule posts for our own updates).
    async fn echoes(&self, names: &[String]) -> anyhow::Result<Vec<String>> {
        let list = self
            .sims
            .get(&format!("/control/defender/{}/incidents", self.tenant))
            .await?;
        let ids: Vec<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["id"].as_str().map(str::to_owned))
            .collect();
        self.per_incident(&ids, |id| async move {
            self.sims
                .post(
                    &format!("/control/defender/{}/incidents/{id}", self.tenant),
                    &json!({"action": "tag", "custom_tags": ["bench-echo"]}),
                )
                .await
        })
        .await?;
        let reply = self
            .host
            .invoke_timer("DefenderSync", &TimerCall::default())
            .await?;
        anyhow::ensure!(
            reply.return_value["completed"] == json!(true),
            "the echo cycle did not complete"
        );
        self.per_incident(names, |name| async move {
            self.sims
                .get(&format!("/control/sentinel/incidents/{name}/trigger"))
                .await
        })
        .await
    }

    /// Runs `f` for each item, 16 at a time, keeping the order; the JSON answers as text.
    async fn per_incident<'a, F, Fut>(
        &'a self,
        items: &'a [String],
        f: F,
    ) -> anyhow::Result<Vec<String>>
    where
        F: Fn(&'a str) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Value>>,
    {
        let out: Vec<anyhow::Result<Value>> = futures::stream::iter(items.iter())
            .map(|x| f(x.as_str()))
            .buffered(16)
            .collect()
            .await;
        out.into_iter().map(|r| r.map(|v| v.to_string())).collect()
    }

    /// Sends every call, `concurrency` at a time; the samples and the handler's CPU seconds.
    async fn run(&self, calls: &[HttpCall], concurrency: usize) -> (Vec<Sample>, f64) {
        let pid = self.host.pid().unwrap_or(0);
        let cpu0 = cpu_seconds(pid).unwrap_or(f64::NAN);
        let samples = self.samples(calls, concurrency).await;
        (samples, cpu_seconds(pid).unwrap_or(f64::NAN) - cpu0)
    }

    async fn samples(&self, calls: &[HttpCall], concurrency: usize) -> Vec<Sample> {
        futures::stream::iter(calls.iter())
            .map(|c| async move {
                let t = Instant::now();
                let res = self.host.invoke_http("SentinelWebhook", c).await;
                let wall = t.elapsed();
                match res {
                    Ok(r) => {
                        let j: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
                        let f = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
                        Sample {
                            status: r.status,
                            result: j["result"].as_str().unwrap_or("").to_owned(),
                            wall,
                            elapsed_ms: f("elapsed_ms"),
                            upstream_ms: j["upstream_ms"].as_f64().unwrap_or(0.0),
                            lock_ms: f("lock_ms"),
                            busy_ms: f("busy_ms"),
                            cpu_ms: f("cpu_ms"),
                            scheduler_ms: f("scheduler_ms"),
                            preempted: f("preempted"),
                        }
                    }
                    Err(e) => Sample {
                        status: 0,
                        result: format!("invocation failed: {e}"),
                        wall,
                        elapsed_ms: f64::NAN,
                        upstream_ms: 0.0,
                        lock_ms: f64::NAN,
                        busy_ms: f64::NAN,
                        cpu_ms: f64::NAN,
                        scheduler_ms: f64::NAN,
                        preempted: f64::NAN,
                    },
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await
    }
}

async fn report(
    label: &str,
    (s, cpu): &(Vec<Sample>, f64),
    b: &Bench,
    n: usize,
    pid: u32,
) -> anyhow::Result<()> {
    let k = b.sims.counters().await?;
    let writes = |api: &str| -> u64 { k.total(api) - k.matching(api, "GET ") };
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for x in s {
        *by.entry(format!("{} {}", x.status, x.result)).or_default() += 1;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let wall: Vec<f64> = s.iter().map(|x| ms(x.wall)).collect();
    let own_through_host: Vec<f64> = s.iter().map(|x| ms(x.wall) - x.upstream_ms).collect();
    let inside = |f: fn(&Sample) -> f64| -> Vec<f64> {
        s.iter()
            .filter(|x| x.elapsed_ms.is_finite())
            .map(f)
            .filter(|v| v.is_finite())
            .collect()
    };
    let upstream: Vec<f64> = s.iter().map(|x| x.upstream_ms).collect();
    println!("--- {label}: {} calls", s.len());
    println!("  answers: {by:?}");
    println!("  wall through the fake host: {}", pcts(wall));
    println!("  upstream (Graph+ARM+Table) per call: {}", pcts(upstream));
    println!(
        "  handler-added, upstream excluded, through the host: {}",
        pcts(own_through_host)
    );
    println!(
        "  inside SentinelWebhook, upstream excluded (handler-added): {} (target p99 < 5 ms)",
        pcts(inside(|x| x.elapsed_ms - x.upstream_ms))
    );
    println!(
        "    of which our code running (busy): {}",
        pcts(inside(|x| x.busy_ms))
    );
    println!("      on the CPU: {}", pcts(inside(|x| x.cpu_ms)));
    let off = inside(|x| x.busy_ms - x.cpu_ms);
    let preempted = inside(|x| x.preempted);
    println!(
        "      off the CPU (the OS took the core): {}; calls preempted meanwhile: {} of {}",
        pcts(off),
        preempted.iter().filter(|&&n| n > 0.0).count(),
        preempted.len()
    );
    let slow: Vec<f64> = s
        .iter()
        .filter(|x| x.busy_ms - x.cpu_ms > 1.0)
        .map(|x| x.preempted)
        .collect();
    if !slow.is_empty() {
        println!(
            "      of the {} calls more than 1 ms off the CPU, {} were preempted",
            slow.len(),
            slow.iter().filter(|&&n| n > 0.0).count()
        );
    }
    println!(
        "    waiting for the per-incident lock: {}",
        pcts(inside(|x| x.lock_ms))
    );
    println!(
        "    woken, waiting for a thread or a core (scheduler): {}",
        pcts(inside(|x| x.scheduler_ms))
    );
    println!(
        "  handler CPU (utime+stime) over the phase: {:.2} s = {:.3} ms per call",
        cpu,
        cpu * 1e3 / s.len().max(1) as f64
    );
    println!(
        "  Defender writes: {} = {:.3} per webhook | Sentinel writes: {} | all calls: {}",
        writes("graph"),
        writes("graph") as f64 / n.max(1) as f64,
        writes("arm"),
        k.ops_line()
    );
    println!(
        "  handler VmHWM {:.1} MB, VmRSS {:.1} MB",
        vm_kb(pid, "VmHWM:")? as f64 / 1024.0,
        vm_kb(pid, "VmRSS:")? as f64 / 1024.0
    );
    Ok(())
}

/// `p50 … p99 … max` of some milliseconds.
fn pcts(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}
