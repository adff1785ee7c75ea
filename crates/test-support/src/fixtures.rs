//! The documented sample payloads in the workspace's `tests/fixtures/` (each with a
//! `.source.txt` naming the Microsoft documentation page it comes from and any edit made to it).
//! One loader for the root crate's unit and integration tests and the simulators' tests.

use std::path::{Path, PathBuf};

/// The workspace's `tests/fixtures/` folder (this crate sits at `crates/test-support`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A fixture parsed as JSON; panics (the test fails) naming the file when it is missing or
/// not JSON.
#[allow(clippy::panic)]
pub fn fixture(name: &str) -> serde_json::Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("fixture {} is not JSON: {e}", path.display()))
}
