//! Logging setup: tracing to stdout (the host records stderr lines as errors), without colours
//! (the host stores the lines as they are). `RUST_LOG` overrides the level.
//!
//! Format ([`LogFormat`]): one JSON object per line when the Functions host started the handler
//! (`FUNCTIONS_CUSTOMHANDLER_PORT` set), so Application Insights' `AppTraces` can be queried
//! field by field (`parse_json(Message)`); plain text otherwise (a terminal, `sync`, `check`).
//! `SYNC_LOG_FORMAT=json|text` overrides the choice. A JSON line carries the event's fields at the
//! top level (`timestamp`, `level`, `message`, `tenant`, …) and the spans it happened in under
//! `spans` (`invocation` with `function` and `invocation_id`, `forward_cycle` with `tenant`,
//! `incident` with `incident_id`).

use tracing_subscriber::EnvFilter;

/// The variable that forces a format.
pub const FORMAT_VAR: &str = "SYNC_LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The format for these values of `SYNC_LOG_FORMAT` and `FUNCTIONS_CUSTOMHANDLER_PORT`: the
/// override when it names a format, else JSON under the Functions host, else text.
pub fn format(override_: Option<&str>, host_port: Option<&str>) -> LogFormat {
    match override_.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        _ if host_port.is_some_and(|p| !p.trim().is_empty()) => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// Installs the global subscriber once; later calls are ignored (tests call it repeatedly).
pub fn init() {
    let format = format(
        std::env::var(FORMAT_VAR).ok().as_deref(),
        std::env::var(crate::cli::PORT_VAR).ok().as_deref(),
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // One line per event, payload text escaped (src/log_line.rs).
        .with_writer(crate::log_line::OneLinePerEvent)
        .with_ansi(false)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_under_the_host_text_elsewhere_and_the_override_wins() {
        assert_eq!(format(None, Some("7071")), LogFormat::Json);
        assert_eq!(format(None, None), LogFormat::Text);
        assert_eq!(format(None, Some(" ")), LogFormat::Text);
        assert_eq!(format(Some("text"), Some("7071")), LogFormat::Text);
        assert_eq!(format(Some("JSON"), None), LogFormat::Json);
        assert_eq!(format(Some("other"), None), LogFormat::Text);
    }
}
