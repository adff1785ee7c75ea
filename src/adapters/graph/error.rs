use crate::ports::{Classify, ErrorClass};
use std::time::Duration;

/// Errors from Graph, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum DefenderError {
    #[error("Graph refused our credentials ({status}): {message}. The app needs SecurityIncident.ReadWrite.All (application) consented in this tenant")]
    Auth { status: u16, message: String },
    #[error("not found in Graph")]
    NotFound,
    #[error("Graph throttled the request (retry after {retry_after:?})")]
    Throttled { retry_after: Option<Duration> },
    #[error("Graph unavailable: {0}")]
    Transient(String),
    #[error("Graph rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

impl Classify for DefenderError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Auth { .. } => ErrorClass::Auth,
            Self::NotFound => ErrorClass::NotFound,
            Self::Throttled { .. } | Self::Transient(_) => ErrorClass::Transient,
            Self::Rejected { .. } => ErrorClass::Rejected,
        }
    }
}

impl From<crate::adapters::http::ErrorInfo> for DefenderError {
    fn from(e: crate::adapters::http::ErrorInfo) -> Self {
        let message = match e.code {
            Some(code) => format!("{code}: {}", e.message),
            None => e.message,
        };
        match e.status {
            401 | 403 => Self::Auth { status: e.status, message },
            404 => Self::NotFound,
            429 => Self::Throttled { retry_after: e.retry_after },
            408 | 500..=599 => Self::Transient(format!("{} {message}", e.status)),
            status => Self::Rejected { status, message },
        }
    }
}

impl From<crate::adapters::http::SendError> for DefenderError {
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
