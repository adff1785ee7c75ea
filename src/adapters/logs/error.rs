use crate::adapters::http::Failure;
pub use crate::ports::LogsError;

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
