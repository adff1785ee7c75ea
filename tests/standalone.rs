//! The repository stands alone: a plain clone builds, tests and documents itself. No tracked
//! file may point at material beside the repository (a `shared/` folder next to it that a user
//! who clones does not have): the fixtures are in `tests/fixtures/`, the design notes in `docs/`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use std::path::{Path, PathBuf};

/// What pointing outside looks like (spelled in pieces so that this file does not match itself).
/// The research notes kept beside the repository are named too: the repository carries its own
/// summaries of them in `docs/` (host-protocol.md, api-notes.md, sync-model.md).
const OUTSIDE: &[&str] = &[
    concat!("..", "/shared"),
    concat!("shared", "/docs"),
    concat!("shared", "/fixtures"),
    concat!("contract", ".md"),
    concat!("functions-custom-handler", ".md"),
    concat!("api-contracts", ".md"),
    concat!("dependencies", ".md"),
    concat!("prior-art", ".md"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tracked files (`git ls-files`), or, outside a git checkout, every file but build output,
/// installed packages and git's own.
fn files(root: &Path) -> Vec<PathBuf> {
    let git = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output();
    if let Ok(out) = git
        && out.status.success()
    {
        return out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
            .collect();
    }
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if ![".git", "target", "node_modules", "dist", ".venv-infra"].contains(&name) {
                    dirs.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn no_tracked_file_points_outside_the_repository() {
    let root = root();
    let files = files(&root);
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("tests/fixtures/graph-list-incidents.json")),
        "the file list misses the fixtures: {} files",
        files.len()
    );
    let mut hits = Vec::new();
    for file in &files {
        // A tracked file deleted in the work tree is not there to read.
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in text.lines().enumerate() {
            if OUTSIDE.iter().any(|o| line.contains(o)) {
                let rel = file.strip_prefix(&root).unwrap_or(file);
                hits.push(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "files pointing outside the repository:\n{}",
        hits.join("\n")
    );
}
