//! `defender-sentinel-sync`: the Azure Functions custom handler and its command line.

use clap::{CommandFactory, Parser};
use defender_sentinel_sync::cli::{self, Action, Cli};
use defender_sentinel_sync::config::Settings;
use defender_sentinel_sync::{startup, telemetry};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::action(&cli, std::env::var(cli::PORT_VAR).ok().as_deref()) {
        Action::Serve(port) => serve(port),
        Action::Sync => not_built("sync"),
        Action::Demo => not_built("demo"),
        Action::Help => {
            let _ = Cli::command().print_help();
            ExitCode::from(2)
        }
    }
}

fn not_built(what: &str) -> ExitCode {
    eprintln!("defender-sentinel-sync {what}: not built yet");
    ExitCode::from(2)
}

/// Validates everything first (fast, no I/O but host.json), then binds and serves. Problems go
/// to stderr, one line each: the host shows a crashed handler's last stderr lines.
fn serve(port: Result<u16, String>) -> ExitCode {
    telemetry::init();
    let settings = Settings::from_process_env();
    let mut problems: Vec<String> = port.as_ref().err().cloned().into_iter().collect();
    if let Err(errors) = &settings {
        problems.extend(errors.0.iter().map(|e| e.to_string()));
    }
    let (Ok(port), Ok(settings), true) = (port, settings, problems.is_empty()) else {
        eprintln!("defender-sentinel-sync: cannot start, {} setting problem(s):", problems.len());
        for p in &problems {
            eprintln!("{p}");
        }
        return ExitCode::from(1);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("defender-sentinel-sync: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move { startup::App::bind(settings, port).await?.run().await });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("defender-sentinel-sync: {e:#}");
            ExitCode::from(1)
        }
    }
}
