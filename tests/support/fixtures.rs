//! The shared sample payloads (`shared/fixtures`, beside the repository).
#![allow(dead_code, clippy::unwrap_used)]

/// A fixture from `../shared/fixtures` (CI, a clone) or `../../shared/fixtures` (a worktree).
pub fn fixture(name: &str) -> serde_json::Value {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = [
        format!("{root}/../shared/fixtures/{name}"),
        format!("{root}/../../shared/fixtures/{name}"),
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or_else(|| panic!("fixture {name} not found"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
