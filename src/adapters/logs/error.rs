use crate::adapters::http::Failure;
use crate::ports::{Classify, ErrorClass};
use std::time::Duration;

/// Errors from the Logs Ingestion API, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error(
        "Logs Ingestion refused our credentials ({status}): {message}. The identity needs the Monitoring Metrics Publisher role on the data collection rule"
    )]
    Auth { status: u16, message: String },
    #[error("Logs Ingestion throttled the request (retry after {retry_after:?})")]
    Throttled { retry_after: Option<Duration> },
    #[error("Logs Ingestion unavailable: {0}")]
    Transient(String),
    #[error("Logs Ingestion rejected the rows ({status}): {message}")]
    Rejected { status: u16, message: String },
}

impl Classify for LogsError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Auth { .. } => ErrorClass::Auth,
            Self::Throttled { .. } | Self::Transient(_) => ErrorClass::Transient,
            Self::Rejected { .. } => ErrorClass::Rejected,
        }
    }
}

impl From<Failure> for LogsError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Auth { status, message } => Self::Auth { status, message },
            Failure::Throttled { retry_after } => Self::Throttled { retry_after },
            Failure::Transient(m) => Self::Transient(m),
            Failure::NotFound { message } => Self::Rejected {
                status: 404,
                message,
            },
            Failure::Conflict { status, message } | Failure::Rejected { status, message } => {
                Self::Rejected { status, message }
            }
        }
    }
}

impl From<crate::adapters::http::ErrorInfo> for LogsError {
    fn from(e: crate::adapters::http::ErrorInfo) -> Self {
        Failure::from(e).into()
    }
}

impl From<crate::adapters::http::SendError> for LogsError {
    fn from(e: crate::adapters::http::SendError) -> Self {
        Failure::from(e).into()
    }
}
