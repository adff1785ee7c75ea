use crate::ports::{Classify, ErrorClass};
use std::time::Duration;

/// Errors from the Logs Ingestion API, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("Logs Ingestion refused our credentials ({status}): {message}. The identity needs the Monitoring Metrics Publisher role on the data collection rule")]
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

impl From<crate::adapters::http::ErrorInfo> for LogsError {
    fn from(e: crate::adapters::http::ErrorInfo) -> Self {
        let message = match e.code {
            Some(code) => format!("{code}: {}", e.message),
            None => e.message,
        };
        match e.status {
            401 | 403 => Self::Auth { status: e.status, message },
            429 => Self::Throttled { retry_after: e.retry_after },
            408 | 500..=599 => Self::Transient(format!("{} {message}", e.status)),
            status => Self::Rejected { status, message },
        }
    }
}

impl From<crate::adapters::http::SendError> for LogsError {
    fn from(e: crate::adapters::http::SendError) -> Self {
        use crate::adapters::http::SendError;
        use crate::credentials::CredentialError;
        match e {
            SendError::Credential(CredentialError::Refused { message, .. }) => Self::Auth { status: 401, message },
            SendError::Credential(CredentialError::Transient(m)) => Self::Transient(format!("token: {m}")),
            SendError::Transport(m) => Self::Transient(m),
        }
    }
}
