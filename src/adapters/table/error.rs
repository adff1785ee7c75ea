//! Errors of the Table client, grouped by what the caller does next.

use std::time::Duration;

/// The Azure RBAC role the identity needs on the storage account for this client.
pub const REQUIRED_ROLE: &str = "Storage Table Data Contributor";

/// What an operator does about an auth error.
pub const AUTH_HINT: &str = "with an account key check the connection string; with an identity grant it the role \
                             \"Storage Table Data Contributor\" on the storage account";

/// What went wrong talking to Table Storage.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// 404: the entity (or table) is not there.
    #[error("not found: {0}")]
    NotFound(String),
    /// 409: the entity or table already exists (insert of an existing key). Re-read.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 412: the `If-Match` ETag no longer matches; someone else wrote. Re-read.
    #[error("precondition failed (ETag mismatch): {0}")]
    PreconditionFailed(String),
    /// 429 or 503 ServerBusy: retry after the given delay.
    #[error("throttled by storage; retry after {retry_after:?}")]
    Throttled { retry_after: Option<Duration> },
    /// 401/403 or a refused token: an operator must grant access.
    #[error("storage refused our credentials ({0}); {hint}", hint = AUTH_HINT)]
    Auth(String),
    /// Network failure, timeout or 5xx: may be retried.
    #[error("storage unavailable: {0}")]
    Transient(String),
    /// 400/413 and the like: the request itself is wrong (a bug or an over-limit entity).
    #[error("storage rejected the request: {0}")]
    Rejected(String),
}

impl TableError {
    /// Maps an error status and the service's error code/message to a variant.
    pub(crate) fn from_status(
        status: u16,
        code: &str,
        message: &str,
        retry_after: Option<Duration>,
    ) -> Self {
        let detail = if code.is_empty() {
            format!("HTTP {status}: {message}")
        } else {
            format!("HTTP {status} {code}: {message}")
        };
        match status {
            404 => TableError::NotFound(detail),
            409 => TableError::Conflict(detail),
            412 => TableError::PreconditionFailed(detail),
            429 => TableError::Throttled { retry_after },
            503 if code == "ServerBusy" => TableError::Throttled { retry_after },
            401 | 403 => TableError::Auth(detail),
            408 | 500..=599 => TableError::Transient(detail),
            _ => TableError::Rejected(detail),
        }
    }
}

impl From<reqwest::Error> for TableError {
    fn from(e: reqwest::Error) -> Self {
        // Network, TLS and timeout problems: the request may or may not have been applied.
        TableError::Transient(format!("{e:#}"))
    }
}

/// Code and message from an OData JSON error body (`{"odata.error":{"code","message":{"value"}}}`).
pub(crate) fn error_body(text: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let err = &v["odata.error"];
    let code = err["code"].as_str().unwrap_or_default().to_owned();
    let message = err["message"]["value"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| text.chars().take(300).collect());
    (code, message.lines().next().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_and_role_named_on_auth() {
        assert!(matches!(
            TableError::from_status(412, "UpdateConditionNotSatisfied", "", None),
            TableError::PreconditionFailed(_)
        ));
        assert!(matches!(
            TableError::from_status(409, "EntityAlreadyExists", "", None),
            TableError::Conflict(_)
        ));
        assert!(matches!(
            TableError::from_status(404, "ResourceNotFound", "", None),
            TableError::NotFound(_)
        ));
        assert!(matches!(
            TableError::from_status(503, "ServerBusy", "", None),
            TableError::Throttled { .. }
        ));
        assert!(matches!(
            TableError::from_status(503, "", "", None),
            TableError::Transient(_)
        ));
        assert!(matches!(
            TableError::from_status(400, "InvalidInput", "", None),
            TableError::Rejected(_)
        ));
        let auth = TableError::from_status(403, "AuthorizationPermissionMismatch", "no", None);
        assert!(auth.to_string().contains(REQUIRED_ROLE), "{auth}");
    }
}
