//! `defender-sentinel-sync demo`: the whole sync, both ways, on this machine with no Azure
//! account. Simulators in this process, Azurite for the state (memory when it is not
//! installed), and this binary spawned as the custom handler by the fake Functions host. It
//! seeds two Defender tenants, runs `DefenderSync` cycles (forward sync, then the Sentinel
//! poll of reverse sync), plays Defender analysts and Sentinel analysts, lets both sides change
//! one field for the conflict policy to decide, and prints both sides, each action's
//! propagation and the figures. Exit code 0 only when every synced field agrees, both ways.
//!
//! Sentinel-side: one analyst close also reaches Defender through SentinelWebhook (`webhook.rs`),
//! and hostile calls are refused.

mod check;
mod figures;
mod script;
mod sentinel_script;
pub mod setup;
mod unified;
mod view;
mod webhook;

use crate::cli::DemoArgs;
use crate::domain::TenantId;
use anyhow::Context;
use check::Pair;
use dss_fake_host::{HttpCall, TimerCall};
use dss_simulators::wellknown;
use figures::Cycle;
use setup::{Store, System};
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Instant;

/// Runs the demo; prints everything to stdout. 0 = both sides agree, 1 = they disagree,
/// 2 = the demo could not run.
pub fn run(args: &DemoArgs) -> ExitCode {
    let runtime = match crate::startup::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("defender-sentinel-sync demo: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let run = async {
        match args.target {
            crate::cli::DemoTarget::Arm => demo(args).await,
            crate::cli::DemoTarget::Unified => unified::demo(args).await,
        }
    };
    match runtime.block_on(run) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("defender-sentinel-sync demo: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Per-run state: the system and what it measured.
struct Demo {
    sys: System,
    tenants: Vec<TenantId>,
    cycles: Vec<Cycle>,
}

pub(crate) fn heading(text: &str) {
    println!(
        "\n── {text} {}",
        "─".repeat(96usize.saturating_sub(text.chars().count()))
    );
}

async fn demo(args: &DemoArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    println!("defender-sentinel-sync demo: Defender XDR ⇄ Sentinel sync, all on this machine");
    let repo = setup::repo_root(args.app_root.as_deref())?;
    let dir = std::env::temp_dir().join(format!("dss-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let sys = System::start(&repo, &dir).await?;
    print_setup(&sys);
    let tenants = vec![
        TenantId::parse(wellknown::TENANT_ID).map_err(anyhow::Error::msg)?,
        TenantId::parse(wellknown::TENANT_ID_2).map_err(anyhow::Error::msg)?,
    ];
    let mut d = Demo {
        sys,
        tenants,
        cycles: Vec::new(),
    };
    let result = d.script(args).await;
    if let Err(e) = d.sys.save_log() {
        println!("(cannot write the handler log: {e})");
    }
    println!("\nHandler log: {}", d.sys.log_path().display());
    let agree = result?;
    println!(
        "Total time: {:.1} s (setup, {} cycles, checks)",
        started.elapsed().as_secs_f64(),
        d.cycles.len()
    );
    if args.keep {
        println!(
            "\n--keep: simulators at {} (control API), handler on port {}; press Enter to stop.",
            d.sys.sims.urls().control,
            d.sys.host.port().unwrap_or_default()
        );
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    Ok(agree)
}

/// `  what → text ✓`, on two lines when wider than 100 columns.
fn print_outcome(what: &str, text: &str, ok: bool) {
    let mark = if ok { "✓" } else { "✗" };
    let line = format!("  {what} → {text} {mark}");
    if line.chars().count() <= 100 {
        println!("{line}");
    } else {
        println!("  {what}\n      → {text} {mark}");
    }
}

fn print_setup(sys: &System) {
    let u = sys.sims.urls();
    println!(
        "  simulators: Graph {}  ARM {}  Logs {}",
        u.graph, u.arm, u.logs
    );
    println!(
        "              Entra ID {} (CA in {})",
        u.authority_host,
        sys.dir.join("sim-ca.pem").display()
    );
    match &sys.store {
        Store::Azurite(a) => println!("  state:      Azurite Table service {}", a.table_endpoint()),
        Store::Memory(why) => {
            println!("  state:      IN MEMORY (SYNC_STATE_STORE=memory), not in a Table store:");
            println!("              {why}");
            println!(
                "              scripts/demo.sh installs Azurite (`npm ci --prefix tools/azurite`)"
            );
        }
    }
    println!(
        "  handler:    this binary under the fake Functions host, pid {}, port {}",
        sys.host.pid().unwrap_or_default(),
        sys.host.port().unwrap_or_default()
    );
}

impl Demo {
    async fn script(&mut self, args: &DemoArgs) -> anyhow::Result<bool> {
        let n = args.incidents.max(6);
        let (n1, n2) = (n - n / 3, n / 3);
        self.sys.sims.seed(self.tenants[0].as_str(), n1, args.seed);
        self.sys
            .sims
            .seed(self.tenants[1].as_str(), n2, args.seed.wrapping_add(1));
        let seeded = self.snapshot()?;
        let alerts: usize = seeded
            .iter()
            .map(|p| p.defender.alerts.as_ref().map(Vec::len).unwrap_or(0))
            .sum();
        let evidence: usize = seeded
            .iter()
            .flat_map(|p| p.defender.alerts.iter().flatten())
            .map(|a| a.evidence.len())
            .sum();
        println!(
            "  seeded:     {n1} incidents in Defender tenant 1 ({})",
            self.tenants[0]
        );
        println!(
            "              {n2} incidents in Defender tenant 2 ({})",
            self.tenants[1]
        );
        println!(
            "              {alerts} alerts, {evidence} evidence items (seed {}); Sentinel holds 0 incidents",
            args.seed
        );

        heading("Sync");
        self.cycle("cycle 1 (initial sync)").await?;
        self.cycle("cycle 2 (nothing changed)").await?;
        let before = self.snapshot()?;
        println!(
            "\n{}",
            view::table(
                "BEFORE the analyst actions (after the initial sync)",
                &before
            )
        );

        for (name, steps) in script::batches(&before) {
            self.batch(name, &steps).await?;
        }
        self.sentinel_batch(&sentinel_script::sentinel_batch(&before))
            .await?;
        if let Some(c) = sentinel_script::conflict(&before) {
            self.conflict(&c).await?;
        }
        let after = self.snapshot()?;
        println!("\n{}", view::table("AFTER the analyst actions", &after));
        heading("Sentinel analyst → Defender through SentinelWebhook");
        let webhook_ok = webhook::run(&self.sys, &self.tenants, &after).await?;
        let after = self.snapshot()?;
        Ok(self.report(&after).await? && webhook_ok)
    }

    fn snapshot(&self) -> anyhow::Result<Vec<Pair>> {
        view::snapshot(&self.sys.sims, &self.tenants)
            .map_err(|e| anyhow::anyhow!("cannot read the simulators' state: {e}"))
    }

    /// One `DefenderSync` invocation, as the timer fires it.
    async fn cycle(&mut self, label: &str) -> anyhow::Result<()> {
        let t = Instant::now();
        let reply = self
            .sys
            .host
            .invoke_timer("DefenderSync", &TimerCall::default())
            .await
            .context("DefenderSync invocation")?;
        let c = Cycle {
            label: label.to_owned(),
            took: t.elapsed(),
            reply: reply.return_value,
        };
        println!("  {}", c.line());
        if let Some(poll) = c.poll_line() {
            println!("    {poll}");
        }
        for e in c.errors() {
            println!("    error: {e}");
        }
        self.cycles.push(c);
        Ok(())
    }

    /// Performs a batch of Defender actions, runs a cycle, shows how each one propagated.
    async fn batch(&mut self, name: &str, steps: &[script::Step]) -> anyhow::Result<()> {
        heading(&format!("Defender analysts: {name}"));
        for s in steps {
            self.sys
                .sims
                .defender_action(s.tenant.as_str(), &s.id, s.action.clone())
                .map_err(|e| anyhow::anyhow!("{}: {e}", s.what))?;
            println!("  {}", s.what);
        }
        self.cycle(&format!("cycle {} (after {name})", self.cycles.len() + 1))
            .await?;
        let pairs = self.snapshot()?;
        let logged: HashSet<String> = self
            .sys
            .sims
            .ingested_rows(wellknown::STREAM_NAME)
            .iter()
            .filter_map(|r| r["AlertId"].as_str().map(str::to_owned))
            .collect();
        for s in steps {
            let pair = pairs
                .iter()
                .find(|p| p.tenant_no == s.tenant_no && p.defender.id.as_str() == s.id);
            let (text, ok) = pair
                .and_then(|p| script::outcome(s, p, &|id| logged.contains(id)))
                .unwrap_or(("not in Sentinel".into(), false));
            let line = format!("  {} → {text} {}", s.what, if ok { "✓" } else { "✗" });
            if line.chars().count() <= 100 {
                println!("{line}");
            } else {
                println!(
                    "  {}\n      → {text} {}",
                    s.what,
                    if ok { "✓" } else { "✗" }
                );
            }
        }
        Ok(())
    }

    /// Performs the Sentinel analysts' actions, runs a cycle, shows how each reached Defender.
    async fn sentinel_batch(
        &mut self,
        steps: &[sentinel_script::SentinelStep],
    ) -> anyhow::Result<()> {
        heading("Sentinel analysts (reverse sync)");
        for s in steps {
            self.sys
                .sims
                .sentinel_action(&s.name, s.action.clone())
                .map_err(|e| anyhow::anyhow!("{}: {e}", s.what))?;
            println!("  {}", s.what);
        }
        self.cycle(&format!("cycle {} (after Sentinel)", self.cycles.len() + 1))
            .await?;
        let pairs = self.snapshot()?;
        for s in steps {
            let pair = pairs
                .iter()
                .find(|p| p.tenant_no == s.tenant_no && p.defender.id.as_str() == s.id);
            let (text, ok) = pair
                .and_then(|p| sentinel_script::sentinel_outcome(s, p))
                .unwrap_or(("not in Sentinel".into(), false));
            print_outcome(&s.what, &text, ok);
        }
        Ok(())
    }

    /// Both sides change the same field between two cycles; the conflict policy decides.
    async fn conflict(&mut self, c: &sentinel_script::Conflict) -> anyhow::Result<()> {
        heading(&format!(
            "A conflict: both sides change the tags of D{} #{}",
            c.tenant_no, c.id
        ));
        let d_what = format!("Defender: tag D{} #{} from-defender", c.tenant_no, c.id);
        self.sys
            .sims
            .defender_action(c.tenant.as_str(), &c.id, c.defender.clone())
            .map_err(|e| anyhow::anyhow!("{d_what}: {e}"))?;
        println!("  {d_what}");
        // The Sentinel change is the later one (latest-wins, the default policy, keeps it).
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let s_what = format!(
            "Sentinel: tag S of D{} #{} from-sentinel",
            c.tenant_no, c.id
        );
        self.sys
            .sims
            .sentinel_action(&c.name, c.sentinel.clone())
            .map_err(|e| anyhow::anyhow!("{s_what}: {e}"))?;
        println!("  {s_what}");
        self.cycle(&format!("cycle {} (conflict)", self.cycles.len() + 1))
            .await?;
        let pairs = self.snapshot()?;
        let pair = pairs
            .iter()
            .find(|p| p.tenant_no == c.tenant_no && p.defender.id.as_str() == c.id);
        let (text, ok) = match pair {
            Some(p) => {
                let s_tags = p
                    .sentinel
                    .as_ref()
                    .map(|s| s.user_tags())
                    .unwrap_or_default();
                let noted = p
                    .sentinel_comments
                    .iter()
                    .any(|m| m.contains("conflict") && m.contains("from-defender"));
                let ok = crate::sync::mapping::tags_same(&p.defender.custom_tags, &c.winner)
                    && crate::sync::mapping::tags_same(&s_tags, &c.winner)
                    && noted;
                let note = if noted { "noted" } else { "NOT noted" };
                (
                    format!(
                        "both sides {}, {note} in Sentinel",
                        p.defender.custom_tags.join(",")
                    ),
                    ok,
                )
            }
            None => ("not in Sentinel".into(), false),
        };
        print_outcome("latest-wins kept the later (Sentinel) tags", &text, ok);
        Ok(())
    }

    /// Logs rows, SyncHealth, figures, and the agreement verdict.
    async fn report(&mut self, after: &[Pair]) -> anyhow::Result<bool> {
        let rows = self.sys.sims.ingested_rows(wellknown::STREAM_NAME);
        let (alert_rows, evidence_rows) = view::row_kinds(&rows);
        heading("Logs Ingestion");
        println!(
            "  {} rows in {} ({alert_rows} alert rows, {evidence_rows} evidence rows)",
            rows.len(),
            wellknown::STREAM_NAME
        );

        heading("SyncHealth (GET /api/sync/health through the fake host)");
        let health = self
            .sys
            .host
            .invoke_http("SyncHealth", &HttpCall::new("GET"))
            .await
            .context("SyncHealth invocation")?;
        let body = health
            .json()
            .unwrap_or(serde_json::Value::String(health.body.clone()));
        println!("  HTTP {}\n{}", health.status, figures::fitted_json(&body));

        heading("Figures");
        println!("{}", figures::calls_table(&self.sys.sims.counters()));
        if let Some(last) = self.cycles.last() {
            println!("  the handler's own count (DefenderSync reply figures, since it started):");
            println!("{}", figures::handler_calls(&last.reply));
        }
        let synced = after.iter().filter(|p| p.sentinel.is_some()).count();
        println!(
            "  incidents synced: {synced} of {} Defender incidents",
            after.len()
        );
        for c in &self.cycles {
            println!("  {:<40} {:>6.2} s", c.label, c.took.as_secs_f64());
        }
        Ok(self.verdict(after))
    }

    fn verdict(&self, after: &[Pair]) -> bool {
        heading("Agreement");
        let users: Vec<String> = self
            .sys
            .sims
            .config()
            .users
            .iter()
            .map(|u| u.user_principal_name.to_ascii_lowercase())
            .collect();
        let knows = |upn: &str| users.contains(&upn.trim().to_ascii_lowercase());
        let mut bad = 0;
        for p in after {
            let found = check::disagreements(p, &knows);
            if !found.is_empty() {
                bad += 1;
                println!(
                    "  ✗ D{} #{}: {}",
                    p.tenant_no,
                    p.defender.id,
                    found.join("; ")
                );
            }
        }
        let incomplete = self.cycles.iter().filter(|c| !c.completed()).count();
        if incomplete > 0 {
            println!("  ✗ {incomplete} cycle(s) did not complete");
        }
        if bad == 0 && incomplete == 0 {
            println!(
                "  ✓ All synced fields agree on both sides ({} incidents).",
                after.len()
            );
        } else {
            println!("  ✗ {bad} of {} incidents disagree.", after.len());
        }
        bad == 0 && incomplete == 0
    }
}
