//! Logging setup: tracing to stdout (the host records stderr lines as errors), plain text
//! without colours (the host stores the lines as they are). `RUST_LOG` overrides the level.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are ignored (tests call it repeatedly).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // One line per event, payload text escaped (src/log_line.rs).
        .with_writer(crate::log_line::OneLinePerEvent)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
