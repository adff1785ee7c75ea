//! Forward-sync benchmarks (not timed tests): the release handler as its own process under the
//! fake host, the `dss-simulators` release bin in another process, state in an in-memory Azurite.
//! Prints figures; see the README's "Benchmarks" section.
//!
//!     cargo build --release -p defender-sentinel-sync -p dss-simulators -p dss-fake-host
//!     target/release/bench_forward overhead --incidents 1000     # A: limits off, 3 alerts × 5 evidence
//!     target/release/bench_forward limit --incidents 3000        # B: ARM writes throttled as in Azure
//!     target/release/bench_forward reverse --incidents 1000      # C: 10% changed in Sentinel, limits off
//!
//! Options: `--handler <bin>` (default target/release/defender-sentinel-sync), `--sims <bin>`
//! (target/release/dss-simulators), `--repo <dir>` (host.json, function-defs, tools/azurite; default .).

mod sims;
mod table_proxy;

use dss_fake_host::azurite::Azurite;
use dss_fake_host::bench_proc::{TempDir, cpu_seconds, loadavg, vm_hwm_kb};
use dss_fake_host::{FakeHost, HandlerSpec, TimerCall, stage_app_root};
use serde_json::{Value, json};
use sims::{Counters, SimsProcess};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Args {
    mode: String,
    incidents: usize,
    handler: PathBuf,
    sims: PathBuf,
    repo: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        mode: String::new(),
        incidents: 1000,
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
            "--handler" => a.handler = val()?.into(),
            "--sims" => a.sims = val()?.into(),
            "--repo" => a.repo = val()?.into(),
            "overhead" | "limit" | "reverse" => a.mode = x,
            other => anyhow::bail!(
                "unknown argument {other}; usage: bench_forward overhead|limit|reverse [--incidents N]"
            ),
        }
    }
    if a.mode.is_empty() {
        anyhow::bail!(
            "usage: bench_forward overhead|limit|reverse [--incidents N] [--handler BIN] [--sims BIN] [--repo DIR]"
        );
    }
    a.handler = std::fs::canonicalize(&a.handler)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.handler.display()))?;
    a.sims =
        std::fs::canonicalize(&a.sims).map_err(|e| anyhow::anyhow!("{}: {e}", a.sims.display()))?;
    a.repo = std::fs::canonicalize(&a.repo)?;
    Ok(a)
}

/// Everything running for one benchmark.
struct Bench {
    sims: SimsProcess,
    host: FakeHost,
    table: table_proxy::TableCounts,
    tenant: String,
    azurite: Azurite,
    _app: TempDir,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let limit = a.mode == "limit";
    let bench = setup(&a, limit).await?;
    println!(
        "bench {} | {} incidents × 3 alerts × 5 evidence, no comments | handler pid {} | {} cores",
        a.mode,
        a.incidents,
        bench.host.pid().unwrap_or(0),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("load average before: {}", loadavg());
    let r = match a.mode.as_str() {
        "limit" => run_limit(&bench, a.incidents).await,
        "reverse" => run_reverse(&bench, a.incidents).await,
        _ => run_overhead(&bench, a.incidents).await,
    };
    println!(
        "load average after: {} (other processes share the cores: figures are lower bounds)",
        loadavg()
    );
    r
}

async fn setup(a: &Args, limit: bool) -> anyhow::Result<Bench> {
    let app = TempDir::new("dss-bench")?;
    stage_app_root(
        &app.0,
        &a.repo.join("host.json"),
        &a.repo.join("function-defs"),
    )?;
    let azurite = Azurite::start(&a.repo)?;
    let table = table_proxy::TableCounts::default();
    let proxy = table_proxy::start(azurite.port, table.clone()).await?;
    let sims = SimsProcess::start(
        &a.sims,
        &app.0.join("sim-ca.pem"),
        if limit { "real" } else { "off" },
    )?;
    let tenant = sims.env.get("AZURE_TENANT_ID").cloned().unwrap_or_default();
    let ids = sims
        .post(
            &format!("/control/defender/{tenant}/seed"),
            &json!({"n": a.incidents, "seed": 7, "alerts": 3, "evidence": 5}),
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
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};TableEndpoint=http://127.0.0.1:{proxy}/{};",
        dss_fake_host::azurite::ACCOUNT,
        dss_fake_host::azurite::KEY,
        dss_fake_host::azurite::ACCOUNT
    );
    for (k, v) in [
        ("AzureWebJobsStorage", conn.as_str()),
        ("DEFENDER_TENANT_IDS", tenant.as_str()),
        ("WEBHOOK_AUTH", "none"),
        ("DEFENDER_SYNC_SCHEDULE", "0 */5 * * * *"),
        ("FUNCTIONS_WORKER_RUNTIME", "custom"),
        ("AzureFunctionsJobHost__functionTimeout", "00:10:00"),
        ("RUST_LOG", "warn"),
    ] {
        spec.env.insert(k.into(), v.into());
    }
    if !limit {
        spec.env
            .insert("SYNC_BENCH_UNLIMITED".into(), "true".into());
    }
    spec.invocation_timeout = Duration::from_secs(11 * 60);
    let host = FakeHost::start(spec).await?;
    Ok(Bench {
        sims,
        host,
        table,
        tenant,
        azurite,
        _app: app,
    })
}

/// Figures of one `DefenderSync` invocation.
struct Cycle {
    wall: Duration,
    cpu: f64,
    /// CPU seconds of Azurite, of the simulators and of this process (the fake host and the
    /// Table proxy) during the cycle: where the rest of the 2 cores went.
    others: (f64, f64, f64),
    reply: Value,
    counters: Counters,
    table: std::collections::BTreeMap<String, u64>,
}

impl Bench {
    async fn cycle(&self) -> anyhow::Result<Cycle> {
        self.sims.reset_counters().await?;
        self.table.take();
        let pid = self.host.pid().unwrap_or(0);
        let cpu0 = cpu_seconds(pid)?;
        let others0 = self.others_cpu()?;
        let t0 = Instant::now();
        let reply = self
            .host
            .invoke_timer("DefenderSync", &TimerCall::default())
            .await?;
        let wall = t0.elapsed();
        let cpu = cpu_seconds(pid)? - cpu0;
        let others1 = self.others_cpu()?;
        let counters = self.sims.counters().await?;
        let others = (
            others1.0 - others0.0,
            others1.1 - others0.1,
            others1.2 - others0.2,
        );
        Ok(Cycle {
            wall,
            cpu,
            others,
            reply: reply.return_value,
            counters,
            table: self.table.take(),
        })
    }

    /// CPU seconds so far of Azurite, of the simulators and of this process.
    fn others_cpu(&self) -> anyhow::Result<(f64, f64, f64)> {
        Ok((
            cpu_seconds(self.azurite.pid())?,
            cpu_seconds(self.sims.pid())?,
            cpu_seconds(std::process::id())?,
        ))
    }
}

fn tenant_fig(reply: &Value, k: &str) -> u64 {
    reply["figures"]["tenants"]
        .as_array()
        .map_or(0, |t| t.iter().map(|t| t[k].as_u64().unwrap_or(0)).sum())
}

fn print_cycle(label: &str, c: &Cycle, per: usize) {
    let r = &c.reply;
    let per_f = per.max(1) as f64;
    println!("--- {label}");
    println!(
        "  completed {} | seen {} written {} unchanged {} failed {} parked {} throttled {}",
        r["completed"],
        tenant_fig(r, "seen"),
        tenant_fig(r, "written"),
        tenant_fig(r, "unchanged"),
        tenant_fig(r, "failed"),
        tenant_fig(r, "parked"),
        tenant_fig(r, "throttled")
    );
    println!(
        "  wall {:.2} s -> {:.0} incidents/s | handler CPU {:.2} s = {:.3} CPU s per 1,000 incidents",
        c.wall.as_secs_f64(),
        per as f64 / c.wall.as_secs_f64(),
        c.cpu,
        c.cpu * 1000.0 / per_f
    );
    println!(
        "  meanwhile CPU: Azurite {:.2} s, simulators {:.2} s, bench (fake host + Table proxy) {:.2} s",
        c.others.0, c.others.1, c.others.2
    );
    let k = &c.counters;
    let (graph, users) = (
        k.total("graph") - k.matching("graph", "users"),
        k.matching("graph", "users"),
    );
    let (arm, logs) = (k.total("arm"), k.total("logs"));
    println!(
        "  per incident: Graph {:.3} + ARM {:.3} + Logs {:.3} = {:.3} calls (absolute {graph} + {arm} + {logs})",
        graph as f64 / per_f,
        arm as f64 / per_f,
        logs as f64 / per_f,
        (graph + arm + logs) as f64 / per_f
    );
    println!(
        "  ARM writes (PUT/DELETE): {} | ARM 429s: {}",
        k.arm_writes(),
        k.throttled("arm")
    );
    let table: u64 = c.table.values().sum();
    println!(
        "  apart: token {} | user look-ups {} | Table {} ({:.3} per incident: {:?})",
        k.total("entra"),
        users,
        table,
        table as f64 / per_f,
        c.table
    );
    println!("  by operation: {}", k.ops_line());
    if let Some(errors) = r["figures"]["tenants"][0]["errors"]
        .as_array()
        .filter(|e| !e.is_empty())
    {
        println!("  errors: {errors:?}");
    }
}

async fn run_overhead(b: &Bench, n: usize) -> anyhow::Result<()> {
    let pid = b.host.pid().unwrap_or(0);
    let c1 = b.cycle().await?;
    print_cycle(&format!("cycle 1: first sync, {n} new incidents"), &c1, n);
    let hwm1 = vm_hwm_kb(pid)?;
    println!("  VmHWM after cycle 1: {:.1} MB", hwm1 as f64 / 1024.0);
    let c2 = b.cycle().await?;
    print_cycle("cycle 2: nothing changed", &c2, n);
    println!(
        "  Sentinel writes for unchanged incidents: {} (target 0)",
        c2.counters.arm_writes()
    );
    let t = Instant::now();
    touch_all(b).await?;
    println!(
        "--- touched {n} incidents in Defender (custom tag) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let c3 = b.cycle().await?;
    print_cycle(&format!("cycle 3: {n} changed incidents"), &c3, n);
    let hwm = vm_hwm_kb(pid)?;
    let k = &c3.counters;
    let calls = (k.total("graph") - k.matching("graph", "users") + k.total("arm") + k.total("logs"))
        as f64
        / n as f64;
    println!("=== summary ({n} incidents)");
    println!(
        "  incidents/s: first sync {:.0}, changed {:.0}, unchanged {:.0} (target >= 1,000)",
        n as f64 / c1.wall.as_secs_f64(),
        n as f64 / c3.wall.as_secs_f64(),
        n as f64 / c2.wall.as_secs_f64()
    );
    println!(
        "  CPU s per 1,000 incidents: first {:.3}, changed {:.3}, unchanged {:.3}",
        c1.cpu * 1e3 / n as f64,
        c3.cpu * 1e3 / n as f64,
        c2.cpu * 1e3 / n as f64
    );
    println!(
        "  Graph+ARM+Logs calls per changed incident: {calls:.3} (target <= 1.1); Sentinel writes when unchanged: {}",
        c2.counters.arm_writes()
    );
    println!(
        "  handler VmHWM: {:.1} MB (target < 100 MB)",
        hwm as f64 / 1024.0
    );
    Ok(())
}

fn poll_fig(reply: &Value, k: &str) -> u64 {
    reply["figures"]["reverse"][k].as_u64().unwrap_or(0)
}

fn print_poll(c: &Cycle) {
    let r = &c.reply;
    println!(
        "  sentinel poll: pages {} seen {} unchanged {} unmanaged {} Defender writes {} comments {} \
         conflicts {} parked {} failed {} throttled {} completed {}",
        poll_fig(r, "pages"),
        poll_fig(r, "seen"),
        poll_fig(r, "unchanged"),
        poll_fig(r, "unmanaged"),
        poll_fig(r, "defenderWrites"),
        poll_fig(r, "comments"),
        poll_fig(r, "conflicts"),
        poll_fig(r, "parked"),
        poll_fig(r, "failed"),
        poll_fig(r, "throttled"),
        r["figures"]["reverse"]["completed"]
    );
}

/// C: `n` managed incidents, 10% changed in Sentinel between two cycles (half of them a label,
/// half a comment); the cycle after applies them through the Sentinel poll.
async fn run_reverse(b: &Bench, n: usize) -> anyhow::Result<()> {
    let pid = b.host.pid().unwrap_or(0);
    let c1 = b.cycle().await?;
    print_cycle(&format!("cycle 1: first sync, {n} new incidents"), &c1, n);
    print_poll(&c1);
    let c2 = b.cycle().await?;
    print_cycle("cycle 2: nothing changed", &c2, n);
    print_poll(&c2);
    println!(
        "  writes for unchanged incidents: Graph {} ARM {} (target 0 and 0)",
        c2.counters.writes("graph"),
        c2.counters.arm_writes()
    );
    let t = Instant::now();
    let changed = change_in_sentinel(b, n / 10).await?;
    println!(
        "--- changed {changed} incidents in Sentinel (label or comment) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let c3 = b.cycle().await?;
    print_cycle(&format!("cycle 3: {changed} changed in Sentinel"), &c3, n);
    print_poll(&c3);
    let c4 = b.cycle().await?;
    print_cycle("cycle 4: nothing changed since", &c4, n);
    print_poll(&c4);
    let hwm = vm_hwm_kb(pid)?;
    let k = &c3.counters;
    let graph_arm = k.total("graph") - k.matching("graph", "users") + k.total("arm");
    let per = changed.max(1) as f64;
    let applied = poll_fig(&c3.reply, "defenderWrites") + poll_fig(&c3.reply, "comments");
    println!("=== summary ({n} managed incidents, {changed} changed in Sentinel)");
    println!(
        "  Graph+ARM calls per changed incident: {:.3} (absolute {graph_arm}; the cycle's forward \
         part included)",
        graph_arm as f64 / per
    );
    println!(
        "  poll pages: {} | Defender delta lists: {} | Defender writes + comments: {applied} for {changed} changed",
        poll_fig(&c3.reply, "pages"),
        poll_fig(&c3.reply, "defenderLists")
    );
    print_per_kind(k, changed);
    println!(
        "  writes for unchanged incidents: cycle 2 Graph {} ARM {}, cycle 4 Graph {} ARM {} (target 0)",
        c2.counters.writes("graph"),
        c2.counters.arm_writes(),
        c4.counters.writes("graph"),
        c4.counters.arm_writes()
    );
    println!(
        "  poll-and-apply cycle: {:.0} listed incidents/s, {:.0} changed incidents/s (limiters off)",
        poll_fig(&c3.reply, "seen") as f64 / c3.wall.as_secs_f64(),
        changed as f64 / c3.wall.as_secs_f64()
    );
    println!(
        "  handler VmHWM: {:.1} MB (target < 100 MB)",
        hwm as f64 / 1024.0
    );
    Ok(())
}

/// The calls of the reverse cycle by kind of change, each operation attributed to the one kind
/// that causes it: a label costs the Graph incident PATCH, a comment the ARM comment list and
/// the Graph comment POST. Per-incident Graph GETs (the timer path reads the tenant's delta list
/// instead) and the calls shared by all (pages of the Sentinel poll, counts and pages of the
/// Graph incident list: the forward pull and the delta lists) are printed apart.
fn print_per_kind(k: &Counters, changed: usize) {
    // `change_in_sentinel`: every other incident a label (the even ones), the rest a comment.
    let labels = changed.div_ceil(2);
    let comments = changed / 2;
    let patch = k.op("graph", "PATCH incidents/{id}");
    let comment_calls =
        k.op("arm", "GET incidents/{id}/comments") + k.op("graph", "POST incidents/{id}/comments");
    let gets = k.op("graph", "GET incidents/{id}");
    let shared = k.op("arm", "GET incidents") + k.op("graph", "GET incidents");
    println!(
        "  per kind: label {:.3} calls ({patch} Graph PATCH for {labels}); comment {:.3} calls \
         ({comment_calls} ARM comment list + Graph comment POST for {comments})",
        patch as f64 / labels.max(1) as f64,
        comment_calls as f64 / comments.max(1) as f64
    );
    println!(
        "  apart: per-incident Graph GETs {gets} (target 0 on the timer path); shared list calls \
         {shared} (Sentinel poll pages + Graph incident counts and pages: forward pull and delta \
         lists)"
    );
}

/// Changes `m` Sentinel incidents as analysts would (every other one a label, the rest a
/// comment), 16 control calls at a time; answers how many changed.
async fn change_in_sentinel(b: &Bench, m: usize) -> anyhow::Result<usize> {
    use futures::StreamExt;
    let list = b.sims.get("/control/sentinel/incidents").await?;
    let names: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(str::to_owned))
        .take(m)
        .collect();
    let results: Vec<anyhow::Result<Value>> = futures::stream::iter(names.iter().enumerate())
        .map(|(i, name)| async move {
            let body = if i % 2 == 0 {
                json!({"action": "set_labels", "labels": ["Defender", "bench-reverse"]})
            } else {
                json!({"action": "comment", "message": format!("bench note {i}")})
            };
            b.sims
                .post(&format!("/control/sentinel/incidents/{name}"), &body)
                .await
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(names.len())
}

/// Changes every incident in Defender (a custom tag), 16 control calls at a time.
async fn touch_all(b: &Bench) -> anyhow::Result<()> {
    use futures::StreamExt;
    let list = b
        .sims
        .get(&format!("/control/defender/{}/incidents", b.tenant))
        .await?;
    let ids: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();
    let results: Vec<anyhow::Result<Value>> = futures::stream::iter(ids)
        .map(|id| async move {
            b.sims
                .post(
                    &format!("/control/defender/{}/incidents/{id}", b.tenant),
                    &json!({"action": "tag", "custom_tags": ["bench-touched"]}),
                )
                .await
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(())
}

async fn run_limit(b: &Bench, n: usize) -> anyhow::Result<()> {
    let pid = b.host.pid().unwrap_or(0);
    b.sims.reset_counters().await?;
    let cpu0 = cpu_seconds(pid)?;
    let others0 = b.others_cpu()?;
    let t0 = Instant::now();
    let call = TimerCall::default();
    let invocation = b.host.invoke_timer("DefenderSync", &call);
    tokio::pin!(invocation);
    // (seconds since start, ARM writes accepted, ARM 429s), sampled every 500 ms.
    let mut samples: Vec<(f64, u64, u64)> = Vec::new();
    let reply = loop {
        tokio::select! {
            r = &mut invocation => break r?,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let k = b.sims.counters().await?;
                samples.push((t0.elapsed().as_secs_f64(), k.arm_writes_ok(), k.throttled("arm")));
            }
        }
    };
    let wall = t0.elapsed();
    let cpu = cpu_seconds(pid)? - cpu0;
    let k = b.sims.counters().await?;
    samples.push((wall.as_secs_f64(), k.arm_writes_ok(), k.throttled("arm")));
    let others1 = b.others_cpu()?;
    let others = (
        others1.0 - others0.0,
        others1.1 - others0.1,
        others1.2 - others0.2,
    );
    let c = Cycle {
        wall,
        cpu,
        others,
        reply: reply.return_value,
        counters: k,
        table: b.table.take(),
    };
    print_cycle(
        &format!(
            "one cycle: {n} new incidents, ARM throttled as in Azure, default client limiters"
        ),
        &c,
        n,
    );
    for s in samples.iter().step_by(20) {
        println!("  t={:6.1} s  ARM writes {:5}  ARM 429s {}", s.0, s.1, s.2);
    }
    // The burst is over when 200 writes are in; the rate is measured over the next 120 s.
    let Some(start) = samples.iter().find(|s| s.1 >= 200).copied() else {
        anyhow::bail!("fewer than 200 ARM writes");
    };
    let end = samples
        .iter()
        .find(|s| s.0 >= start.0 + 120.0)
        .copied()
        .unwrap_or(*samples.last().unwrap_or(&start));
    let rate = (end.1 - start.1) as f64 / (end.0 - start.0).max(1e-9);
    println!("=== summary ({n} incidents)");
    println!(
        "  burst (200 writes) done at t={:.1} s; next {:.1} s: {} writes = {rate:.2} ARM writes/s (target >= 9.5)",
        start.0,
        end.0 - start.0,
        end.1 - start.1
    );
    println!(
        "  ARM 429s: {} in the whole cycle, {} in that window; all ARM writes: {}",
        c.counters.throttled("arm"),
        end.2 - start.2,
        c.counters.arm_writes()
    );
    println!("  handler VmHWM: {:.1} MB", vm_hwm_kb(pid)? as f64 / 1024.0);
    Ok(())
}
