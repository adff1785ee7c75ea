//! What follows the incident PUT on the Sentinel side: Defender comments mirrored, comments
//! recording overridden analyst changes and merged (redirected) incidents.

use super::cycle::{Step, TenantCycle};
use super::fingerprint::*;
use super::merge::MergeOutcome;
use crate::domain::*;
use crate::ports::*;
use crate::state::IncidentState;
use std::collections::HashSet;

/// What the steps after the PUT did.
pub(super) struct Extras {
    pub wrote: bool,
    /// Set when the incident must be retried later (e.g. the survivor of a merge is not in
    /// Sentinel yet).
    pub parked: Option<String>,
    /// Comments the Sentinel incident holds now, when known exactly (never more than it holds:
    /// a count too high could hide an analyst's comment from the Sentinel poll).
    pub comments: Option<u32>,
}

/// Mirrors what Defender says into the Sentinel incident's comments: Defender's comments
/// (deterministic ids, so a retry updates instead of duplicating; the 100-comment cap recorded
/// rather than retried), notes on overridden analyst changes, and merged incidents.
pub(super) struct CommentMirror<'a> {
    pub sentinel: &'a dyn SentinelApi,
    pub cycle: &'a TenantCycle,
    pub policy: &'a ConflictPolicyName,
}

impl CommentMirror<'_> {
    /// Everything after the incident PUT, on the incident `name`.
    pub async fn after_put(
        &self,
        d: &DefenderIncident,
        written: &SentinelIncident,
        outcome: &MergeOutcome,
        st: &mut IncidentState,
    ) -> Result<Extras, Step> {
        let (mut wrote, mut comments) = self.mirror_comments(d, written, st).await?;
        let noted = self.conflict_comments(d, &written.name, outcome).await;
        let (redirect_wrote, parked) = self.redirect_comments(d, &written.name, st).await?;
        if noted || redirect_wrote {
            // Their ids are stable, so a retry may have edited rather than added one: the
            // count is no longer known exactly.
            comments = None;
        }
        wrote |= noted || redirect_wrote;
        Ok(Extras {
            wrote,
            parked,
            comments,
        })
    }

    /// Mirrors the Defender comments not mirrored yet; answers whether it wrote and how many
    /// comments the incident holds after it (when known). An incident Sentinel says holds no
    /// comment (one just created, typically) is not listed first.
    async fn mirror_comments(
        &self,
        d: &DefenderIncident,
        written: &SentinelIncident,
        st: &mut IncidentState,
    ) -> Result<(bool, Option<u32>), Step> {
        let name = &written.name;
        let pending: Vec<(String, Vec<String>)> = d
            .comments
            .iter()
            .filter(|c| !is_mirrored(&c.text))
            .map(|c| (comment_fingerprint(c), c))
            .filter(|(fp, _)| !st.mirrored_comments.contains(fp))
            .map(|(fp, c)| (fp, comment_messages(c)))
            .collect();
        // The count is recorded only when every comment it counts is known: one more is an
        // analyst's comment the Sentinel poll must still see (issue 16, converge seed 1605).
        let known_before = st.sentinel_comments.or(Some(0));
        if pending.is_empty() {
            let known = written.comments_count == known_before;
            return Ok((false, written.comments_count.filter(|_| known)));
        }
        // Ids already there (a crash after the PUT, before the state write) are not posted again.
        let existing = match written.comments_count {
            Some(0) => Vec::new(),
            _ => self
                .sentinel
                .list_comments(name)
                .await
                .map_err(Step::from)?,
        };
        let ids: HashSet<String> = existing.iter().map(|c| c.id.to_ascii_lowercase()).collect();
        let mut posted = Posted {
            ids,
            count: existing.len(),
            wrote: false,
        };
        for (fp, messages) in pending {
            if !self
                .post_parts(d, name, &fp, &messages, &mut posted)
                .await?
            {
                break;
            }
            st.mirrored_comments.insert(fp);
        }
        let known = u32::try_from(existing.len()).ok() == known_before;
        Ok((
            posted.wrote,
            u32::try_from(posted.count).ok().filter(|_| known),
        ))
    }

    /// Posts the parts of one Defender comment not there yet; false when the cap stopped it.
    async fn post_parts(
        &self,
        d: &DefenderIncident,
        name: &SentinelIncidentName,
        fp: &str,
        messages: &[String],
        posted: &mut Posted,
    ) -> Result<bool, Step> {
        let tenant = self.cycle.tenant.as_str();
        for (i, message) in messages.iter().enumerate() {
            let part = i.to_string();
            let id = stable_uuid(&["defender-comment", tenant, d.id.as_str(), fp, &part]);
            if posted.ids.contains(&id.to_string()) {
                continue;
            }
            if posted.count >= COMMENT_CAP {
                tracing::warn!(sentinel_incident = %name, message = "Sentinel's 100-comment cap reached; further Defender comments are not mirrored.");
                self.cycle.tally.cap_reached(name.to_string());
                return Ok(false);
            }
            self.sentinel
                .put_comment(name, id, message)
                .await
                .map_err(Step::from)?;
            posted.count += 1;
            posted.wrote = true;
        }
        Ok(true)
    }

    /// A comment for every analyst change the policy overrode, on either side (best effort:
    /// the incident is already right; the note is for people).
    async fn conflict_comments(
        &self,
        d: &DefenderIncident,
        name: &SentinelIncidentName,
        outcome: &MergeOutcome,
    ) -> bool {
        let mut wrote = false;
        for c in &outcome.conflicts {
            let field = format!("{:?}", c.field);
            let at = d.last_update.unix_timestamp_nanos().to_string();
            let id = stable_uuid(&[
                "conflict",
                self.cycle.tenant.as_str(),
                d.id.as_str(),
                &field,
                &at,
            ]);
            let message = conflict_message(c, self.policy);
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
        let survivor = SentinelIncidentName::for_defender(&self.cycle.tenant, target);
        let (tenant, id) = (self.cycle.tenant.as_str(), d.id.as_str());
        let here = format!(
            "{DEFENDER_MARKER}Defender merged this incident into Defender incident #{target} (Sentinel incident {survivor})."
        );
        let here_id = stable_uuid(&["redirect", tenant, id, target.as_str()]);
        self.sentinel
            .put_comment(name, here_id, &here)
            .await
            .map_err(Step::from)?;
        let there = format!(
            "{DEFENDER_MARKER}Defender incident #{id} (Sentinel incident {name}) was merged into this incident."
        );
        let there_id = stable_uuid(&["redirect-survivor", tenant, id, target.as_str()]);
        match self.sentinel.put_comment(&survivor, there_id, &there).await {
            Ok(_) => {
                st.mirrored_comments.insert(key);
                Ok((true, None))
            }
            Err(e) if e.class() == ErrorClass::NotFound => {
                let reason = format!("the surviving incident #{target} is not in Sentinel yet");
                Ok((true, Some(reason)))
            }
            Err(e) => Err(Step::from(e)),
        }
    }
}

/// Comment ids already on the Sentinel incident, how many it holds, and whether we posted.
struct Posted {
    ids: HashSet<String>,
    count: usize,
    wrote: bool,
}
