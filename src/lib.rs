//! defender-sentinel-sync: an Azure Functions custom handler that syncs Microsoft Defender XDR
//! incidents into Microsoft Sentinel (forward sync; reverse sync through `SentinelWebhook`, the
//! timer's poll not switched on yet) and ships their alerts and evidence to Log Analytics.
//!
//! Cargo feature `demo` (default): the `demo` subcommand, with the simulated upstreams and the
//! fake Functions host compiled in. The deployed package is built without it.

pub mod adapters;
pub mod call_clock;
pub mod check;
pub mod cli;
pub mod config;
pub mod credentials;
#[cfg(feature = "demo")]
pub mod demo;
/// Entry points of the fuzz targets and their corpus replay (not an API).
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod log_line;
pub mod runner;
pub mod startup;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod webhook;

/// The domain model and the ports (traits, values, errors) live in `dss-core`, below every
/// other layer; see `docs/architecture.md`.
pub use dss_core::{domain, ports};
