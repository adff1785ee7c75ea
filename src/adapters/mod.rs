//! One adapter per upstream. Each keeps its wire types private and maps them to the domain in
//! one place; each has one error enum grouped by what the caller does next.

pub mod graph;
pub mod http;
pub mod logs;
pub mod sentinel;
pub mod table;

/// Test helpers shared by the adapters' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// Reads a documented sample payload from `tests/fixtures/` in this repository.
    pub(crate) fn fixture(name: &str) -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }
}
