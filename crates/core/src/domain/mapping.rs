//! Pure value mappings between Defender (Graph) and Sentinel vocabularies
//! (`docs/api-notes.md` §6). Every function here is total over the known members;
//! statuses no mapping covers are a [`MappingError`], which parks the incident.

use crate::domain::*;

/// A value that has no counterpart on the other side: the incident cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot map {field} value '{value}'")]
pub struct MappingError {
    pub field: &'static str,
    pub value: String,
}

/// Prefix of the classification comment we build from Defender's determination.
pub const DETERMINATION_PREFIX: &str = "Defender determination: ";

/// Defender severity → Sentinel (unknown members become Informational, §6.1).
pub fn severity_to_sentinel(s: &DefenderSeverity) -> SentinelSeverity {
    match s {
        DefenderSeverity::High => SentinelSeverity::High,
        DefenderSeverity::Medium => SentinelSeverity::Medium,
        DefenderSeverity::Low => SentinelSeverity::Low,
        _ => SentinelSeverity::Informational,
    }
}

/// Sentinel severity → Defender.
pub fn severity_to_defender(s: &SentinelSeverity) -> DefenderSeverity {
    match s {
        SentinelSeverity::High => DefenderSeverity::High,
        SentinelSeverity::Medium => DefenderSeverity::Medium,
        SentinelSeverity::Low => DefenderSeverity::Low,
        _ => DefenderSeverity::Informational,
    }
}

/// Defender status → Sentinel. `active` becomes `New`, except that a Sentinel `Active` set by an
/// analyst is kept (both mean "open" to Defender).
pub fn status_to_sentinel(
    d: &DefenderStatus,
    current: Option<&SentinelStatus>,
) -> Result<SentinelStatus, MappingError> {
    Ok(match d {
        DefenderStatus::Active if current == Some(&SentinelStatus::Active) => {
            SentinelStatus::Active
        }
        DefenderStatus::Active => SentinelStatus::New,
        DefenderStatus::InProgress | DefenderStatus::AwaitingAction => SentinelStatus::Active,
        DefenderStatus::Resolved | DefenderStatus::Redirected => SentinelStatus::Closed,
        other => {
            return Err(MappingError {
                field: "status",
                value: other.to_string(),
            });
        }
    })
}

/// Sentinel status → Defender (never `redirected`; Graph documents no `inProgress` on PATCH).
pub fn status_to_defender(s: &SentinelStatus) -> Result<DefenderStatus, MappingError> {
    match s {
        SentinelStatus::New | SentinelStatus::Active => Ok(DefenderStatus::Active),
        SentinelStatus::Closed => Ok(DefenderStatus::Resolved),
        other => Err(MappingError {
            field: "status",
            value: other.to_string(),
        }),
    }
}

/// True when the two statuses mean the same thing.
pub fn status_same(d: &DefenderStatus, s: &SentinelStatus) -> bool {
    match s {
        SentinelStatus::New => *d == DefenderStatus::Active,
        SentinelStatus::Active => {
            matches!(
                d,
                DefenderStatus::Active
                    | DefenderStatus::InProgress
                    | DefenderStatus::AwaitingAction
            )
        }
        SentinelStatus::Closed => {
            matches!(d, DefenderStatus::Resolved | DefenderStatus::Redirected)
        }
        SentinelStatus::Unrecognized(_) => false,
    }
}

/// The classification triple of a side.
pub type DefenderClassificationFields = (
    Option<DefenderClassification>,
    Option<Determination>,
    Option<String>,
);
/// Sentinel's classification, reason and comment.
pub type SentinelClassificationFields = (
    Option<SentinelClassification>,
    Option<ClassificationReason>,
    Option<String>,
);

/// Defender classification + determination → Sentinel classification + reason (§6.3).
pub fn classification_to_sentinel(
    c: Option<&DefenderClassification>,
    det: Option<&Determination>,
) -> (Option<SentinelClassification>, Option<ClassificationReason>) {
    use ClassificationReason as R;
    use SentinelClassification as S;
    match c {
        None => (None, None),
        Some(DefenderClassification::TruePositive) => {
            (Some(S::TruePositive), Some(R::SuspiciousActivity))
        }
        Some(DefenderClassification::InformationalExpectedActivity) => {
            (Some(S::BenignPositive), Some(R::SuspiciousButExpected))
        }
        Some(DefenderClassification::FalsePositive) => match det {
            Some(Determination::NotEnoughDataToValidate) => {
                (Some(S::FalsePositive), Some(R::InaccurateData))
            }
            _ => (Some(S::FalsePositive), Some(R::IncorrectAlertLogic)),
        },
        Some(_) => (Some(S::Undetermined), None),
    }
}

/// The Sentinel classification comment: Defender's determination, then its resolving comment.
pub fn classification_comment(
    det: Option<&Determination>,
    resolving: Option<&str>,
) -> Option<String> {
    let resolving = non_empty(resolving);
    match (det, resolving) {
        (None | Some(Determination::Unknown), None) => None,
        (None | Some(Determination::Unknown), Some(r)) => Some(r.to_owned()),
        (Some(d), None) => Some(format!("{DETERMINATION_PREFIX}{d}.")),
        (Some(d), Some(r)) => Some(format!("{DETERMINATION_PREFIX}{d}. {r}")),
    }
}

/// The analyst's part of a classification comment: our determination prefix removed.
pub fn strip_determination(comment: Option<&str>) -> Option<String> {
    let c = non_empty(comment)?;
    let rest = match c.strip_prefix(DETERMINATION_PREFIX) {
        Some(rest) => match rest.split_once('.') {
            Some((_, tail)) => tail.trim_start(),
            None => rest,
        },
        None => c,
    };
    non_empty(Some(rest)).map(str::to_owned)
}

/// Defender's classification fields → Sentinel's.
pub fn classification_fields_to_sentinel(
    d: &DefenderClassificationFields,
) -> SentinelClassificationFields {
    let (c, r) = classification_to_sentinel(d.0.as_ref(), d.1.as_ref());
    (c, r, classification_comment(d.1.as_ref(), d.2.as_deref()))
}

/// Sentinel classification + reason → Defender classification + determination, keeping the
/// current determination when it belongs to the classification's group (§6.3).
pub fn classification_to_defender(
    c: Option<&SentinelClassification>,
    reason: Option<&ClassificationReason>,
    current_det: Option<&Determination>,
) -> (DefenderClassification, Determination) {
    use Determination as D;
    let keep = |group: &[D]| {
        current_det
            .filter(|d| group.contains(d))
            .cloned()
            .unwrap_or(D::Other)
    };
    match c {
        Some(SentinelClassification::TruePositive) => (
            DefenderClassification::TruePositive,
            keep(&[
                D::MultiStagedAttack,
                D::MaliciousUserActivity,
                D::CompromisedAccount,
                D::Malware,
                D::Phishing,
                D::UnwantedSoftware,
                D::Other,
            ]),
        ),
        Some(SentinelClassification::BenignPositive) => (
            DefenderClassification::InformationalExpectedActivity,
            keep(&[
                D::SecurityTesting,
                D::LineOfBusinessApplication,
                D::ConfirmedActivity,
                D::Other,
            ]),
        ),
        Some(SentinelClassification::FalsePositive) => match reason {
            Some(ClassificationReason::InaccurateData) => (
                DefenderClassification::FalsePositive,
                D::NotEnoughDataToValidate,
            ),
            _ => (DefenderClassification::FalsePositive, D::NotMalicious),
        },
        _ => (DefenderClassification::Unknown, D::Unknown),
    }
}

/// A Sentinel classification or reason no mapping covers (a value newer than this code): it
/// parks the incident instead of reaching Defender as a guess.
pub fn check_sentinel_classification(s: &SentinelClassificationFields) -> Result<(), MappingError> {
    if let Some(SentinelClassification::Unrecognized(v)) = &s.0 {
        return Err(MappingError {
            field: "classification",
            value: v.clone(),
        });
    }
    if let Some(ClassificationReason::Unrecognized(v)) = &s.1 {
        return Err(MappingError {
            field: "classificationReason",
            value: v.clone(),
        });
    }
    Ok(())
}

/// Sentinel's classification fields → Defender's (classificationComment → resolvingComment).
pub fn classification_fields_to_defender(
    s: &SentinelClassificationFields,
    current_det: Option<&Determination>,
) -> DefenderClassificationFields {
    let (c, d) = classification_to_defender(s.0.as_ref(), s.1.as_ref(), current_det);
    (Some(c), Some(d), strip_determination(s.2.as_deref()))
}

/// Like [`classification_fields_to_defender`], but an empty Sentinel comment keeps Defender's
/// resolving comment: a Graph PATCH cannot clear it.
pub fn classification_fields_to_defender_keeping(
    s: &SentinelClassificationFields,
    current: &DefenderClassificationFields,
) -> DefenderClassificationFields {
    let (c, d, comment) = classification_fields_to_defender(s, current.1.as_ref());
    (c, d, comment.or_else(|| current.2.clone()))
}

/// True when both classification triples mean the same.
pub fn classification_same(
    d: &DefenderClassificationFields,
    s: &SentinelClassificationFields,
) -> bool {
    let undetermined = |c: &Option<SentinelClassification>| {
        matches!(c, None | Some(SentinelClassification::Undetermined))
    };
    let (mc, mr) = classification_to_sentinel(d.0.as_ref(), d.1.as_ref());
    let class_same = if undetermined(&mc) && undetermined(&s.0) {
        true
    } else {
        mc == s.0 && mr == s.1
    };
    // An empty Sentinel comment matches any resolving comment: Graph cannot clear one.
    let analyst_comment = strip_determination(s.2.as_deref());
    class_same
        && (analyst_comment.is_none() || non_empty(d.2.as_deref()) == analyst_comment.as_deref())
}

/// True when two Sentinel classification triples say the same, PURE: `None` and
/// `Undetermined` both say "not classified" (the sync closes an incident without a
/// classification as `Undetermined`; Sentinel clears the classification when an analyst sets
/// the status again), and an empty comment is none. The merge compares Sentinel with its base
/// this way: a New incident going from `Undetermined` to none is no analyst change (converge
/// finding 6, seeds 3009 and 3017: taken for one, it made the merge send Defender an
/// "unknown" classification that the sync's own `Undetermined` close then hid, and Defender's
/// real classification never reached Sentinel).
pub fn sentinel_classification_eq(
    a: &SentinelClassificationFields,
    b: &SentinelClassificationFields,
) -> bool {
    let unclassified = |c: &Option<SentinelClassification>| {
        matches!(c, None | Some(SentinelClassification::Undetermined))
    };
    let class_eq = if unclassified(&a.0) && unclassified(&b.0) {
        a.1 == b.1
    } else {
        a.0 == b.0 && a.1 == b.1
    };
    class_eq && non_empty(a.2.as_deref()) == non_empty(b.2.as_deref())
}

/// Owners compare by UPN, case-insensitively; `None` is unassigned.
pub fn owner_same(a: Option<&str>, b: Option<&str>) -> bool {
    match (non_empty(a), non_empty(b)) {
        (None, None) => true,
        (Some(a), Some(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
        _ => false,
    }
}

/// True when a tag name is one the connector reserves for its own labels.
pub fn is_reserved_label(name: &str) -> bool {
    RESERVED_LABELS.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// Tags as a set: sorted, de-duplicated, reserved names removed (they are not tags).
pub fn tag_set(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = tags
        .iter()
        .filter(|t| !is_reserved_label(t) && !t.trim().is_empty())
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// True when both tag lists hold the same tags (order and reserved names ignored).
pub fn tags_same(a: &[String], b: &[String]) -> bool {
    tag_set(a) == tag_set(b)
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_maps_both_ways_and_unknown_is_informational() {
        assert_eq!(
            severity_to_sentinel(&DefenderSeverity::High),
            SentinelSeverity::High
        );
        assert_eq!(
            severity_to_sentinel(&DefenderSeverity::Unknown),
            SentinelSeverity::Informational
        );
        assert_eq!(
            severity_to_sentinel(&DefenderSeverity::parse("weird")),
            SentinelSeverity::Informational
        );
        for s in [
            SentinelSeverity::High,
            SentinelSeverity::Medium,
            SentinelSeverity::Low,
            SentinelSeverity::Informational,
        ] {
            assert_eq!(severity_to_sentinel(&severity_to_defender(&s)), s);
        }
    }

    #[test]
    fn active_becomes_new_but_an_analysts_active_is_kept() {
        let a = DefenderStatus::Active;
        assert_eq!(status_to_sentinel(&a, None).unwrap(), SentinelStatus::New);
        assert_eq!(
            status_to_sentinel(&a, Some(&SentinelStatus::New)).unwrap(),
            SentinelStatus::New
        );
        assert_eq!(
            status_to_sentinel(&a, Some(&SentinelStatus::Active)).unwrap(),
            SentinelStatus::Active
        );
        assert_eq!(
            status_to_sentinel(&a, Some(&SentinelStatus::Closed)).unwrap(),
            SentinelStatus::New
        );
        assert_eq!(
            status_to_sentinel(&DefenderStatus::AwaitingAction, None).unwrap(),
            SentinelStatus::Active
        );
        assert_eq!(
            status_to_sentinel(&DefenderStatus::Redirected, None).unwrap(),
            SentinelStatus::Closed
        );
        assert!(status_to_sentinel(&DefenderStatus::parse("mystery"), None).is_err());
        assert!(status_to_sentinel(&DefenderStatus::UnknownFutureValue, None).is_err());
    }

    #[test]
    fn mapped_statuses_always_mean_the_same() {
        let all = [
            DefenderStatus::Active,
            DefenderStatus::InProgress,
            DefenderStatus::AwaitingAction,
            DefenderStatus::Resolved,
            DefenderStatus::Redirected,
        ];
        for d in &all {
            for cur in [
                None,
                Some(SentinelStatus::New),
                Some(SentinelStatus::Active),
                Some(SentinelStatus::Closed),
            ] {
                let s = status_to_sentinel(d, cur.as_ref()).unwrap();
                assert!(status_same(d, &s), "{d} -> {s}");
                assert!(status_same(&status_to_defender(&s).unwrap(), &s));
            }
        }
        assert_ne!(
            status_to_defender(&SentinelStatus::Closed).unwrap(),
            DefenderStatus::Redirected
        );
    }

    #[test]
    fn classification_follows_the_table() {
        use ClassificationReason as R;
        use SentinelClassification as S;
        let fp = Some(&DefenderClassification::FalsePositive);
        assert_eq!(
            classification_to_sentinel(fp, Some(&Determination::NotMalicious)),
            (Some(S::FalsePositive), Some(R::IncorrectAlertLogic))
        );
        assert_eq!(
            classification_to_sentinel(fp, Some(&Determination::parse_alias("insufficientData"))),
            (Some(S::FalsePositive), Some(R::InaccurateData))
        );
        assert_eq!(
            classification_to_sentinel(Some(&DefenderClassification::TruePositive), None),
            (Some(S::TruePositive), Some(R::SuspiciousActivity))
        );
        assert_eq!(
            classification_to_sentinel(
                Some(&DefenderClassification::InformationalExpectedActivity),
                None
            ),
            (Some(S::BenignPositive), Some(R::SuspiciousButExpected))
        );
        assert_eq!(
            classification_to_sentinel(Some(&DefenderClassification::Unknown), None),
            (Some(S::Undetermined), None)
        );
        let (c, d) = classification_to_defender(
            Some(&S::TruePositive),
            Some(&R::SuspiciousActivity),
            Some(&Determination::Malware),
        );
        assert_eq!(
            (c, d),
            (DefenderClassification::TruePositive, Determination::Malware)
        );
        let (_, d) = classification_to_defender(
            Some(&S::TruePositive),
            None,
            Some(&Determination::NotMalicious),
        );
        assert_eq!(d, Determination::Other);
        let (_, d) =
            classification_to_defender(Some(&S::FalsePositive), Some(&R::InaccurateData), None);
        assert_eq!(d, Determination::NotEnoughDataToValidate);
    }

    #[test]
    fn determination_and_resolving_comment_go_into_the_comment_and_come_back_out() {
        let c = classification_comment(Some(&Determination::MultiStagedAttack), Some("contained"));
        assert_eq!(
            c.as_deref(),
            Some("Defender determination: multiStagedAttack. contained")
        );
        assert_eq!(
            strip_determination(c.as_deref()).as_deref(),
            Some("contained")
        );
        assert_eq!(
            strip_determination(Some("Defender determination: malware.")),
            None
        );
        assert_eq!(
            strip_determination(Some("analyst text")).as_deref(),
            Some("analyst text")
        );
        let d = (
            Some(DefenderClassification::TruePositive),
            Some(Determination::Malware),
            Some("x".to_owned()),
        );
        assert!(classification_same(
            &d,
            &classification_fields_to_sentinel(&d)
        ));
    }

    #[test]
    fn owner_and_tags_compare_loosely() {
        assert!(owner_same(Some("A@Contoso.com"), Some("a@contoso.com")));
        assert!(owner_same(None, Some("  ")));
        assert!(!owner_same(Some("a@contoso.com"), None));
        let a = vec!["x".to_owned(), "Defender".to_owned(), "y".to_owned()];
        let b = vec!["y".to_owned(), "x".to_owned(), "x".to_owned()];
        assert!(tags_same(&a, &b));
        assert_eq!(tag_set(&a), vec!["x".to_owned(), "y".to_owned()]);
    }
}
