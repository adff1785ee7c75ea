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

/// Entry points for the fuzz targets and the corpus replay (`crate::fuzzing`): entities and
/// `$batch` answers read exactly as [`TableClient`] reads them.
pub(crate) mod fuzz {
    pub(crate) use super::batch::parse_response as batch_response;
    pub(crate) use super::error::error_body;

    /// A query answer's entities (`{"value":[…]}`) or one entity (a point read).
    pub(crate) fn entities(body: &[u8]) -> Result<Vec<super::Entity>, String> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        match v {
            serde_json::Value::Object(mut m) if m.contains_key("value") => {
                let Some(serde_json::Value::Array(items)) = m.remove("value") else {
                    return Err("value is not an array".into());
                };
                items
                    .into_iter()
                    .map(|i| super::Entity::from_json(i, None).map_err(|e| e.to_string()))
                    .collect()
            }
            other => super::Entity::from_json(other, Some("W/\"header\"".into()))
                .map(|e| vec![e])
                .map_err(|e| e.to_string()),
        }
    }

    /// A point read's entity.
    pub(crate) fn entity(body: &[u8]) -> Result<super::Entity, String> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        super::Entity::from_json(v, None).map_err(|e| e.to_string())
    }

    /// The JSON body a write sends for `e`.
    pub(crate) fn to_json(e: &super::Entity) -> serde_json::Value {
        e.to_json()
    }
}
