use crate::adapters::http::Failure;
use crate::ports::{Classify, ErrorClass};
use std::time::Duration;

/// Errors from Graph, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum DefenderError {
    #[error(
        "Graph refused our credentials ({status}): {message}. The app needs SecurityIncident.ReadWrite.All (application) consented in this tenant"
    )]
    Auth { status: u16, message: String },
    /// A user look-up (`/users/{upn}`, for Sentinel owners) was refused: that call needs its
    /// own permission, in the Sentinel tenant.
    #[error(
        "Graph refused the user look-up ({status}): {message}. The app needs User.Read.All (application) consented in the Sentinel tenant"
    )]
    UserLookupDenied { status: u16, message: String },
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
            Self::Auth { .. } | Self::UserLookupDenied { .. } => ErrorClass::Auth,
            Self::NotFound => ErrorClass::NotFound,
            Self::Throttled { .. } | Self::Transient(_) => ErrorClass::Transient,
            Self::Rejected { .. } => ErrorClass::Rejected,
        }
    }
}

impl From<Failure> for DefenderError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Auth { status, message } => Self::Auth { status, message },
            Failure::NotFound { .. } => Self::NotFound,
            Failure::Throttled { retry_after } => Self::Throttled { retry_after },
            Failure::Transient(m) => Self::Transient(m),
            Failure::Conflict { status, message } | Failure::Rejected { status, message } => {
                Self::Rejected { status, message }
            }
        }
    }
}

impl From<crate::adapters::http::ErrorInfo> for DefenderError {
    fn from(e: crate::adapters::http::ErrorInfo) -> Self {
        Failure::from(e).into()
    }
}

impl From<crate::adapters::http::SendError> for DefenderError {
    fn from(e: crate::adapters::http::SendError) -> Self {
        Failure::from(e).into()
    }
}
