//! Azurite for tests: the launcher of `dss_fake_host::azurite`, panicking with its message
//! (a failed start is the test failing).
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub use dss_fake_host::azurite::{ACCOUNT, KEY, Options};
use std::path::Path;

/// A running Azurite; dereferences to the library's handle.
pub struct Azurite(pub dss_fake_host::azurite::Azurite);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

impl Azurite {
    /// In-memory Azurite over HTTP.
    pub fn start() -> Self {
        Self::start_with(&Options::default())
    }

    /// Azurite with options.
    pub fn start_with(opts: &Options) -> Self {
        Self(
            dss_fake_host::azurite::Azurite::start_with(repo(), opts)
                .unwrap_or_else(|e| panic!("{e:#}")),
        )
    }

    /// Graceful stop (SIGTERM, wait for exit).
    pub fn terminate(self) {
        self.0.terminate().unwrap_or_else(|e| panic!("{e:#}"))
    }
}

impl std::ops::Deref for Azurite {
    type Target = dss_fake_host::azurite::Azurite;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
