//! The documented sample payloads in `tests/fixtures/`, through the one loader in
//! `dss-test-support`.
#![allow(dead_code, unused_imports)]

pub use dss_test_support::fixture;
