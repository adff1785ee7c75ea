//! `defender-sentinel-sync`: the Azure Functions custom handler and its command line.

use clap::{CommandFactory, Parser};
use defender_sentinel_sync::cli::{self, Action, Cli};
use defender_sentinel_sync::config::Settings;
use defender_sentinel_sync::host::timeout;
use defender_sentinel_sync::{runner, startup, telemetry};
use std::io::IsTerminal;
use std::process::ExitCode;

/// The handler allocates many small, short-lived objects (JSON of every incident, alert and
/// evidence item); the system allocators (glibc's, and musl's in the packaged static binary) spent
/// about a third of a sync cycle's CPU in malloc and free. mimalloc is a maintained drop-in.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::action(&cli, std::env::var(cli::PORT_VAR).ok().as_deref()) {
        Action::Serve(port) => serve(port),
        Action::Sync => sync(),
        Action::Check => check(),
        Action::Demo => demo(&cli),
        Action::Help => {
            let _ = Cli::command().print_help();
            ExitCode::from(2)
        }
    }
}

/// `demo`: runs it when this build has it (feature `demo`, on by default).
#[cfg(feature = "demo")]
fn demo(cli: &Cli) -> ExitCode {
    match &cli.command {
        Some(cli::Command::Demo(args)) => defender_sentinel_sync::demo::run(args),
        _ => ExitCode::from(2),
    }
}

/// `demo` in a build without it (the deployed package): says so, exit code 2.
#[cfg(not(feature = "demo"))]
fn demo(_: &Cli) -> ExitCode {
    eprintln!("{}", cli::NO_DEMO);
    ExitCode::from(2)
}

/// Settings (and the port, for `serve`), or every problem on stderr, one line each: the host
/// shows a crashed handler's last stderr lines.
fn load(port: Result<u16, String>) -> Result<(u16, Settings, tokio::runtime::Runtime), ExitCode> {
    let settings = Settings::from_process_env();
    let mut problems: Vec<String> = port.as_ref().err().cloned().into_iter().collect();
    if let Err(errors) = &settings {
        problems.extend(errors.0.iter().map(|e| e.to_string()));
    }
    let (Ok(port), Ok(settings), true) = (port, settings, problems.is_empty()) else {
        eprintln!(
            "defender-sentinel-sync: cannot start, {} setting problem(s):",
            problems.len()
        );
        for p in &problems {
            eprintln!("{p}");
        }
        return Err(ExitCode::from(1));
    };
    match startup::runtime() {
        Ok(rt) => Ok((port, settings, rt)),
        Err(e) => {
            eprintln!("defender-sentinel-sync: cannot start the runtime: {e}");
            Err(ExitCode::from(1))
        }
    }
}

/// One forward cycle from the command line, bounded by the same function timeout as `serve`;
/// exit code 0 only when the cycle completed.
fn sync() -> ExitCode {
    telemetry::init();
    let (_, settings, runtime) = match load(Ok(0)) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let result = runtime.block_on(async move {
        let mut runner = startup::build_engine(&settings).await?;
        if std::io::stdout().is_terminal() {
            runner.sync.set_progress(std::sync::Arc::new(|p| {
                println!("{}", runner::progress_line(p))
            }));
            runner.sync.set_reverse_progress(std::sync::Arc::new(|p| {
                println!("{}", runner::poll_progress_line(p))
            }));
        }
        let deadline = timeout::deadline(tokio::time::Instant::now(), settings.function_timeout);
        let report = runner.sync.run_cycle(deadline).await;
        runner::log_summary(&report);
        for t in &report.tenants {
            println!("{}", runner::tenant_line(t));
            for e in &t.errors {
                println!("  error: {e}");
            }
        }
        if let Some(r) = &report.reverse {
            println!("{}", runner::reverse_line(r));
            for e in &r.errors {
                println!("  error: {e}");
            }
        }
        println!("{}", runner.calls());
        anyhow::Ok(report.completed())
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("defender-sentinel-sync sync: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `check`: one call per upstream; prints a line per tenant and API; exit code 0 only when
/// every line passed.
fn check() -> ExitCode {
    telemetry::init();
    let (_, settings, runtime) = match load(Ok(0)) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match runtime.block_on(defender_sentinel_sync::check::run(&settings)) {
        Ok(report) => {
            for line in &report.lines {
                println!("{line}");
            }
            if report.passed() {
                println!("All checks passed.");
                ExitCode::SUCCESS
            } else {
                println!(
                    "Some checks did not pass: grant what is named above (docs/permissions.md)."
                );
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("defender-sentinel-sync check: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Validates everything first (fast, no I/O but host.json), then binds and serves.
fn serve(port: Result<u16, String>) -> ExitCode {
    telemetry::init();
    let (port, settings, runtime) = match load(port) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let result =
        runtime.block_on(async move { startup::App::bind(settings, port).await?.run().await });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("defender-sentinel-sync: {e:#}");
            ExitCode::from(1)
        }
    }
}
