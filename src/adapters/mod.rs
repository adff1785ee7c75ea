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
    /// Reads a fixture from `../shared/fixtures` (CI: repo cloned next to `shared/`), falling
    /// back to `../../shared/fixtures` (a worktree one level deeper).
    pub(crate) fn fixture(name: &str) -> serde_json::Value {
        let root = env!("CARGO_MANIFEST_DIR");
        let path = [
            format!("{root}/../shared/fixtures/{name}"),
            format!("{root}/../../shared/fixtures/{name}"),
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| panic!("fixture {name} not found next to the repository"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }
}
