//! Records ↔ entities. A record is stored as JSON split across string properties `State_0`,
//! `State_1`, … (each under the 64 KiB property limit), with `Chunks` saying how many, so a
//! large merge base or a long list of shipped-alert fingerprints never loses data. Only an
//! entity beyond Table Storage's 1 MiB limit is refused, with [`StateError::Invalid`].

use crate::adapters::table::Entity;
use crate::state::StateError;
use serde_json::Value;

/// UTF-16 code units per chunk: a string property holds at most 64 KiB = 32,768 UTF-16 units.
pub(crate) const CHUNK_UNITS: usize = 32_000;
/// The service's entity size limit.
pub(crate) const MAX_ENTITY_BYTES: usize = 1024 * 1024;
/// The service's property count limit (including PartitionKey, RowKey and Timestamp).
const MAX_PROPERTIES: usize = 252;
const CHUNKS: &str = "Chunks";

/// Encodes `value` into an entity, with `extra` scalar properties for filtering.
pub(crate) fn encode<T: serde::Serialize>(
    pk: &str,
    rk: &str,
    value: &T,
    extra: Vec<(&str, Value)>,
) -> Result<Entity, StateError> {
    let json = serde_json::to_string(value)
        .map_err(|e| StateError::Invalid(format!("cannot serialise the record {pk}/{rk}: {e}")))?;
    let chunks = split_utf16(&json, CHUNK_UNITS);
    let mut e = Entity::new(pk, rk).with(CHUNKS, chunks.len() as i64);
    for (i, c) in chunks.into_iter().enumerate() {
        e.properties.insert(format!("State_{i}"), Value::String(c));
    }
    for (k, v) in extra {
        e.properties.insert(k.to_owned(), v);
    }
    let size = entity_size(&e);
    if size > MAX_ENTITY_BYTES || e.properties.len() > MAX_PROPERTIES {
        return Err(StateError::Invalid(format!(
            "the record {pk}/{rk} needs {size} bytes in {} properties; Table Storage allows 1 MiB and 252",
            e.properties.len()
        )));
    }
    Ok(e)
}

/// Decodes the JSON of an entity written by [`encode`].
pub(crate) fn decode<T: serde::de::DeserializeOwned>(e: &Entity) -> Result<T, StateError> {
    let bad = |m: String| {
        StateError::Invalid(format!(
            "state record {}/{}: {m}",
            e.partition_key, e.row_key
        ))
    };
    let n = e
        .properties
        .get(CHUNKS)
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("no Chunks property".into()))?;
    let mut json = String::new();
    for i in 0..n {
        json.push_str(
            e.str(&format!("State_{i}"))
                .ok_or_else(|| bad(format!("chunk State_{i} is missing")))?,
        );
    }
    serde_json::from_str(&json).map_err(|err| bad(format!("cannot decode: {err}")))
}

/// Splits on char boundaries into pieces of at most `units` UTF-16 code units. Always at least
/// one piece, so an empty string round-trips.
fn split_utf16(s: &str, units: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() > units {
            out.push(String::new());
            used = 0;
        }
        used += c.len_utf16();
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

/// The service's documented size formula: 4 + 2·len(PK) + 2·len(RK) + Σ(8 + 2·len(name) + value),
/// strings 4 + 2 bytes per UTF-16 unit, numbers 8, booleans 1.
fn entity_size(e: &Entity) -> usize {
    let utf16 = |s: &str| s.encode_utf16().count();
    let props: usize = e
        .properties
        .iter()
        .map(|(k, v)| {
            8 + 2 * utf16(k)
                + match v {
                    Value::String(s) => 4 + 2 * utf16(s),
                    Value::Bool(_) => 1,
                    _ => 8,
                }
        })
        .sum();
    4 + 2 * utf16(&e.partition_key) + 2 * utf16(&e.row_key) + props
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_record_is_split_and_round_trips() {
        let big: String = "é漢a".repeat(30_000); // 90,000 chars, multi-byte
        let e = encode("p", "r", &big, vec![("Tenant", Value::from("t"))]).unwrap();
        assert_eq!(e.properties.get("Chunks"), Some(&Value::from(3)));
        for i in 0..3 {
            assert!(e.str(&format!("State_{i}")).unwrap().encode_utf16().count() <= CHUNK_UNITS);
        }
        assert_eq!(decode::<String>(&e).unwrap(), big);
    }

    #[test]
    fn surrogate_pairs_are_never_split() {
        let parts = split_utf16(&"😀".repeat(5), 3);
        assert_eq!(parts, vec!["😀", "😀", "😀", "😀", "😀"]);
        assert_eq!(split_utf16("", 3), vec![""]);
    }

    #[test]
    fn beyond_one_mib_is_invalid_and_a_missing_chunk_is_reported() {
        let too_big = "x".repeat(MAX_ENTITY_BYTES / 2);
        assert!(
            matches!(encode("p", "r", &too_big, vec![]), Err(StateError::Invalid(m)) if m.contains("1 MiB"))
        );
        let mut e = encode("p", "r", &"y".repeat(40_000), vec![]).unwrap();
        e.properties.remove("State_1");
        assert!(
            matches!(decode::<String>(&e), Err(StateError::Invalid(m)) if m.contains("State_1"))
        );
    }
}
