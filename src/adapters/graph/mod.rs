//! Microsoft Graph security (Defender XDR incidents, alerts, comments; users).

mod error;
pub use error::DefenderError;
