//! The command line (README, "How it runs"): `serve`, `sync`, `check`, `demo`, each with `--help`; with no
//! subcommand and `FUNCTIONS_CUSTOMHANDLER_PORT` set it serves (the host starts the handler
//! with no arguments).

use clap::{Args, Parser, Subcommand};

/// The variable the Functions host sets to the port it will call.
pub const PORT_VAR: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";

/// Syncs Microsoft Defender XDR incidents into Microsoft Sentinel (reverse sync: not built yet).
#[derive(Debug, Parser)]
#[command(name = "defender-sentinel-sync", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve as the Azure Functions custom handler on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT.
    Serve(ServeArgs),
    /// Run one sync cycle from the command line with the same settings as `serve`; exit code 0
    /// only when the cycle completed.
    Sync,
    /// Call each upstream once with the configured identity and print, per tenant and API, OK
    /// or the missing permission or role by name; exit code 0 only when all pass.
    Check,
    /// Run the forward sync on this machine against built-in simulators (no Azure needed); only
    /// in builds with the `demo` feature (the default; the deployed package has no demo).
    Demo(DemoArgs),
}

/// What `demo` prints in a build without the `demo` feature.
pub const NO_DEMO: &str = "defender-sentinel-sync demo: this build has no demo (built without the \
`demo` feature, as the deployed package is); run it from the repository: cargo run --release -- demo";

/// Options of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// How many Defender incidents to generate (split over two tenants; at least 6).
    #[arg(long, default_value_t = 20)]
    pub incidents: usize,
    /// Seed of the generated data (the same seed gives the same incidents).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Repository root or app folder holding host.json, function-defs/ and tools/azurite
    /// (default: the first such folder above the binary, else above the current directory).
    #[arg(long)]
    pub app_root: Option<std::path::PathBuf>,
    /// Keep everything running at the end until Enter is pressed (to inspect the simulators).
    #[arg(long)]
    pub keep: bool,
    /// The Sentinel-side target to demonstrate (`SENTINEL_TARGET`): `arm` (the sync creates
    /// Sentinel incidents through ARM) or `unified` (the platform creates them from the
    /// ingested alerts; the sync updates them through Graph in the workspace's tenant).
    #[arg(long, value_enum, default_value_t = DemoTarget::Arm)]
    pub target: DemoTarget,
}

/// `demo --target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoTarget {
    Arm,
    Unified,
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on (default: $FUNCTIONS_CUSTOMHANDLER_PORT).
    #[arg(long)]
    pub port: Option<u16>,
}

/// What to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Serve on this port, or report why the port is unknown (naming the setting).
    Serve(Result<u16, String>),
    Sync,
    Check,
    Demo,
    /// No subcommand and no port from the host: print help.
    Help,
}

/// Decides the action from the arguments and the host's port variable.
pub fn action(cli: &Cli, env_port: Option<&str>) -> Action {
    let env_port = env_port.map(str::trim).filter(|p| !p.is_empty());
    match &cli.command {
        Some(Command::Serve(ServeArgs { port: Some(p) })) => Action::Serve(Ok(*p)),
        Some(Command::Serve(ServeArgs { port: None })) => Action::Serve(port_from_env(env_port)),
        Some(Command::Sync) => Action::Sync,
        Some(Command::Check) => Action::Check,
        Some(Command::Demo(_)) => Action::Demo,
        None if env_port.is_some() => Action::Serve(port_from_env(env_port)),
        None => Action::Help,
    }
}

fn port_from_env(v: Option<&str>) -> Result<u16, String> {
    let v = v.ok_or_else(|| {
        format!("setting {PORT_VAR}: missing (required by serve unless --port is given)")
    })?;
    v.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("setting {PORT_VAR}: '{v}' is not a port number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("defender-sentinel-sync").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn no_subcommand_serves_when_the_host_set_the_port() {
        assert_eq!(action(&parse(&[]), Some("7071")), Action::Serve(Ok(7071)));
        assert_eq!(action(&parse(&[]), None), Action::Help);
        assert_eq!(action(&parse(&[]), Some("")), Action::Help);
    }

    #[test]
    fn serve_takes_the_port_flag_over_the_variable_and_names_the_variable_when_missing() {
        assert_eq!(
            action(&parse(&["serve", "--port", "9000"]), Some("7071")),
            Action::Serve(Ok(9000))
        );
        assert_eq!(
            action(&parse(&["serve"]), Some("7071")),
            Action::Serve(Ok(7071))
        );
        let Action::Serve(Err(e)) = action(&parse(&["serve"]), None) else {
            panic!("expected an error")
        };
        assert!(e.contains(PORT_VAR));
        let Action::Serve(Err(e)) = action(&parse(&["serve"]), Some("http")) else {
            panic!("expected an error")
        };
        assert!(e.contains(PORT_VAR));
    }

    #[test]
    fn sync_and_demo_are_subcommands() {
        assert_eq!(action(&parse(&["sync"]), Some("1")), Action::Sync);
        assert_eq!(action(&parse(&["check"]), Some("1")), Action::Check);
        assert_eq!(action(&parse(&["demo"]), None), Action::Demo);
        assert!(Cli::try_parse_from(["defender-sentinel-sync", "nope"]).is_err());
    }
}
