//! The three-way merge of `docs/sync-model.md`, PURE. For each synced field the base
//! keeps the last value seen or written on each side, in that side's own vocabulary; each side
//! is compared with its own stored value, never through the lossy mapping.
//!
//! Defender writes are returned, not executed: forward sync leaves them pending (the Sentinel
//! side of such a field's base is not advanced, so the change stays visible) and reverse sync
//! (`sync/reverse.rs`) executes them and advances the base once the PATCH succeeded.

use super::mapping::{
    self, DefenderClassificationFields, MappingError, SentinelClassificationFields,
};
use crate::domain::*;
use time::OffsetDateTime;

/// The stored base: both sides' values after the last sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeBase {
    pub defender: DefenderFields,
    pub sentinel: SentinelFields,
}

/// How conflicts and severity are handled (`SYNC_CONFLICT_POLICY`, `SEVERITY_TO_DEFENDER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePolicy {
    pub conflict: ConflictPolicyName,
    pub severity_to_defender: bool,
}

/// Everything the merge decides from: the base, both sides now, and both modification times
/// (Defender `lastUpdateDateTime`, Sentinel `lastModifiedTimeUtc`) for latest-wins.
#[derive(Debug, Clone, Copy)]
pub struct MergeInput<'a> {
    pub base: Option<&'a MergeBase>,
    pub defender: &'a DefenderFields,
    /// `None` when the Sentinel incident does not exist (yet).
    pub sentinel: Option<&'a SentinelFields>,
    pub defender_modified: OffsetDateTime,
    pub sentinel_modified: Option<OffsetDateTime>,
}

/// A synced field (a unit of the merge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Status,
    Severity,
    /// Classification with reason/determination and the classification/resolving comment.
    Classification,
    Owner,
    Tags,
}

/// Which side a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Defender,
    Sentinel,
}

/// Both sides changed one field differently; `winner` is what the policy chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub field: Field,
    pub winner: Side,
    pub defender_value: String,
    pub sentinel_value: String,
}

impl Conflict {
    /// True when an analyst's Sentinel change is overwritten (recorded by a Sentinel comment).
    pub fn overrides_analyst(&self) -> bool {
        self.winner == Side::Defender
    }
}

/// Field changes to make on the Sentinel incident: `None` = leave as is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SentinelWrites {
    pub status: Option<SentinelStatus>,
    pub severity: Option<SentinelSeverity>,
    pub classification: Option<SentinelClassificationFields>,
    pub owner_upn: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
}

impl SentinelWrites {
    /// True when nothing is to be written.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The Sentinel fields after these writes.
    pub fn apply(&self, s: &SentinelFields) -> SentinelFields {
        let mut out = s.clone();
        if let Some(v) = &self.status {
            out.status = v.clone();
        }
        if let Some(v) = &self.severity {
            out.severity = v.clone();
        }
        if let Some((c, r, m)) = &self.classification {
            (
                out.classification,
                out.classification_reason,
                out.classification_comment,
            ) = (c.clone(), r.clone(), m.clone());
        }
        if let Some(v) = &self.owner_upn {
            out.owner_upn = v.clone();
        }
        if let Some(v) = &self.tags {
            out.tags = v.clone();
        }
        out
    }
}

/// What the merge decided.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// Writes to the Sentinel incident (executed by forward sync).
    pub sentinel_writes: SentinelWrites,
    /// The Sentinel fields to PUT (current fields with the writes applied, made valid).
    pub sentinel_target: SentinelFields,
    /// Writes to the Defender incident (returned, not yet executed).
    pub defender_writes: DefenderPatch,
    /// The base to store once the Sentinel writes succeeded.
    pub base: MergeBase,
    pub conflicts: Vec<Conflict>,
}

/// The Defender fields after a patch (what Graph holds once the PATCH is applied).
pub fn apply_patch(d: &DefenderFields, p: &DefenderPatch) -> DefenderFields {
    p.apply(d)
}

/// The result of merging one field.
struct Unit<D, S> {
    write_s: Option<S>,
    write_d: Option<D>,
    base_d: D,
    base_s: S,
    conflict: Option<Side>,
}

/// How one field's values compare and map.
struct FieldOps<'a, D, S> {
    d_eq: &'a dyn Fn(&D, &D) -> bool,
    s_eq: &'a dyn Fn(&S, &S) -> bool,
    same: &'a dyn Fn(&D, &S) -> bool,
    to_s: &'a dyn Fn(&D) -> Result<S, MappingError>,
    to_d: &'a dyn Fn(&S) -> Result<D, MappingError>,
}

fn merge_unit<D: Clone, S: Clone>(
    ops: &FieldOps<'_, D, S>,
    base: Option<(&D, &S)>,
    d: &D,
    s: Option<&S>,
    defender_wins: bool,
    defender_final: bool,
) -> Result<Unit<D, S>, MappingError> {
    let nothing = |bs: &S| Unit {
        write_s: None,
        write_d: None,
        base_d: d.clone(),
        base_s: bs.clone(),
        conflict: None,
    };
    let to_sentinel = |s: Option<&S>, conflict| -> Result<Unit<D, S>, MappingError> {
        let t = (ops.to_s)(d)?;
        let write_s = if s.is_some_and(|s| (ops.s_eq)(s, &t)) {
            None
        } else {
            Some(t.clone())
        };
        Ok(Unit {
            write_s,
            write_d: None,
            base_d: d.clone(),
            base_s: t,
            conflict,
        })
    };
    let (Some(s), Some((bd, bs))) = (s, base) else {
        // First sync, or the Sentinel incident is gone: Defender is the source.
        return to_sentinel(s, None);
    };
    let to_defender = |conflict| -> Result<Unit<D, S>, MappingError> {
        let t = (ops.to_d)(s)?;
        if (ops.d_eq)(&t, d) {
            return Ok(Unit {
                conflict,
                ..nothing(s)
            });
        }
        // Not executed yet: keep the Sentinel base so the change stays pending.
        Ok(Unit {
            write_d: Some(t),
            conflict,
            ..nothing(bs)
        })
    };
    match (!(ops.d_eq)(d, bd), !(ops.s_eq)(s, bs)) {
        (false, false) => Ok(nothing(s)),
        (true, false) => to_sentinel(Some(s), None),
        (true, true) if (ops.same)(d, s) => Ok(nothing(s)),
        // Defender final (merged, redirected): Graph refuses any update, so an analyst's
        // change to the mirror is put back, as a conflict Defender won (noted in Sentinel).
        (_, true) if defender_final => to_sentinel(Some(s), Some(Side::Defender)),
        (false, true) => to_defender(None),
        (true, true) if defender_wins => to_sentinel(Some(s), Some(Side::Defender)),
        (true, true) => to_defender(Some(Side::Sentinel)),
    }
}

/// Merges one incident's synced fields.
pub fn merge(input: MergeInput<'_>, policy: &MergePolicy) -> Result<MergeOutcome, MappingError> {
    let defender_wins = match policy.conflict {
        ConflictPolicyName::DefenderWins => true,
        ConflictPolicyName::SentinelWins => false,
        // latest-wins (and any unknown name): ties go to Defender, the source of truth.
        _ => input
            .sentinel_modified
            .is_none_or(|s| s <= input.defender_modified),
    };
    let mut m = Merger {
        defender_final: input.defender.status == DefenderStatus::Redirected,
        input,
        defender_wins,
        out: Partial::default(),
    };
    m.status()?;
    m.severity(policy.severity_to_defender)?;
    m.classification()?;
    m.owner()?;
    m.tags()?;
    Ok(m.finish())
}

#[derive(Default)]
struct Partial {
    sw: SentinelWrites,
    dw: DefenderPatch,
    base_d: Option<DefenderFields>,
    base_s: Option<SentinelFields>,
    conflicts: Vec<Conflict>,
    classification_pending: bool,
}

struct Merger<'a> {
    input: MergeInput<'a>,
    defender_wins: bool,
    /// A merged (redirected) Defender incident is final: Graph refuses every update of it
    /// (found by the convergence suite, seed 3002: the PATCH was parked and retried forever).
    defender_final: bool,
    out: Partial,
}

impl Merger<'_> {
    fn base(&self) -> Option<&MergeBase> {
        self.input.base
    }

    fn record<D: Show, S: Show>(&mut self, field: Field, u: &Unit<D, S>, d: &D, s: Option<&S>) {
        if let (Some(winner), Some(s)) = (u.conflict, s) {
            let (defender_value, sentinel_value) = (d.show(), s.show());
            self.out.conflicts.push(Conflict {
                field,
                winner,
                defender_value,
                sentinel_value,
            });
        }
    }

    fn status(&mut self) -> Result<(), MappingError> {
        let cur = self.input.sentinel.map(|s| s.status.clone());
        let to_s = |d: &DefenderStatus| mapping::status_to_sentinel(d, cur.as_ref());
        let ops = FieldOps {
            d_eq: &|a, b| a == b,
            s_eq: &|a, b| a == b,
            same: &mapping::status_same,
            to_s: &to_s,
            to_d: &mapping::status_to_defender,
        };
        let base = self
            .base()
            .map(|b| (&b.defender.status, &b.sentinel.status));
        let (d, s) = (
            &self.input.defender.status,
            self.input.sentinel.map(|s| &s.status),
        );
        let u = merge_unit(&ops, base, d, s, self.defender_wins, self.defender_final)?;
        self.record(Field::Status, &u, d, s);
        self.out.sw.status = u.write_s;
        self.out.dw.status = u.write_d;
        self.base_d().status = u.base_d;
        self.base_s().status = u.base_s;
        Ok(())
    }

    fn severity(&mut self, two_way: bool) -> Result<(), MappingError> {
        let to_s = |d: &DefenderSeverity| Ok(mapping::severity_to_sentinel(d));
        let to_d = |s: &SentinelSeverity| Ok(mapping::severity_to_defender(s));
        let same =
            |d: &DefenderSeverity, s: &SentinelSeverity| mapping::severity_to_sentinel(d) == *s;
        let ops = FieldOps {
            d_eq: &|a, b| a == b,
            s_eq: &|a, b| a == b,
            same: &same,
            to_s: &to_s,
            to_d: &to_d,
        };
        // One way (a copy) unless severity syncs to Defender: then Defender is always "the source".
        let base = self
            .base()
            .filter(|_| two_way)
            .map(|b| (&b.defender.severity, &b.sentinel.severity));
        let (d, s) = (
            &self.input.defender.severity,
            self.input.sentinel.map(|s| &s.severity),
        );
        let u = merge_unit(&ops, base, d, s, self.defender_wins, self.defender_final)?;
        self.record(Field::Severity, &u, d, s);
        self.out.sw.severity = u.write_s;
        self.out.dw.severity = u.write_d;
        self.base_d().severity = u.base_d;
        self.base_s().severity = u.base_s;
        Ok(())
    }

    fn classification(&mut self) -> Result<(), MappingError> {
        let dfields = |f: &DefenderFields| -> DefenderClassificationFields {
            (
                f.classification.clone(),
                f.determination.clone(),
                f.resolving_comment.clone(),
            )
        };
        let sfields = |f: &SentinelFields| -> SentinelClassificationFields {
            (
                f.classification.clone(),
                f.classification_reason.clone(),
                f.classification_comment.clone(),
            )
        };
        let current = dfields(self.input.defender);
        let to_s =
            |d: &DefenderClassificationFields| Ok(mapping::classification_fields_to_sentinel(d));
        let to_d = |s: &SentinelClassificationFields| {
            mapping::check_sentinel_classification(s)?;
            Ok(mapping::classification_fields_to_defender_keeping(
                s, &current,
            ))
        };
        let ops = FieldOps {
            d_eq: &|a, b| a == b,
            // `Undetermined` and none say the same (see the function).
            s_eq: &mapping::sentinel_classification_eq,
            same: &mapping::classification_same,
            to_s: &to_s,
            to_d: &to_d,
        };
        let base = self
            .base()
            .map(|b| (dfields(&b.defender), sfields(&b.sentinel)));
        let d = dfields(self.input.defender);
        let s = self.input.sentinel.map(sfields);
        let u = merge_unit(
            &ops,
            base.as_ref().map(|(a, b)| (a, b)),
            &d,
            s.as_ref(),
            self.defender_wins,
            self.defender_final,
        )?;
        self.record(Field::Classification, &u, &d, s.as_ref());
        self.out.sw.classification = u.write_s;
        self.out.classification_pending = u.write_d.is_some();
        if let Some((c, det, comment)) = u.write_d {
            (
                self.out.dw.classification,
                self.out.dw.determination,
                self.out.dw.resolving_comment,
            ) = (c, det, comment);
        }
        let bd = self.base_d();
        (bd.classification, bd.determination, bd.resolving_comment) = u.base_d;
        let bs = self.base_s();
        (
            bs.classification,
            bs.classification_reason,
            bs.classification_comment,
        ) = u.base_s;
        Ok(())
    }

    fn owner(&mut self) -> Result<(), MappingError> {
        let eq = |a: &Option<String>, b: &Option<String>| {
            mapping::owner_same(a.as_deref(), b.as_deref())
        };
        let id = |v: &Option<String>| Ok(v.clone());
        let ops = FieldOps {
            d_eq: &eq,
            s_eq: &eq,
            same: &eq,
            to_s: &id,
            to_d: &id,
        };
        let base = self
            .base()
            .map(|b| (&b.defender.assigned_to, &b.sentinel.owner_upn));
        let (d, s) = (
            &self.input.defender.assigned_to,
            self.input.sentinel.map(|s| &s.owner_upn),
        );
        let u = merge_unit(&ops, base, d, s, self.defender_wins, self.defender_final)?;
        self.record(Field::Owner, &u, d, s);
        self.out.sw.owner_upn = u.write_s;
        self.out.dw.assigned_to = u.write_d;
        self.base_d().assigned_to = u.base_d;
        self.base_s().owner_upn = u.base_s;
        Ok(())
    }

    fn tags(&mut self) -> Result<(), MappingError> {
        let eq = |a: &Vec<String>, b: &Vec<String>| mapping::tags_same(a, b);
        let set = |v: &Vec<String>| Ok(mapping::tag_set(v));
        let ops = FieldOps {
            d_eq: &eq,
            s_eq: &eq,
            same: &eq,
            to_s: &set,
            to_d: &set,
        };
        let base = self
            .base()
            .map(|b| (&b.defender.custom_tags, &b.sentinel.tags));
        let (d, s) = (
            &self.input.defender.custom_tags,
            self.input.sentinel.map(|s| &s.tags),
        );
        let u = merge_unit(&ops, base, d, s, self.defender_wins, self.defender_final)?;
        self.record(Field::Tags, &u, d, s);
        self.out.sw.tags = u.write_s;
        self.out.dw.custom_tags = u.write_d;
        self.base_d().custom_tags = u.base_d;
        self.base_s().tags = u.base_s;
        Ok(())
    }

    fn base_d(&mut self) -> &mut DefenderFields {
        self.out
            .base_d
            .get_or_insert_with(|| self.input.defender.clone())
    }

    fn base_s(&mut self) -> &mut SentinelFields {
        let seed = self
            .input
            .sentinel
            .cloned()
            .unwrap_or_else(|| blank_sentinel(self.input.defender));
        self.out.base_s.get_or_insert(seed)
    }

    fn finish(mut self) -> MergeOutcome {
        let current = self
            .input
            .sentinel
            .cloned()
            .unwrap_or_else(|| blank_sentinel(self.input.defender));
        let mut target = self.out.sw.apply(&current);
        // Sentinel refuses Closed without a classification: close as Undetermined.
        if target.status == SentinelStatus::Closed && target.classification.is_none() {
            let fixed = (
                Some(SentinelClassification::Undetermined),
                None,
                target.classification_comment.clone(),
            );
            (target.classification, target.classification_reason) = (fixed.0.clone(), None);
            self.out.sw.classification = Some(fixed.clone());
            if !self.out.classification_pending {
                let bs = self.base_s();
                (
                    bs.classification,
                    bs.classification_reason,
                    bs.classification_comment,
                ) = fixed;
            }
        }
        let base = MergeBase {
            defender: self.base_d().clone(),
            sentinel: self.base_s().clone(),
        };
        MergeOutcome {
            sentinel_writes: self.out.sw,
            sentinel_target: target,
            defender_writes: self.out.dw,
            base,
            conflicts: self.out.conflicts,
        }
    }
}

/// A field value as people read it (in conflict comments).
trait Show {
    fn show(&self) -> String;
}

macro_rules! show_display {
    ($($t:ty),*) => { $(impl Show for $t { fn show(&self) -> String { self.to_string() } })* };
}
show_display!(
    DefenderStatus,
    SentinelStatus,
    DefenderSeverity,
    SentinelSeverity
);

impl Show for Option<String> {
    fn show(&self) -> String {
        self.clone().unwrap_or_else(|| "(none)".into())
    }
}

impl Show for Vec<String> {
    fn show(&self) -> String {
        if self.is_empty() {
            "(none)".into()
        } else {
            self.join(", ")
        }
    }
}

impl<A: std::fmt::Display, B: std::fmt::Display> Show for (Option<A>, Option<B>, Option<String>) {
    fn show(&self) -> String {
        let parts: Vec<String> = [
            self.0.as_ref().map(|a| a.to_string()),
            self.1.as_ref().map(|b| b.to_string()),
            self.2.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            "(none)".into()
        } else {
            parts.join(" / ")
        }
    }
}

/// Placeholder Sentinel fields for an incident that does not exist yet (every field is then
/// written from Defender, so these values never reach Sentinel).
fn blank_sentinel(d: &DefenderFields) -> SentinelFields {
    SentinelFields {
        status: SentinelStatus::New,
        severity: mapping::severity_to_sentinel(&d.severity),
        classification: None,
        classification_reason: None,
        classification_comment: None,
        owner_upn: None,
        tags: Vec::new(),
    }
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
