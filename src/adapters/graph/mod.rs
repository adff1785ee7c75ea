//! Microsoft Graph security (Defender XDR incidents, alerts, comments; users).
//! Wire types are private ([`wire`]); they map to the domain in one place ([`mapping`]).

mod client;
mod error;
mod mapping;
mod request;
mod users;
mod wire;

pub use client::GraphClient;
pub use error::DefenderError;
