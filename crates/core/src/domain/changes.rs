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
    /// The Defender fields after this patch (what Graph holds once the PATCH is applied).
    pub fn apply(&self, d: &DefenderFields) -> DefenderFields {
        let p = self;
        let mut out = d.clone();
        if let Some(v) = &p.status {
            out.status = v.clone();
        }
        if let Some(v) = &p.severity {
            out.severity = v.clone();
        }
        if let Some(v) = &p.classification {
            out.classification = Some(v.clone());
        }
        if let Some(v) = &p.determination {
            out.determination = Some(v.clone());
        }
        if let Some(v) = &p.resolving_comment {
            out.resolving_comment = Some(v.clone());
        }
        if let Some(v) = &p.assigned_to {
            out.assigned_to = v.clone();
        }
        if let Some(v) = &p.custom_tags {
            out.custom_tags = v.clone();
        }
        out
    }

    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
