//! A table entity as JSON (`odata=minimalmetadata`): keys, ETag and the other properties.

use super::TableError;
use serde_json::{Map, Value};

/// Which ETag a write expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `If-Match: *`: the entity must exist, any version.
    Any,
    /// `If-Match: <etag>`: the entity must still carry this ETag.
    ETag(String),
}

impl IfMatch {
    pub(crate) fn header(&self) -> &str {
        match self {
            IfMatch::Any => "*",
            IfMatch::ETag(e) => e,
        }
    }
}

/// One entity. `properties` holds everything but the keys, `Timestamp` and OData annotations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entity {
    pub partition_key: String,
    pub row_key: String,
    /// The ETag it was read with (absent on entities built locally).
    pub etag: Option<String>,
    pub properties: Map<String, Value>,
}

impl Entity {
    /// An entity with no properties yet.
    pub fn new(partition_key: impl Into<String>, row_key: impl Into<String>) -> Self {
        Self {
            partition_key: partition_key.into(),
            row_key: row_key.into(),
            etag: None,
            properties: Map::new(),
        }
    }

    /// Sets a property (builder style).
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(name.to_owned(), value.into());
        self
    }

    /// A string property.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str)
    }

    /// The JSON body sent to the service.
    pub(crate) fn to_json(&self) -> Value {
        let mut m = self.properties.clone();
        m.insert(
            "PartitionKey".into(),
            Value::String(self.partition_key.clone()),
        );
        m.insert("RowKey".into(), Value::String(self.row_key.clone()));
        Value::Object(m)
    }

    /// Reads an entity from a response object; `etag` from the header when the body has none.
    pub(crate) fn from_json(v: Value, etag: Option<String>) -> Result<Self, TableError> {
        let Value::Object(mut m) = v else {
            return Err(TableError::Rejected(
                "an entity in the response is not a JSON object".into(),
            ));
        };
        let mut take_key = |k: &str| match m.remove(k) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(TableError::Rejected(format!(
                "an entity in the response has no {k}"
            ))),
        };
        let partition_key = take_key("PartitionKey")?;
        let row_key = take_key("RowKey")?;
        let body_etag = match m.remove("odata.etag") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        m.remove("Timestamp");
        m.retain(|k, _| !k.starts_with("odata.") && !k.contains("@odata."));
        Ok(Self {
            partition_key,
            row_key,
            etag: body_etag.or(etag),
            properties: m,
        })
    }
}

/// Checks a PartitionKey/RowKey against the service's rules (no `/ \ # ?`, no control
/// characters, at most 1 KiB), so a bad key fails here with its name rather than as a 400.
pub(crate) fn validate_key(what: &str, k: &str) -> Result<(), TableError> {
    if k.len() > 1024
        || k.chars()
            .any(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control())
    {
        return Err(TableError::Rejected(format!(
            "{what} '{k}' is not allowed (no / \\ # ? or control characters, at most 1 KiB)"
        )));
    }
    Ok(())
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `'` (which OData keys
/// use as quotes), for use in paths and query values (spaces as `%20`, never `+`).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'\'') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Quotes a string as an OData literal: `'it''s'`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `table(PartitionKey='pk',RowKey='rk')`, keys quoted and encoded.
pub(crate) fn entity_path(table: &str, pk: &str, rk: &str) -> Result<String, TableError> {
    validate_key("PartitionKey", pk)?;
    validate_key("RowKey", rk)?;
    Ok(format!(
        "{table}(PartitionKey={},RowKey={})",
        encode(&quote(pk)),
        encode(&quote(rk))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_json_strips_metadata_and_takes_the_body_etag() {
        let v = serde_json::json!({"odata.etag":"W/\"x\"","PartitionKey":"p","RowKey":"r","Timestamp":"t",
            "Timestamp@odata.type":"Edm.DateTime","n":1});
        let e = Entity::from_json(v, Some("header".into())).unwrap();
        assert_eq!(
            e,
            Entity {
                partition_key: "p".into(),
                row_key: "r".into(),
                etag: Some("W/\"x\"".into()),
                properties: Entity::new("p", "r").with("n", 1).properties
            }
        );
    }

    #[test]
    fn keys_are_quoted_encoded_and_validated() {
        assert_eq!(
            entity_path("t", "a b", "it's").unwrap(),
            "t(PartitionKey='a%20b',RowKey='it''s')"
        );
        assert!(
            matches!(entity_path("t", "a/b", "r"), Err(TableError::Rejected(m)) if m.contains("PartitionKey"))
        );
    }
}
