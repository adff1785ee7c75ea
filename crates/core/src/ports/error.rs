//! The ports' errors, grouped by what the caller does next ([`ErrorClass`]). Each adapter maps
//! its transport's failures into its port's error.

use std::time::Duration;

/// What a caller does next with an upstream error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 429, 5xx, dropped connection, deadline: retry later; holds a checkpoint.
    Transient,
    /// The request itself was refused (400, mapping failure): park this item, move on.
    Rejected,
    /// Credentials or permissions: an operator must act; stop the cycle.
    Auth,
    /// The object does not exist.
    NotFound,
    /// Optimistic concurrency lost: re-read and merge again.
    Conflict,
}

/// Implemented by every adapter error.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

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
