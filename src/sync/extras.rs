//! What follows the incident PUT: Defender comments mirrored to Sentinel (deterministic ids, a
//! source marker, split above 30,000 characters, the 100-comment cap recorded rather than
//! retried), comments recording overridden analyst changes and merged (redirected) incidents,
//! and the new or changed alerts to ship to Logs Ingestion.

use super::forward::{ForwardSync, TenantCtx};
use super::incident::Step;
use super::merge::{Conflict, MergeOutcome, Side};
use crate::domain::*;
use crate::ports::*;
use crate::state::IncidentState;
use sha2::{Digest, Sha256};
use std::collections::HashSet;

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

/// What the steps after the PUT did.
pub(super) struct Extras {
    pub wrote: bool,
    /// Set when the incident must be retried later (e.g. the survivor of a merge is not in
    /// Sentinel yet).
    pub parked: Option<String>,
}

impl ForwardSync {
    pub(super) async fn after_put(
        &self,
        ctx: &TenantCtx,
        d: &DefenderIncident,
        written: &SentinelIncident,
        outcome: &MergeOutcome,
        st: &mut IncidentState,
    ) -> Result<Extras, Step> {
        let mut wrote = self.mirror_comments(ctx, d, &written.name, st).await?;
        wrote |= self.conflict_comments(ctx, d, &written.name, outcome).await;
        let (redirect_wrote, parked) = self.redirect_comments(ctx, d, &written.name, st).await?;
        wrote |= redirect_wrote;
        Ok(Extras { wrote, parked })
    }

    async fn mirror_comments(
        &self,
        ctx: &TenantCtx,
        d: &DefenderIncident,
        name: &SentinelIncidentName,
        st: &mut IncidentState,
    ) -> Result<bool, Step> {
        let pending: Vec<(String, Vec<String>)> = d
            .comments
            .iter()
            .filter(|c| !is_mirrored(&c.text))
            .map(|c| (comment_fingerprint(c), c))
            .filter(|(fp, _)| !st.mirrored_comments.contains(fp))
            .map(|(fp, c)| (fp, comment_messages(c)))
            .collect();
        if pending.is_empty() {
            return Ok(false);
        }
        // Ids already there (a crash after the PUT, before the state write) are not posted again.
        let existing = self
            .sentinel
            .list_comments(name)
            .await
            .map_err(Step::from)?;
        let ids: HashSet<String> = existing.iter().map(|c| c.id.to_ascii_lowercase()).collect();
        let mut count = existing.len();
        let mut wrote = false;
        for (fp, messages) in pending {
            for (i, message) in messages.iter().enumerate() {
                let id = stable_uuid(&[
                    "defender-comment",
                    ctx.tenant.as_str(),
                    d.id.as_str(),
                    &fp,
                    &i.to_string(),
                ]);
                if ids.contains(&id.to_string()) {
                    continue;
                }
                if count >= COMMENT_CAP {
                    tracing::warn!(sentinel_incident = %name, message = "Sentinel's 100-comment cap reached; further Defender comments are not mirrored.");
                    ctx.tally.cap_reached(name.to_string());
                    return Ok(wrote);
                }
                self.sentinel
                    .put_comment(name, id, message)
                    .await
                    .map_err(Step::from)?;
                count += 1;
                wrote = true;
            }
            st.mirrored_comments.insert(fp);
        }
        Ok(wrote)
    }

    /// A comment for every analyst change the policy overrode, on either side (best effort:
    /// the incident is already right; the note is for people).
    async fn conflict_comments(
        &self,
        ctx: &TenantCtx,
        d: &DefenderIncident,
        name: &SentinelIncidentName,
        outcome: &MergeOutcome,
    ) -> bool {
        let mut wrote = false;
        for c in &outcome.conflicts {
            let field = format!("{:?}", c.field);
            let at = d.last_update.unix_timestamp_nanos().to_string();
            let id = stable_uuid(&["conflict", ctx.tenant.as_str(), d.id.as_str(), &field, &at]);
            let message = conflict_message(c, &self.policy.conflict);
            match self.sentinel.put_comment(name, id, &message).await {
                Ok(_) => wrote = true,
                Err(e) => tracing::warn!(error = %e, message = "Conflict comment not posted."),
            }
        }
        wrote
    }

    /// A merged (redirected) incident: a comment naming the survivor here, and one on the
    /// survivor's Sentinel incident. Parked when the survivor is not in Sentinel yet.
    async fn redirect_comments(
        &self,
        ctx: &TenantCtx,
        d: &DefenderIncident,
        name: &SentinelIncidentName,
        st: &mut IncidentState,
    ) -> Result<(bool, Option<String>), Step> {
        let (DefenderStatus::Redirected, Some(target)) = (&d.status, &d.redirect_incident_id)
        else {
            return Ok((false, None));
        };
        let key = format!("redirect:{target}");
        if st.mirrored_comments.contains(&key) {
            return Ok((false, None));
        }
        let survivor = SentinelIncidentName::for_defender(&ctx.tenant, target);
        let here = format!(
            "{DEFENDER_MARKER}Defender merged this incident into Defender incident #{target} (Sentinel incident {survivor})."
        );
        let id = stable_uuid(&[
            "redirect",
            ctx.tenant.as_str(),
            d.id.as_str(),
            target.as_str(),
        ]);
        self.sentinel
            .put_comment(name, id, &here)
            .await
            .map_err(Step::from)?;
        let there = format!(
            "{DEFENDER_MARKER}Defender incident #{} (Sentinel incident {name}) was merged into this incident.",
            d.id
        );
        let id = stable_uuid(&[
            "redirect-survivor",
            ctx.tenant.as_str(),
            d.id.as_str(),
            target.as_str(),
        ]);
        match self.sentinel.put_comment(&survivor, id, &there).await {
            Ok(_) => {
                st.mirrored_comments.insert(key);
                Ok((true, None))
            }
            Err(e) if e.class() == ErrorClass::NotFound => Ok((
                true,
                Some(format!(
                    "the surviving incident #{target} is not in Sentinel yet"
                )),
            )),
            Err(e) => Err(Step::from(e)),
        }
    }

    /// New or changed alerts (with their evidence), moved out of `d` (its `alerts` become
    /// `None`: a restarted attempt reads them again), and the fingerprint of each by alert id,
    /// when Logs Ingestion is configured; shipped per batch, fingerprints stored once shipped.
    pub(super) fn take_changed_alerts(
        &self,
        d: &mut DefenderIncident,
        st: &IncidentState,
    ) -> (Vec<AlertRecord>, Vec<(String, String)>) {
        if self.logs.is_none() {
            return (Vec::new(), Vec::new());
        }
        let sentinel_name = SentinelIncidentName::for_defender(&d.tenant, &d.id);
        let mut records = Vec::new();
        let mut fingerprints = Vec::new();
        for alert in d.alerts.take().into_iter().flatten() {
            let fp = alert_fingerprint(&alert);
            if st.shipped_alerts.get(&alert.id) == Some(&fp) {
                continue;
            }
            fingerprints.push((alert.id.clone(), fp));
            records.push(AlertRecord {
                tenant: d.tenant.clone(),
                incident_id: d.id.clone(),
                sentinel_name,
                alert,
            });
        }
        (records, fingerprints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::merge::Field;

    fn comment(text: &str) -> DefenderComment {
        DefenderComment {
            text: text.into(),
            author: Some("alice@contoso.com".into()),
            created: Some(crate::sync::testing::T0),
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
