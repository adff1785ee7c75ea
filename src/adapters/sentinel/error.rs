use crate::ports::{Classify, ErrorClass};
use std::time::Duration;

/// Errors from ARM (Microsoft.SecurityInsights), grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum SentinelError {
    #[error("ARM refused our credentials ({status}): {message}. The identity needs the Microsoft Sentinel Contributor role on the workspace")]
    Auth { status: u16, message: String },
    #[error("not found in Sentinel")]
    NotFound,
    #[error("the Sentinel incident changed since it was read (stale etag): {0}")]
    Conflict(String),
    #[error("ARM throttled the request (retry after {retry_after:?})")]
    Throttled { retry_after: Option<Duration> },
    #[error("ARM unavailable: {0}")]
    Transient(String),
    #[error("ARM rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

impl Classify for SentinelError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Auth { .. } => ErrorClass::Auth,
            Self::NotFound => ErrorClass::NotFound,
            Self::Conflict(_) => ErrorClass::Conflict,
            Self::Throttled { .. } | Self::Transient(_) => ErrorClass::Transient,
            Self::Rejected { .. } => ErrorClass::Rejected,
        }
    }
}

impl From<crate::adapters::http::ErrorInfo> for SentinelError {
    fn from(e: crate::adapters::http::ErrorInfo) -> Self {
        let message = match e.code {
            Some(code) => format!("{code}: {}", e.message),
            None => e.message,
        };
        match e.status {
            401 | 403 => Self::Auth { status: e.status, message },
            404 => Self::NotFound,
            // 409 `Conflict` "New version of resource … exists" = stale etag; 412 if If-Match were honoured.
            409 | 412 => Self::Conflict(message),
            429 => Self::Throttled { retry_after: e.retry_after },
            408 | 500..=599 => Self::Transient(format!("{} {message}", e.status)),
            status => Self::Rejected { status, message },
        }
    }
}

impl From<crate::adapters::http::SendError> for SentinelError {
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
