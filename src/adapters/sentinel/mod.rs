//! Microsoft Sentinel incidents and comments through Azure Resource Manager.

mod error;
pub use error::SentinelError;
