//! PURE: our comment markers, the Sentinel messages of a Defender comment (split above 30,000
//! characters), the conflict note, and the fingerprints that make mirroring and shipping
//! idempotent (comments, alerts with their evidence).

use super::merge::{Conflict, Side};
use crate::domain::*;
use sha2::{Digest, Sha256};

/// Marks comments we mirrored from Defender.
pub const DEFENDER_MARKER: &str = "[Defender] ";
/// Marks comments reverse sync mirrors from Sentinel into Defender (never mirrored back).
pub const SENTINEL_MARKER: &str = "[Sentinel] ";
/// Sentinel's limit per comment, in characters.
pub const COMMENT_MAX_CHARS: usize = 30_000;
/// Sentinel's limit of comments per incident.
pub const COMMENT_CAP: usize = 100;

/// True when a comment carries one of our markers (so it is never mirrored again).
pub fn is_mirrored(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with(DEFENDER_MARKER.trim_end()) || t.starts_with(SENTINEL_MARKER.trim_end())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stable identity of a Defender comment (Defender comments are append-only and have no id).
pub fn comment_fingerprint(c: &DefenderComment) -> String {
    let created = c
        .created
        .map(|t| t.unix_timestamp_nanos().to_string())
        .unwrap_or_default();
    let mut h = Sha256::new();
    for part in [
        created.as_str(),
        c.author.as_deref().unwrap_or(""),
        c.text.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    hex(&h.finalize()[..16])
}

/// The Sentinel message(s) of a Defender comment: marked, and split into parts of at most
/// [`COMMENT_MAX_CHARS`] characters.
pub fn comment_messages(c: &DefenderComment) -> Vec<String> {
    let author = c.author.as_deref().unwrap_or("unknown");
    let header = format!("{author}:\n");
    let single = format!("{DEFENDER_MARKER}{header}{}", c.text);
    if single.chars().count() <= COMMENT_MAX_CHARS {
        return vec![single];
    }
    let room = COMMENT_MAX_CHARS
        - DEFENDER_MARKER.len()
        - header.chars().count()
        - "(part 9999/9999) ".len();
    let chars: Vec<char> = c.text.chars().collect();
    let parts: Vec<String> = chars.chunks(room).map(|p| p.iter().collect()).collect();
    let n = parts.len();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{DEFENDER_MARKER}(part {}/{n}) {header}{p}", i + 1))
        .collect()
}

/// Fingerprint of an alert with its evidence, as last shipped.
pub fn alert_fingerprint(a: &Alert) -> String {
    let mut h = Sha256::new();
    h.update(a.raw.get());
    for e in &a.evidence {
        h.update(e.raw.get());
    }
    h.update(
        a.last_update
            .map(|t| t.unix_timestamp_nanos().to_string())
            .unwrap_or_default(),
    );
    hex(&h.finalize()[..16])
}

/// The Sentinel note on a conflict: both values, the policy, and whose change was overridden
/// (with `sentinel-wins` the Defender analyst's change is; reverse sync writes it back).
pub fn conflict_message(c: &Conflict, policy: &ConflictPolicyName) -> String {
    let (kept, lost) = match c.winner {
        Side::Defender => ("Defender's", "the change made here"),
        Side::Sentinel => ("Sentinel's", "the Defender analyst's change"),
    };
    format!(
        "{DEFENDER_MARKER}Sync conflict on {:?}: it was changed here to {} and in Defender to {}; \
         the conflict policy ({policy}) kept {kept} value and overrode {lost}.",
        c.field, c.sentinel_value, c.defender_value
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::merge::Field;

    fn comment(text: &str) -> DefenderComment {
        DefenderComment {
            text: text.into(),
            author: Some("alice@contoso.com".into()),
            created: Some(dss_test_support::T0),
        }
    }

    #[test]
    fn conflict_notes_name_both_values_the_policy_and_the_overridden_side() {
        let c = |winner| Conflict {
            field: Field::Tags,
            winner,
            defender_value: "d-tag".into(),
            sentinel_value: "s-tag".into(),
        };
        let m = conflict_message(&c(Side::Defender), &ConflictPolicyName::DefenderWins);
        assert!(
            is_mirrored(&m) && m.contains("Tags") && m.contains("s-tag") && m.contains("d-tag"),
            "{m}"
        );
        assert!(
            m.contains("(defender-wins) kept Defender's value and overrode the change made here"),
            "{m}"
        );
        let m = conflict_message(&c(Side::Sentinel), &ConflictPolicyName::SentinelWins);
        assert!(
            m.contains(
                "(sentinel-wins) kept Sentinel's value and overrode the Defender analyst's change"
            ),
            "{m}"
        );
    }

    #[test]
    fn our_markers_are_recognised() {
        assert!(is_mirrored("[Defender] alice: hi"));
        assert!(is_mirrored("  [Sentinel] bob: hi"));
        assert!(!is_mirrored("Defender said hi"));
        let m = &comment_messages(&comment("hello"))[0];
        assert!(is_mirrored(m) && m.ends_with("hello"));
    }

    #[test]
    fn long_comments_are_split_within_the_limit() {
        let text = "x".repeat(65_000);
        let parts = comment_messages(&comment(&text));
        assert_eq!(parts.len(), 3);
        assert!(
            parts
                .iter()
                .all(|p| p.chars().count() <= COMMENT_MAX_CHARS && is_mirrored(p))
        );
        let total: usize = parts.iter().map(|p| p.matches('x').count()).sum();
        assert_eq!(total, 65_000);
    }

    #[test]
    fn fingerprints_are_stable_and_distinguish_comments() {
        assert_eq!(
            comment_fingerprint(&comment("a")),
            comment_fingerprint(&comment("a"))
        );
        assert_ne!(
            comment_fingerprint(&comment("a")),
            comment_fingerprint(&comment("b"))
        );
    }
}
