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

/// Entry point for the fuzz targets and the corpus replay (`crate::fuzzing`): the rows of one
/// alert, serialized within `max_bytes` as [`LogsClient`] sends them.
pub(crate) mod fuzz {
    use crate::ports::AlertRecord;

    pub(crate) fn rows(record: &AlertRecord, max_bytes: usize) -> Result<Vec<Vec<u8>>, String> {
        super::rows::rows_for(record, time::OffsetDateTime::UNIX_EPOCH)
            .into_iter()
            .map(|row| super::rows::serialize_within(row, max_bytes).map_err(|e| e.to_string()))
            .collect()
    }
}
