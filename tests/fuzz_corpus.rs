//! Replays the saved fuzz corpus (`fuzz/corpus/<target>/`) on stable, through the same
//! functions the `cargo fuzz` targets call (`defender_sentinel_sync::fuzzing`). Each function
//! panics when a property fails (a round trip, a secret in an error, a foreign link accepted),
//! so a file that once crashed a target and is kept in its corpus is a regression test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use defender_sentinel_sync::fuzzing::TARGETS;
use std::path::Path;

fn corpus(target: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_saved_corpus_and_every_file_replays_cleanly() {
    let mut failed = Vec::new();
    for (name, run) in TARGETS {
        let files = corpus(name);
        assert!(
            files.len() >= 3,
            "{name}: only {} corpus files",
            files.len()
        );
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "corpus files that fail: {failed:#?}");
}

#[test]
fn the_corpus_directories_are_exactly_the_targets() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut targets: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    targets.sort();
    assert_eq!(on_disk, targets);
    let fuzz_targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for t in &targets {
        assert!(
            fuzz_targets.join(format!("{t}.rs")).is_file(),
            "no fuzz target {t}"
        );
    }
}
