//! What the sync asks of a side, in domain terms: a window of Defender incidents to list, and
//! the changes to make to a Defender incident.

use super::*;
use time::OffsetDateTime;

/// A slice of Defender incidents by `lastUpdateDateTime` (`ge from` and `lt to`), optionally
/// narrowed by `createdDateTime` (to split one instant shared by more than 500 incidents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentWindow {
    pub updated_from: OffsetDateTime,
    pub updated_to: Option<OffsetDateTime>,
    pub created_from: Option<OffsetDateTime>,
    pub created_to: Option<OffsetDateTime>,
}

/// Changes to push to a Defender incident (Graph PATCH): `None` = leave as is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DefenderPatch {
    pub status: Option<DefenderStatus>,
    pub severity: Option<DefenderSeverity>,
    pub classification: Option<DefenderClassification>,
    pub determination: Option<Determination>,
    pub resolving_comment: Option<String>,
    /// `Some(None)` unassigns.
    pub assigned_to: Option<Option<String>>,
    pub custom_tags: Option<Vec<String>>,
}

impl DefenderPatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
