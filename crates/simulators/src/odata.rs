//! The small OData `$filter` subset the services are called with:
//! `prop op value [and prop op value]*`, ops `eq ne lt le gt ge`, values unquoted timestamps or
//! quoted strings. Property paths like `properties/lastModifiedTimeUtc` keep their last segment.

use crate::util::parse_time;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Time(OffsetDateTime),
    Str(String),
    Null,
}

/// One comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// Property name (last path segment).
    pub prop: String,
    pub op: Op,
    pub value: Literal,
}

/// Parses `$filter`; `allowed` lists filterable properties (case-insensitive). Errors carry a
/// message for the 400.
pub fn parse(filter: &str, allowed: &[&str]) -> Result<Vec<Clause>, String> {
    let mut out = Vec::new();
    for part in split_and(filter) {
        let mut it = part.trim().splitn(3, ' ');
        let (Some(path), Some(op), Some(value)) = (it.next(), it.next(), it.next()) else {
            return Err(format!("Invalid filter clause: '{part}'"));
        };
        let prop = path.rsplit('/').next().unwrap_or(path);
        let Some(prop) = allowed.iter().find(|a| a.eq_ignore_ascii_case(prop)) else {
            return Err(format!(
                "Invalid filter clause: property '{path}' is not supported in $filter"
            ));
        };
        let op = match op.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            _ => {
                return Err(format!(
                    "Invalid filter clause: unsupported operator '{op}'"
                ));
            }
        };
        let value = value.trim();
        let value = if let Some(s) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            Literal::Str(s.replace("''", "'"))
        } else if value.eq_ignore_ascii_case("null") {
            Literal::Null
        } else if let Some(t) = parse_time(value) {
            Literal::Time(t)
        } else {
            return Err(format!(
                "Invalid filter clause: cannot parse literal '{value}'"
            ));
        };
        out.push(Clause {
            prop: (*prop).to_owned(),
            op,
            value,
        });
    }
    Ok(out)
}

fn split_and(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        let lower = rest.to_ascii_lowercase();
        match lower.find(" and ") {
            Some(i) => {
                parts.push(rest[..i].to_owned());
                rest = &rest[i + 5..];
            }
            None => {
                parts.push(rest.to_owned());
                return parts;
            }
        }
    }
}

/// True when `obj` satisfies every clause.
pub fn matches(clauses: &[Clause], obj: &Map<String, Value>) -> bool {
    matches_with(clauses, obj, |_| None)
}

/// As [`matches`], taking already-parsed timestamps from `time_of(prop)` when it has them
/// (saves parsing a string per incident per request).
pub fn matches_with(
    clauses: &[Clause],
    obj: &Map<String, Value>,
    time_of: impl Fn(&str) -> Option<OffsetDateTime>,
) -> bool {
    clauses.iter().all(|c| {
        // The parsed timestamp, when there is one, decides without looking the member up: list
        // requests test every stored incident, and the map lookup was most of that.
        let known = match &c.value {
            Literal::Time(t) => time_of(&c.prop).map(|f| f.cmp(t)),
            _ => None,
        };
        let ord = match known {
            Some(o) => Some(o),
            None => compare(c, obj.get(&c.prop).unwrap_or(&Value::Null)),
        };
        match (c.op, ord) {
            (Op::Ne, None) => true,
            (_, None) => false,
            (Op::Eq, Some(o)) => o == Ordering::Equal,
            (Op::Ne, Some(o)) => o != Ordering::Equal,
            (Op::Lt, Some(o)) => o == Ordering::Less,
            (Op::Le, Some(o)) => o != Ordering::Greater,
            (Op::Gt, Some(o)) => o == Ordering::Greater,
            (Op::Ge, Some(o)) => o != Ordering::Less,
        }
    })
}

/// How a stored member compares with a clause's literal (`None`: not comparable).
fn compare(c: &Clause, field: &Value) -> Option<Ordering> {
    match (&c.value, field) {
        (Literal::Null, Value::Null) => Some(Ordering::Equal),
        (Literal::Null, _) => Some(Ordering::Greater),
        (Literal::Time(t), Value::String(s)) => parse_time(s).map(|f| f.cmp(t)),
        (Literal::Str(v), Value::String(s)) => {
            Some(s.to_ascii_lowercase().cmp(&v.to_ascii_lowercase()))
        }
        _ => None,
    }
}

/// Parses `$orderby=prop [asc|desc]`; returns (prop, descending).
pub fn parse_orderby(s: &str, allowed: &[&str]) -> Result<(String, bool), String> {
    let mut it = s.split_whitespace();
    let path = it.next().unwrap_or_default();
    let prop = path.rsplit('/').next().unwrap_or(path);
    let Some(prop) = allowed.iter().find(|a| a.eq_ignore_ascii_case(prop)) else {
        return Err(format!(
            "Invalid $orderby: property '{path}' is not supported"
        ));
    };
    let desc = match it.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => return Err(format!("Invalid $orderby direction '{o}'")),
    };
    Ok(((*prop).to_owned(), desc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_evaluates() {
        let f = parse(
            "lastUpdateDateTime ge 2024-05-01T10:00:00Z and lastUpdateDateTime lt 2024-05-02T00:00:00.5Z and status eq 'Active'",
            &["lastUpdateDateTime", "status"],
        )
        .unwrap();
        assert_eq!(f.len(), 3);
        let o = json!({"lastUpdateDateTime": "2024-05-01T10:00:00.0000000Z", "status": "active"});
        assert!(matches(&f, o.as_object().unwrap()));
        let o = json!({"lastUpdateDateTime": "2024-05-01T09:59:59.9999999Z", "status": "active"});
        assert!(!matches(&f, o.as_object().unwrap()));
        assert!(parse("foo eq 'x'", &["status"]).is_err());
        let f = parse(
            "properties/lastModifiedTimeUtc gt 2024-05-01T10:00:00Z",
            &["lastModifiedTimeUtc"],
        )
        .unwrap();
        assert_eq!(f[0].prop, "lastModifiedTimeUtc");
    }
}
