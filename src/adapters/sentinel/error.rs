use crate::adapters::http::Failure;
pub use crate::ports::SentinelError;

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
