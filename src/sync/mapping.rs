//! The value mappings between Defender (Graph) and Sentinel vocabularies live in the domain
//! ([`crate::domain::mapping`]), where the adapters use them too; the engine keeps this path.

pub use crate::domain::mapping::*;
