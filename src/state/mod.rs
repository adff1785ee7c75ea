//! The durable sync state. The port ([`StateStore`], its records and errors) and the in-memory
//! store live in `dss-core` (so test doubles can share them); the Azure Table Storage store,
//! an adapter over `adapters::table`, is here (layout in `docs/table-layout.md`).

pub use dss_core::state::*;

pub mod table;
