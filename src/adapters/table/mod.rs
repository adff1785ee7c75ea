//! A small Azure Table Storage client over reqwest.
//!
//! Why hand-written: there is no maintained Rust crate for Azure Tables. The official
//! `azure_data_tables` 0.21 is frozen, pulls a second azure_core/reqwest stack, and its token
//! credential trait is incompatible with azure_identity 1.0 (measured when the
//! dependencies were chosen). The REST surface we need is small: SharedKey or bearer
//! auth, create table, point reads and writes with `If-Match`, paged queries, and `$batch`.

mod auth;
pub mod batch;
mod client;
pub mod connection;
mod entity;
mod error;

pub use batch::BatchOp;
pub use client::{Continuation, Page, Query, TableClient, TableClientOptions};
pub use entity::{Entity, IfMatch, quote};
pub use error::{AUTH_HINT, REQUIRED_ROLE, TableError};
