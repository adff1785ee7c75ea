//! Azure Monitor Logs Ingestion API: `POST /dataCollectionRules/{id}/streams/{stream}`.

pub mod store;

use crate::state::{Shared, lock, read};
use crate::util::{azure_core_error, query_map};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::io::Read;
use std::sync::Arc;

pub use store::{LogsStore, MAX_FIELD_BYTES};

thread_local! {
    /// Decompression buffer reused across uploads (a fresh megabyte per upload meant fresh
    /// pages to fault in and zero every time).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Routes of the Logs Ingestion simulator (behind the gate).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/dataCollectionRules/{dcr}/streams/{stream}", post(upload))
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(shared)
}

fn bad(code: &str, msg: &str) -> Response {
    azure_core_error(StatusCode::BAD_REQUEST, code, msg)
}

fn too_large(limit: usize) -> Response {
    azure_core_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "ContentLengthLimitExceeded",
        &format!(
            "Maximum allowed content length: {limit} bytes (1 MB). Provided content length exceeds the limit."
        ),
    )
}

async fn upload(
    State(s): State<Arc<Shared>>,
    Path((dcr, stream)): Path<(String, String)>,
    RawQuery(rq): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = query_map(rq.as_deref());
    if q.get("api-version").map(String::as_str) != Some("2023-01-01") {
        return bad(
            "InvalidApiVersion",
            "The api-version query parameter must be '2023-01-01'.",
        );
    }
    let cfg = &s.cfg.logs;
    if dcr != cfg.dcr_immutable_id {
        return azure_core_error(
            StatusCode::NOT_FOUND,
            "DcrNotFound",
            &format!("Data collection rule with immutable Id '{dcr}' not found."),
        );
    }
    let Some(columns) = cfg.streams.get(&stream) else {
        return bad(
            "InvalidStream",
            &format!("Stream '{stream}' is not declared in data collection rule '{dcr}'."),
        );
    };
    let limit = cfg.max_body_bytes;
    if body.len() > limit {
        return too_large(limit);
    }
    let gz = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let checked = if gz {
        // The gzip trailer's ISIZE (uncompressed length) sizes the buffer: only a hint, capped.
        let hint = body
            .len()
            .checked_sub(4)
            .and_then(|i| body.get(i..))
            .and_then(|t| <[u8; 4]>::try_from(t).ok())
            .map_or(0, |t| u32::from_le_bytes(t) as usize);
        SCRATCH.with_borrow_mut(|out| {
            out.clear();
            out.reserve(hint.min(limit + 1));
            let read = flate2::read::GzDecoder::new(&body[..])
                .take(limit as u64 + 1)
                .read_to_end(out);
            if read.is_err() {
                return Err(bad(
                    "InvalidContentEncoding",
                    "The request body could not be decompressed as gzip.",
                ));
            }
            if out.len() > limit {
                return Err(too_large(limit));
            }
            Ok(check_rows(out, columns))
        })
    } else {
        Ok(check_rows(&body, columns))
    };
    match checked {
        Ok(Ok(Ok(()))) => {}
        Err(r) => return r,
        Ok(Ok(Err(m))) => return bad("InvalidPayload", &m),
        Ok(Err(e)) => return bad("InvalidPayload", &format!("Malformed JSON: {e}")),
    }
    if read(&s.graph_cfg).unified.is_some() {
        crate::unified::on_ingest(&s, &parse_rows(&body, gz));
    }
    lock(&s.logs).accept(stream, body, gz);
    StatusCode::NO_CONTENT.into_response()
}

/// The rows of an accepted body (unified-platform mode only: nothing else parses on arrival).
fn parse_rows(body: &[u8], gz: bool) -> Vec<serde_json::Value> {
    let mut raw = Vec::new();
    let bytes: &[u8] = if gz {
        if flate2::read::GzDecoder::new(body)
            .read_to_end(&mut raw)
            .is_err()
        {
            return Vec::new();
        }
        &raw
    } else {
        body
    };
    match serde_json::from_slice(bytes) {
        Ok(serde_json::Value::Array(rows)) => rows,
        _ => Vec::new(),
    }
}

/// The checks of an upload without building its rows: `Err` when the body is not JSON (the
/// parser's own error, as parsing into a `Value` gives it), else `Ok(Err(message))` for the
/// first rule [`check_columns`] would break on the parsed rows, else `Ok(Ok(()))`. The body is
/// walked by the same parser calls as a `Value` parse (`deserialize_any` throughout, keys with
/// `deserialize_str`), so syntax errors and their positions are the same; rule breaks are
/// noted, not raised, so that a syntax error further on still wins, as when the whole body was
/// parsed first.
fn check_rows(raw: &[u8], columns: &[String]) -> Result<Result<(), String>, serde_json::Error> {
    // What `serde_json::from_slice` does: one value, then only whitespace.
    let mut de = serde_json::Deserializer::from_slice(raw);
    let top = TopSeed(columns).deserialize(&mut de)?;
    de.end()?;
    Ok(match top {
        None => Err("The request body must be a JSON array of objects.".into()),
        Some(first_break) => first_break.map_or(Ok(()), Err),
    })
}

/// The whole body: `None` when not an array, else the rule break of its first offending item.
struct TopSeed<'c>(&'c [String]);

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Option<Option<String>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Option<Option<String>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut first_break = None;
        let mut i = 0usize;
        while let Some(item) = seq.next_element_seed(ItemSeed(self.0))? {
            if first_break.is_none() {
                first_break = match item {
                    Item::NotObject => Some(format!("Item {i} of the array is not a JSON object.")),
                    Item::Object(Some(k)) => Some(format!(
                        "Item {i}: column '{k}' is not declared in the stream."
                    )),
                    Item::Object(None) => None,
                };
            }
            i += 1;
        }
        Ok(Some(first_break))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Skip.visit_map(map)?;
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// One array item: not an object, or an object with its smallest undeclared column (a `Map`
/// keeps keys sorted, and [`check_columns`] reported the first one it met).
enum Item {
    NotObject,
    Object(Option<String>),
}

struct ItemSeed<'c>(&'c [String]);

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = Item;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = Item;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut smallest: Option<String> = None;
        while let Some(undeclared) = map.next_key_seed(KeySeed(self.0))? {
            map.next_value::<Skip>()?;
            if let Some(k) = undeclared
                && smallest.as_ref().is_none_or(|w| k < *w)
            {
                smallest = Some(k);
            }
        }
        Ok(Item::Object(smallest))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
        Skip.visit_seq(seq)?;
        Ok(Item::NotObject)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Item, E> {
        Ok(Item::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Item, E> {
        Ok(Item::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Item, E> {
        Ok(Item::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Item, E> {
        Ok(Item::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Item, E> {
        Ok(Item::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Item, E> {
        Ok(Item::NotObject)
    }
}

/// An item's key: `Some(key)` when the stream declares columns and this is not one of them.
/// Read with `deserialize_str`, as `Value` reads its keys.
struct KeySeed<'c>(&'c [String]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E>(self, k: &str) -> Result<Self::Value, E> {
        let undeclared = !self.0.is_empty() && !self.0.iter().any(|c| c == k);
        Ok(undeclared.then(|| k.to_owned()))
    }
}

/// A key below the items' level (read as `Value` reads keys, and dropped).
struct SkipKey;

impl<'de> Deserialize<'de> for SkipKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(SkipKey)
    }
}

impl<'de> Visitor<'de> for SkipKey {
    type Value = SkipKey;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E>(self, _: &str) -> Result<SkipKey, E> {
        Ok(SkipKey)
    }
}

/// Any JSON value, read with `deserialize_any` as a `Value` would be, and dropped.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_key::<SkipKey>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
}

/// Every row an object whose keys are declared columns (an empty declaration accepts any): the
/// rules as first written on parsed rows, kept as the reference [`check_rows`] is tested against.
#[cfg(test)]
fn check_columns(rows: &[serde_json::Value], columns: &[String]) -> Result<(), String> {
    for (i, r) in rows.iter().enumerate() {
        let Some(o) = r.as_object() else {
            return Err(format!("Item {i} of the array is not a JSON object."));
        };
        if columns.is_empty() {
            continue;
        }
        if let Some(k) = o.keys().find(|k| !columns.iter().any(|c| c == *k)) {
            return Err(format!(
                "Item {i}: column '{k}' is not declared in the stream."
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The reference: parse into a `Value`, then apply the rules.
    fn reference(raw: &[u8], columns: &[String]) -> Result<Result<(), String>, String> {
        match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Array(rows)) => Ok(check_columns(&rows, columns)),
            Ok(_) => Ok(Err(
                "The request body must be a JSON array of objects.".into()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn check_rows_answers_like_parsing() {
        let declared: Vec<String> = ["TimeGenerated", "IncidentId", "b"]
            .map(String::from)
            .to_vec();
        let deep = format!("[{}{}]", "[".repeat(200), "]".repeat(200));
        let bodies: Vec<String> = vec![
            r#"[]"#.into(),
            r#"[{"TimeGenerated":"x","IncidentId":"1"}]"#.into(),
            r#"[{"TimeGenerated":"x","zeta":1,"alpha":{"nested":[1,2,{"q":null}]},"b":true}]"#
                .into(),
            r#"[{"b":1}, 3, {"zz":1}]"#.into(),
            r#"[{"b":1}, {"zz":1}, 3]"#.into(),
            r#"[{"b":1}, {"zz":1}, 3, oops]"#.into(),
            r#"[{"b":1}, {"zz":1}"#.into(),
            r#"{"b":1}"#.into(),
            r#""text""#.into(),
            r#"null"#.into(),
            r#"[{"b":1}] trailing"#.into(),
            r#"[{"b":1}]   "#.into(),
            r#"[{"b":1,}]"#.into(),
            r#"[{"b":1e999}]"#.into(),
            r#"[{"b":"\ud800"}]"#.into(),
            r#"[{"\u0062":1, "\u00e9t\u00e9":2}]"#.into(),
            r#"[{"b":-12345678901234567890}, [1], "s", null, true]"#.into(),
            r#"[{"x":1,"x":2}]"#.into(),
            deep,
            String::new(),
        ];
        for b in &bodies {
            for cols in [&declared[..], &[][..]] {
                let got = check_rows(b.as_bytes(), cols).map_err(|e| e.to_string());
                assert_eq!(got, reference(b.as_bytes(), cols), "{b}");
            }
        }
        let mut bad_utf8 = br#"[{"b":"#.to_vec();
        bad_utf8.extend([b'"', 0xff, 0xfe, b'"', b'}', b']']);
        let got = check_rows(&bad_utf8, &declared).map_err(|e| e.to_string());
        assert_eq!(got, reference(&bad_utf8, &declared));
    }
}
