//! defender-sentinel-sync: keeps Microsoft Defender XDR incidents and Microsoft Sentinel
//! incidents in sync, both ways, as an Azure Functions custom handler.

pub mod adapters;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod host;
pub mod runner;
pub mod startup;
pub mod state;
pub mod sync;
pub mod telemetry;

/// The domain model and the ports (traits, values, errors) live in `dss-core`, below every
/// other layer; see `docs/architecture.md`.
pub use dss_core::{domain, ports};
