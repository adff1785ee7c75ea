//! Microsoft Sentinel incidents and comments through Azure Resource Manager.
//! Wire types are private ([`wire`]) and map to the domain in one place.

mod client;
mod error;
mod wire;

pub use client::SentinelClient;
pub use error::SentinelError;
