//! Entity-group transactions: the OData `$batch` multipart/mixed format (one changeset, up to
//! 100 operations on one partition, applied all or nothing).

use super::TableError;
use super::entity::{Entity, IfMatch, entity_path};
use super::error::error_body;
use std::collections::HashSet;

/// The service's limits for one transaction.
pub const MAX_OPERATIONS: usize = 100;
const MAX_PAYLOAD: usize = 4 * 1024 * 1024;

/// One operation of a transaction.
#[derive(Debug, Clone)]
pub enum BatchOp {
    /// Insert a new entity (fails the whole transaction if it exists).
    Insert(Entity),
    /// Replace an existing entity if it matches.
    Replace(Entity, IfMatch),
    /// Merge into an existing entity if it matches.
    Merge(Entity, IfMatch),
    /// Insert or replace.
    Upsert(Entity),
    /// Delete if it matches.
    Delete {
        partition_key: String,
        row_key: String,
        if_match: IfMatch,
    },
}

impl BatchOp {
    fn keys(&self) -> (&str, &str) {
        match self {
            BatchOp::Insert(e)
            | BatchOp::Replace(e, _)
            | BatchOp::Merge(e, _)
            | BatchOp::Upsert(e) => (&e.partition_key, &e.row_key),
            BatchOp::Delete {
                partition_key,
                row_key,
                ..
            } => (partition_key, row_key),
        }
    }
}

/// Builds the request body. Sub-requests carry absolute URLs as the service expects.
pub(crate) fn build(
    base: &str,
    table: &str,
    boundary: &str,
    ops: &[BatchOp],
) -> Result<String, TableError> {
    validate(ops)?;
    let changeset = format!("changeset_{}", uuid::Uuid::new_v4());
    let mut body =
        format!("--{boundary}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n");
    for op in ops {
        body.push_str(&format!("--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"));
        let (pk, rk) = op.keys();
        let (line, if_match, entity) = match op {
            BatchOp::Insert(e) => (format!("POST {base}/{table} HTTP/1.1"), None, Some(e)),
            BatchOp::Replace(e, m) => (
                format!("PUT {base}/{} HTTP/1.1", entity_path(table, pk, rk)?),
                Some(m),
                Some(e),
            ),
            BatchOp::Merge(e, m) => (
                format!("MERGE {base}/{} HTTP/1.1", entity_path(table, pk, rk)?),
                Some(m),
                Some(e),
            ),
            BatchOp::Upsert(e) => (
                format!("PUT {base}/{} HTTP/1.1", entity_path(table, pk, rk)?),
                None,
                Some(e),
            ),
            BatchOp::Delete { if_match, .. } => (
                format!("DELETE {base}/{} HTTP/1.1", entity_path(table, pk, rk)?),
                Some(if_match),
                None,
            ),
        };
        body.push_str(&line);
        body.push_str(
            "\r\nAccept: application/json;odata=minimalmetadata\r\nDataServiceVersion: 3.0;\r\n",
        );
        if let Some(m) = if_match {
            body.push_str(&format!("If-Match: {}\r\n", m.header()));
        }
        match entity {
            Some(e) => {
                super::entity::validate_key("PartitionKey", pk)?;
                super::entity::validate_key("RowKey", rk)?;
                let json = e.to_json().to_string();
                body.push_str("Prefer: return-no-content\r\nContent-Type: application/json\r\n");
                body.push_str(&format!("Content-Length: {}\r\n\r\n{json}\r\n", json.len()));
            }
            None => body.push_str("\r\n"),
        }
    }
    body.push_str(&format!("--{changeset}--\r\n--{boundary}--\r\n"));
    if body.len() > MAX_PAYLOAD {
        return Err(TableError::Rejected(format!(
            "a transaction may carry at most 4 MiB, this one has {} bytes",
            body.len()
        )));
    }
    Ok(body)
}

/// 1–100 operations, one partition, no row twice.
fn validate(ops: &[BatchOp]) -> Result<(), TableError> {
    if ops.is_empty() || ops.len() > MAX_OPERATIONS {
        return Err(TableError::Rejected(format!(
            "a transaction needs 1 to {MAX_OPERATIONS} operations, not {}",
            ops.len()
        )));
    }
    let pk = ops[0].keys().0;
    let mut rows = HashSet::new();
    for op in ops {
        let (p, r) = op.keys();
        if p != pk {
            return Err(TableError::Rejected(format!(
                "a transaction spans one partition; got '{pk}' and '{p}'"
            )));
        }
        if !rows.insert(r) {
            return Err(TableError::Rejected(format!(
                "a transaction may touch row '{r}' only once"
            )));
        }
    }
    Ok(())
}

/// Reads the per-operation statuses and ETags. A failed transaction answers with one part: the
/// failing operation's status and error, which becomes the error of the whole call.
pub(crate) fn parse_response(
    text: &str,
    expected: usize,
) -> Result<Vec<Option<String>>, TableError> {
    let mut results: Vec<(u16, Option<String>, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("HTTP/1.1 ") {
            let status = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            results.push((status, None, String::new()));
        } else if let Some(last) = results.last_mut() {
            if let Some((name, value)) = line
                .split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("etag"))
            {
                let _ = name;
                last.1 = Some(value.trim().to_owned());
            } else if line.starts_with('{') {
                last.2 = line.to_owned();
            }
        }
    }
    if let Some((status, _, body)) = results.iter().find(|(s, _, _)| !(200..300).contains(s)) {
        let (code, message) = error_body(body);
        return Err(TableError::from_status(*status, &code, &message, None));
    }
    if results.len() != expected {
        return Err(TableError::Transient(format!(
            "the transaction answered {} results for {expected} operations",
            results.len()
        )));
    }
    Ok(results.into_iter().map(|(_, etag, _)| etag).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_rejects_mixed_partitions_duplicate_rows_and_oversize() {
        let a = Entity::new("p", "1");
        let b = Entity::new("q", "2");
        assert!(
            matches!(build("http://x", "t", "b", &[BatchOp::Insert(a.clone()), BatchOp::Insert(b)]), Err(TableError::Rejected(m)) if m.contains("one partition"))
        );
        assert!(
            matches!(build("http://x", "t", "b", &[BatchOp::Insert(a.clone()), BatchOp::Upsert(a.clone())]), Err(TableError::Rejected(m)) if m.contains("only once"))
        );
        let many: Vec<_> = (0..101)
            .map(|i| BatchOp::Insert(Entity::new("p", i.to_string())))
            .collect();
        assert!(matches!(
            build("http://x", "t", "b", &many),
            Err(TableError::Rejected(_))
        ));
    }

    #[test]
    fn build_writes_one_changeset_with_if_match() {
        let body = build(
            "http://h/acct",
            "t",
            "batch_1",
            &[BatchOp::Replace(
                Entity::new("p", "1"),
                IfMatch::ETag("W/\"e\"".into()),
            )],
        )
        .unwrap();
        assert!(
            body.starts_with("--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_")
        );
        assert!(body.contains("PUT http://h/acct/t(PartitionKey='p',RowKey='1') HTTP/1.1\r\n"));
        assert!(body.contains("If-Match: W/\"e\"\r\n"));
        assert!(body.ends_with("--batch_1--\r\n"));
    }

    #[test]
    fn parse_success_and_failure() {
        let ok = "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\nETag: W/\"1\"\r\n\r\n--b\r\n\r\nHTTP/1.1 204 No Content\r\nETag: W/\"2\"\r\n--b--";
        assert_eq!(
            parse_response(ok, 2).unwrap(),
            vec![Some("W/\"1\"".into()), Some("W/\"2\"".into())]
        );
        let fail = "--b\r\nHTTP/1.1 412 Precondition Failed\r\nContent-Type: application/json\r\n\r\n{\"odata.error\":{\"code\":\"UpdateConditionNotSatisfied\",\"message\":{\"value\":\"1:nope\"}}}\r\n--b--";
        assert!(
            matches!(parse_response(fail, 2), Err(TableError::PreconditionFailed(m)) if m.contains("UpdateConditionNotSatisfied"))
        );
    }
}
