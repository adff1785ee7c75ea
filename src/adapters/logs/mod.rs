//! Azure Monitor Logs Ingestion API (alerts and evidence rows to a custom table).

mod error;
pub use error::LogsError;
