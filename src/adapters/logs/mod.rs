//! Azure Monitor Logs Ingestion API (alerts and evidence rows to a custom table).
//! The row format ([`STREAM_COLUMNS`]) is this adapter's; `deploy/logs-stream-columns.md`
//! documents it for the DCR.

mod batch;
mod client;
mod error;
mod rows;

pub use client::{LogsClient, MAX_CALL_BYTES};
pub use error::LogsError;
pub use rows::STREAM_COLUMNS;
