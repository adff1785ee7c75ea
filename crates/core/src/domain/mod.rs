//! The incident model both sides are mapped into. It knows neither Graph nor ARM: no wire
//! shapes, no HTTP. Each side's synced fields are kept in that side's own vocabulary
//! (`docs/sync-model.md`), so the three-way merge compares like with like.

mod changes;
mod enums;
mod ids;
mod incident;
pub mod mapping;
pub mod records;

pub use changes::*;
pub use enums::*;
pub use ids::*;
pub use incident::*;
