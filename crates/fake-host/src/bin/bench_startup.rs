//! Startup benchmark of the handler (not a timed test): spawns it N times (default 20) the way
//! the host does, with every required setting pointing at local endpoints, retries a `GET /`
//! every 1 ms, and prints the median and p95 time from spawn to the first answer, and VmRSS
//! 2 s after that answer (before any invocation). Targets: < 20 ms, < 15 MB.
//!
//!     cargo run --release -p dss-fake-host --bin bench_startup -- dist/app/defender-sentinel-sync
//!
//! `--table-storage` uses `AzureWebJobsStorage=UseDevelopmentStorage=true` instead of the
//! in-memory state store.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut binary = PathBuf::from("dist/app/defender-sentinel-sync");
    let (mut runs, mut table) = (20usize, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(runs),
            "--table-storage" => table = true,
            other => binary = PathBuf::from(other),
        }
    }
    let binary =
        std::fs::canonicalize(&binary).map_err(|e| anyhow::anyhow!("{}: {e}", binary.display()))?;
    let app_root = binary.parent().map(PathBuf::from).unwrap_or_default();
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for i in 0..runs {
        let (t, kb) = one_run(&binary, &app_root, table)?;
        println!(
            "run {:2}: first answer after {:6.2} ms, VmRSS 2 s later {:6} kB",
            i + 1,
            t.as_secs_f64() * 1e3,
            kb
        );
        times.push(t);
        rss.push(kb);
    }
    times.sort();
    rss.sort();
    let p = |q: f64| {
        times[((times.len() as f64 * q).ceil() as usize)
            .saturating_sub(1)
            .min(times.len() - 1)]
    };
    println!("binary: {}", binary.display());
    println!(
        "spawn -> first GET / answer: median {:.2} ms, p95 {:.2} ms (target < 20 ms)",
        p(0.5).as_secs_f64() * 1e3,
        p(0.95).as_secs_f64() * 1e3
    );
    println!(
        "VmRSS 2 s after: median {:.1} MB, max {:.1} MB (target < 15 MB)",
        rss[rss.len() / 2] as f64 / 1024.0,
        rss[rss.len() - 1] as f64 / 1024.0
    );
    Ok(())
}

fn settings(table: bool) -> Vec<(&'static str, &'static str)> {
    let mut s = vec![
        ("AZURE_TENANT_ID", "11111111-1111-1111-1111-111111111111"),
        ("AZURE_CLIENT_ID", "bench-client"),
        ("AZURE_CLIENT_SECRET", "bench-secret"),
        ("AZURE_AUTHORITY_HOST", "https://127.0.0.1:9"),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"),
        ("IDENTITY_HEADER", "bench"),
        ("GRAPH_ENDPOINT", "http://127.0.0.1:9/graph"),
        ("ARM_ENDPOINT", "http://127.0.0.1:9/arm"),
        (
            "SENTINEL_SUBSCRIPTION_ID",
            "33333333-3333-3333-3333-333333333333",
        ),
        ("SENTINEL_RESOURCE_GROUP", "rg-bench"),
        ("SENTINEL_WORKSPACE_NAME", "law-bench"),
        ("LOGS_INGESTION_ENDPOINT", "http://127.0.0.1:9/dce"),
        (
            "LOGS_DCR_IMMUTABLE_ID",
            "dcr-00000000000000000000000000000000",
        ),
        ("WEBHOOK_SECRET", "bench-webhook-secret-0123456789"),
        ("DEFENDER_SYNC_SCHEDULE", "0 */5 * * * *"),
        ("FUNCTIONS_WORKER_RUNTIME", "custom"),
    ];
    s.push(if table {
        ("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    } else {
        ("SYNC_STATE_STORE", "memory")
    });
    s
}

fn one_run(binary: &PathBuf, app_root: &PathBuf, table: bool) -> anyhow::Result<(Duration, u64)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let start = Instant::now();
    let mut child = Command::new(binary)
        .current_dir(app_root)
        .env_clear()
        .envs(settings(table))
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let elapsed = loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the handler exited early: {status}");
        }
        if answered(port) {
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            anyhow::bail!("no answer within 30 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    child.kill()?; // SIGKILL
    child.wait()?;
    Ok((elapsed, kb))
}

/// Whether `GET /` gets an HTTP status line.
fn answered(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 ")
}
