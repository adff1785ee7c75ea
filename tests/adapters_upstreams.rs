//! The HTTP adapters (Graph, ARM Sentinel, Logs Ingestion) against small local mock servers that
//! assert method, path, query, headers and bodies and answer with the shared fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "adapters_upstreams/common.rs"]
mod common;
#[path = "adapters_upstreams/graph.rs"]
mod graph;
#[path = "adapters_upstreams/logs.rs"]
mod logs;
#[path = "adapters_upstreams/sentinel.rs"]
mod sentinel;
