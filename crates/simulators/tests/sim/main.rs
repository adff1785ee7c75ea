//! Every simulator rule, tested over real HTTP against running simulators.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness helpers outside #[test] fns

mod arm;
mod common;
mod control;
mod entra;
mod graph;
mod logs;
mod throttle_faults;
mod unified;
