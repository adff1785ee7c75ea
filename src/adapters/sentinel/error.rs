use crate::adapters::http::Failure;
use crate::ports::{Classify, ErrorClass};
use std::time::Duration;

/// Errors from ARM (Microsoft.SecurityInsights), grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum SentinelError {
    #[error(
        "ARM refused our credentials ({status}): {message}. The identity needs the Microsoft Sentinel Contributor role on the workspace"
    )]
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

impl From<Failure> for SentinelError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Auth { status, message } => Self::Auth { status, message },
            Failure::NotFound { .. } => Self::NotFound,
            // 409 `Conflict` "New version of resource … exists" = stale etag; 412 if If-Match were honoured.
            Failure::Conflict { message, .. } => Self::Conflict(message),
            Failure::Throttled { retry_after } => Self::Throttled { retry_after },
            Failure::Transient(m) => Self::Transient(m),
            Failure::Rejected { status, message } => Self::Rejected { status, message },
        }
    }
}

impl From<crate::adapters::http::ErrorInfo> for SentinelError {
    fn from(e: crate::adapters::http::ErrorInfo) -> Self {
        Failure::from(e).into()
    }
}

impl From<crate::adapters::http::SendError> for SentinelError {
    fn from(e: crate::adapters::http::SendError) -> Self {
        Failure::from(e).into()
    }
}
