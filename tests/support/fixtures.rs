//! The documented sample payloads in `tests/fixtures/` (each with a `.source.txt` naming the
//! Microsoft documentation page it comes from and any edit made to it).
#![allow(dead_code, clippy::unwrap_used)]

/// A fixture from `tests/fixtures/`.
pub fn fixture(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}
