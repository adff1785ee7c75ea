//! `dss-simulators`: runs every simulator until Ctrl-C (or stdin closes with `--stdin-lifetime`),
//! for poking by hand and for benchmarks that run the simulators in a separate process.
//! Prints the handler environment (`KEY=value` lines) or, with `--json`, one JSON line with the
//! URLs, the CA file and the environment.

use anyhow::Context;
use clap::Parser;
use dss_simulators::{SimConfig, Simulators, ThrottleConfig, generator, wellknown};
use serde_json::json;

/// Benchmarks run the simulators beside the handler on the same cores: a faster allocator
/// leaves more of them to the handler.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "dss-simulators",
    about = "Local simulators of Entra ID, Graph security, Sentinel ARM and Logs Ingestion"
)]
struct Args {
    /// Generated incidents per Defender tenant.
    #[arg(long, default_value_t = 0)]
    incidents: usize,
    /// At most this many alerts per generated incident (1..=200).
    #[arg(long, default_value_t = 200)]
    max_alerts: usize,
    /// Exactly this many alerts per generated incident (instead of the random mix).
    #[arg(long)]
    alerts_per_incident: Option<usize>,
    /// Exactly this many evidence items per generated alert (instead of 1 to 3).
    #[arg(long)]
    evidence_per_alert: Option<usize>,
    /// Seed of the data generator and of fault injection.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Throttling: `real`, `off`, or a scale factor of the real limits (e.g. `0.1`).
    #[arg(long, default_value = "real")]
    throttle: String,
    /// Where to write the authority's CA certificate (PEM).
    #[arg(long, default_value = "dss-simulators-ca.pem")]
    ca_file: String,
    /// Columns of the Logs Ingestion stream, comma-separated (empty = any column).
    #[arg(long, default_value = "")]
    columns: String,
    /// Print one JSON line instead of `KEY=value` lines.
    #[arg(long)]
    json: bool,
    /// Exit when stdin closes (a parent process controls the lifetime).
    #[arg(long)]
    stdin_lifetime: bool,
}

fn throttle(spec: &str) -> anyhow::Result<ThrottleConfig> {
    Ok(match spec {
        "real" => ThrottleConfig::real(),
        "off" => ThrottleConfig::off(),
        f => ThrottleConfig::real().scaled(
            f.parse::<f64>()
                .context("--throttle: real, off or a number")?,
        ),
    })
}

/// One worker thread: benchmarks run the simulators on the same two cores as the handler and
/// Azurite, and a second worker mostly woke up to steal the odd task (thread wake-ups and cache
/// misses for nothing); one thread serves the handler's requests for clearly less CPU.
#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let columns: Vec<&str> = args
        .columns
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let cfg = SimConfig {
        throttle: throttle(&args.throttle)?,
        fault_seed: args.seed,
        ..SimConfig::default()
    }
    .with_stream(wellknown::STREAM_NAME, &columns);
    let tenants = cfg.defender_tenants.clone();
    let sims = Simulators::start(cfg).await?;
    std::fs::write(&args.ca_file, sims.cert_pem())
        .with_context(|| format!("writing {}", args.ca_file))?;
    let ca = std::fs::canonicalize(&args.ca_file)?.display().to_string();
    for t in &tenants {
        let shape = generator::Shape {
            max_alerts: args.max_alerts,
            alerts: args.alerts_per_incident,
            evidence: args.evidence_per_alert,
        };
        sims.seed_shaped(t, args.incidents, args.seed, shape);
    }
    let env = sims.handler_env(&ca);
    if args.json {
        let u = sims.urls();
        let env: serde_json::Map<String, serde_json::Value> =
            env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        println!(
            "{}",
            json!({"graph": u.graph, "arm": u.arm, "logs": u.logs, "identity_endpoint": u.identity_endpoint,
                   "authority_host": u.authority_host, "control": u.control, "ca_file": ca, "env": env})
        );
    } else {
        for (k, v) in &env {
            println!("{k}={v}");
        }
        println!("# control API: {}/control/...", sims.urls().control);
    }
    if args.stdin_lifetime {
        let mut sink = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await?;
    } else {
        tokio::signal::ctrl_c().await?;
    }
    sims.shutdown().await;
    Ok(())
}
