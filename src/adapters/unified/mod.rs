//! The unified Defender portal as the Sentinel side (`SENTINEL_TARGET=unified`): the platform
//! creates the incidents from the alerts the sync ingests (the analytics rule of
//! `infra/modules/unified-analytics-rule.bicep`); this adapter finds them through Graph in the
//! WORKSPACE tenant (`alerts_v2`, by the rule's custom details), updates them with Graph
//! `PATCH /security/incidents/{id}` and comments through Graph incident comments. It reuses the
//! Graph client's plumbing (tokens, pacing, retries); its wire types are its own ([`wire`]).
//!
//! Names: the engine keys everything by the derived name of the source incident
//! (`SentinelIncidentName::for_defender`); this adapter maps that name to the platform incident
//! it found (an index rebuilt from `alerts_v2` when a name is unknown) and hands the platform id
//! out as the incident's `platform_id`, which the state keeps as the pair in a field of its own
//! (`IncidentState::platform_incident`) and hands back with every write, so a restarted or
//! another instance finds the pair without a scan.

mod mapping;
mod wire;

use crate::adapters::graph::GraphClient;
use crate::domain::*;
use crate::ports::{
    DefenderError, DefenderPatch, Provisioning, SentinelApi, SentinelError, SentinelPage,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use time::OffsetDateTime;
use wire::{AlertPageDto, IncidentPageDto};

pub use mapping::{SOURCE_INCIDENT_KEY, SOURCE_TENANT_KEY};

/// How far back the first alert scan looks (the rule's grouping lookback).
const FIRST_SCAN: time::Duration = time::Duration::days(7);
/// Overlap of later scans: alerts can become visible a while after their `createdDateTime`.
const SCAN_OVERLAP: time::Duration = time::Duration::minutes(15);
/// Redirects followed from one incident (a merge of a merge …).
const MAX_REDIRECTS: usize = 4;

/// What the adapter knows between calls.
#[derive(Debug, Default)]
struct Index {
    /// Source incident (by its derived name) → platform incident id.
    platform: HashMap<SentinelIncidentName, DefenderIncidentId>,
    /// `createdDateTime` of the newest platform alert scanned.
    scanned_until: Option<OffsetDateTime>,
    /// Per platform incident and source, what the engine last asked to write (see
    /// [`mapping::to_sentinel`]).
    asked: HashMap<(DefenderIncidentId, SentinelIncidentName), SentinelIncident>,
    /// Sources whose pair moved to another platform incident by a merge (they are not what
    /// the survivor was made for).
    moved: HashSet<SentinelIncidentName>,
    /// Further platform incidents holding a source's alerts (a split: alerts that arrived after
    /// the rule's grouping lookback made a new incident).
    extras: HashMap<SentinelIncidentName, HashSet<DefenderIncidentId>>,
    /// Extra platform incidents already closed with a pointer to the source's own one.
    settled: HashSet<DefenderIncidentId>,
}

impl Index {
    /// Records that platform incident `pid` holds alerts of source `name`. The oldest one
    /// (Graph incident ids grow) is the source's pair, unless a merge moved the pair; any
    /// other is an extra, closed by [`UnifiedClient::settle_extras`].
    fn record(&mut self, name: SentinelIncidentName, pid: DefenderIncidentId) {
        let Some(existing) = self.platform.get(&name).cloned() else {
            self.platform.insert(name, pid);
            return;
        };
        if existing == pid {
            return;
        }
        let older = match (
            pid.as_str().parse::<u64>(),
            existing.as_str().parse::<u64>(),
        ) {
            (Ok(new), Ok(old)) => new < old,
            _ => false,
        };
        let extra = if older && !self.moved.contains(&name) {
            self.platform.insert(name, pid);
            existing
        } else {
            pid
        };
        self.extras.entry(name).or_default().insert(extra);
    }

    /// Extras of `name` not closed yet.
    fn unsettled(&self, name: &SentinelIncidentName) -> Vec<DefenderIncidentId> {
        self.extras
            .get(name)
            .into_iter()
            .flatten()
            .filter(|id| !self.settled.contains(*id))
            .cloned()
            .collect()
    }
}

/// `SentinelApi` over Graph incidents in the workspace's tenant.
pub struct UnifiedClient {
    graph: Arc<GraphClient>,
    workspace: TenantId,
    index: Mutex<Index>,
}

impl std::fmt::Debug for UnifiedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnifiedClient")
            .field("workspace", &self.workspace)
            .finish_non_exhaustive()
    }
}

fn to_sentinel_error(e: DefenderError) -> SentinelError {
    match e {
        DefenderError::Auth { status, message }
        | DefenderError::UserLookupDenied { status, message } => SentinelError::Auth {
            status,
            message: format!(
                "Graph in the workspace tenant: {message} (the app needs SecurityIncident.ReadWrite.All and SecurityAlert.Read.All there)"
            ),
        },
        DefenderError::NotFound => SentinelError::NotFound,
        DefenderError::Throttled { retry_after } => SentinelError::Throttled { retry_after },
        DefenderError::Transient(m) => SentinelError::Transient(format!("Graph: {m}")),
        DefenderError::Rejected { status, message } => SentinelError::Rejected {
            status,
            message: format!("Graph: {message}"),
        },
    }
}

impl UnifiedClient {
    /// `graph` is the handler's Graph client; `workspace` the tenant of the workspace
    /// (`AZURE_TENANT_ID`), where the platform's incidents live.
    pub fn new(graph: Arc<GraphClient>, workspace: TenantId) -> Self {
        Self {
            graph,
            workspace,
            index: Mutex::default(),
        }
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // A panic while holding it leaves only caches behind: keep using them.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the rule's alerts created since the last scan and records which platform incident
    /// holds each source incident (the first one found stays: a later split is not followed).
    async fn scan(&self) -> Result<(), SentinelError> {
        let since = {
            let ix = self.index();
            ix.scanned_until.map_or_else(
                || OffsetDateTime::now_utc() - FIRST_SCAN,
                |t| t - SCAN_OVERLAP,
            )
        };
        let since = since
            .to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| SentinelError::Transient(format!("time format: {e}")))?;
        let filter = format!("serviceSource eq 'microsoftSentinel' and createdDateTime ge {since}");
        let mut page: AlertPageDto = self
            .graph
            .get_security(
                &self.workspace,
                &["alerts_v2"],
                &[("$filter", filter.as_str()), ("$top", "50")],
                "unified.scan_alerts",
            )
            .await
            .map_err(to_sentinel_error)?;
        loop {
            {
                let mut ix = self.index();
                for a in &page.value {
                    let (Some(data), Some(incident)) = (&a.additional_data, &a.incident_id) else {
                        continue;
                    };
                    let (Some((tenant, id)), Ok(pid)) = (
                        mapping::source_of(data),
                        DefenderIncidentId::parse(incident),
                    ) else {
                        continue;
                    };
                    let name = SentinelIncidentName::for_defender(&tenant, &id);
                    ix.record(name, pid);
                    if let Some(t) = mapping::parse_time(a.created_date_time.as_deref()) {
                        ix.scanned_until = Some(ix.scanned_until.map_or(t, |u| u.max(t)));
                    }
                }
            }
            let Some(link) = page.next_link.take() else {
                break;
            };
            page = self
                .graph
                .get_next(&self.workspace, &link, "unified.scan_alerts")
                .await
                .map_err(to_sentinel_error)?;
        }
        Ok(())
    }

    /// The platform incident mirroring `name`, following redirects (a merge moves the pair to
    /// the survivor); `None` when none is known even after a scan.
    async fn platform_incident(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Option<DefenderIncident>, SentinelError> {
        let known = self.index().platform.get(name).cloned();
        let mut id = match known {
            Some(id) => id,
            None => {
                self.scan().await?;
                match self.index().platform.get(name).cloned() {
                    Some(id) => id,
                    None => return Ok(None),
                }
            }
        };
        for _ in 0..MAX_REDIRECTS {
            let Some(p) = self
                .graph
                .get_incident_as(&self.workspace, &id, "unified.get_incident")
                .await
                .map_err(to_sentinel_error)?
            else {
                self.index().platform.remove(name);
                return Ok(None);
            };
            match (&p.status, &p.redirect_incident_id) {
                (DefenderStatus::Redirected, Some(to)) => {
                    tracing::info!(message = "Platform incident merged: the pair moves to the survivor.", sentinel_name = %name, from = %id, to = %to);
                    id = to.clone();
                    let mut ix = self.index();
                    ix.platform.insert(*name, id.clone());
                    ix.moved.insert(*name);
                }
                _ => return Ok(Some(p)),
            }
        }
        Err(SentinelError::Rejected {
            status: 200,
            message: format!("platform incident {id}: more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// The platform incident as the mirror of source `name`. After a platform merge the
    /// survivor holds several sources' alerts; it follows the one it was made for (its oldest
    /// alert's, [`mapping::source_of_incident`]). For the other sources it is shown as they last
    /// wrote it, so a merged source neither overwrites the survivor nor takes its values.
    /// Closes the extra platform incidents of source `name` (a split), each with a comment
    /// pointing to `primary`, once. A failure is logged and retried on the next occasion.
    async fn settle_extras(&self, name: SentinelIncidentName, primary: &DefenderIncidentId) {
        let extras = self.index().unsettled(&name);
        for id in extras {
            match self.close_extra(&id, primary).await {
                Ok(()) => {
                    self.index().settled.insert(id);
                }
                Err(error) => {
                    tracing::warn!(message = "Extra platform incident of a split not closed yet.", platform_incident = %id, %error);
                }
            }
        }
    }

    async fn close_extra(
        &self,
        id: &DefenderIncidentId,
        primary: &DefenderIncidentId,
    ) -> Result<(), DefenderError> {
        let Some(p) = self
            .graph
            .get_incident_as(&self.workspace, id, "unified.get_incident")
            .await?
        else {
            return Ok(());
        };
        if matches!(
            p.status,
            DefenderStatus::Redirected | DefenderStatus::Resolved
        ) {
            return Ok(());
        }
        let note = mapping::split_note(primary);
        if !p.comments.iter().any(|c| c.text == note) {
            self.graph
                .add_comment_as(&self.workspace, id, &note, "unified.add_comment")
                .await?;
        }
        let patch = DefenderPatch {
            status: Some(DefenderStatus::Resolved),
            ..DefenderPatch::default()
        };
        self.graph
            .update_incident_as(&self.workspace, id, &patch, "unified.update_incident")
            .await?;
        tracing::info!(message = "Extra platform incident of a split closed.", platform_incident = %id, primary = %primary);
        Ok(())
    }

    /// A source incident merged into platform incident `p` (not the one `p` follows) changed
    /// since the engine last asked: its fields do not overwrite the survivor, so the change
    /// reaches it as a note (once: a retry finds the same text and does not add it again).
    async fn note_merged_change(
        &self,
        p: &DefenderIncident,
        incident: &SentinelIncident,
    ) -> Result<(), SentinelError> {
        let before = self
            .index()
            .asked
            .get(&(p.id.clone(), incident.name))
            .cloned();
        let Some(before) = before else {
            return Ok(()); // first write since the pair moved here (or since a restart)
        };
        let changes = mapping::changes(&before, incident);
        let Some((tenant, source)) = mapping::source_named(p, incident.name) else {
            return Ok(());
        };
        if changes.is_empty() {
            return Ok(());
        }
        let note = mapping::merged_change_note(&tenant, &source, &changes);
        if p.comments.iter().any(|c| c.text == note) {
            return Ok(());
        }
        self.graph
            .add_comment_as(&self.workspace, &p.id, &note, "unified.add_comment")
            .await
            .map_err(to_sentinel_error)?;
        tracing::info!(message = "A merged source incident changed: noted on the survivor.", platform_incident = %p.id, sentinel_name = %incident.name);
        Ok(())
    }

    fn as_sentinel(&self, name: SentinelIncidentName, p: &DefenderIncident) -> SentinelIncident {
        let ix = self.index();
        let asked = ix.asked.get(&(p.id.clone(), name));
        match asked {
            Some(a) if !is_primary(&ix, name, p) => {
                let mut s = a.clone();
                s.etag = Some(mapping::etag(p));
                s.platform_id = Some(p.id.clone());
                s.comments_count = u32::try_from(p.comments.len()).ok();
                s.last_modified = Some(p.last_update);
                s
            }
            _ => mapping::to_sentinel(name, p, asked),
        }
    }
}

/// The unified webhook's routing: a trigger body names a platform incident; the source it is
/// the pair of is the one it was made for ([`mapping::source_of_incident`]), provided the
/// sync's pair of that source is this very incident (not an extra of a split, not one a merge
/// redirected away; a forged id names no incident of the rule).
#[async_trait::async_trait]
impl crate::webhook::unified::PlatformRoutes for UnifiedClient {
    async fn source_of_platform(
        &self,
        id: &DefenderIncidentId,
    ) -> Result<Option<SentinelIncidentName>, SentinelError> {
        let Some(p) = self
            .graph
            .get_incident_as(&self.workspace, id, "unified.get_incident")
            .await
            .map_err(to_sentinel_error)?
        else {
            return Ok(None);
        };
        if p.status == DefenderStatus::Redirected {
            return Ok(None); // merged away: the survivor's own trigger carries the change
        }
        let Some((tenant, source)) = mapping::source_of_incident(&p) else {
            return Ok(None); // not made by the rule
        };
        let name = SentinelIncidentName::for_defender(&tenant, &source);
        let pair = self.platform_incident(&name).await?;
        Ok(pair.filter(|pair| pair.id == p.id).map(|_| name))
    }
}

/// Whether platform incident `p` was made for source `name`: not when a merge moved the pair
/// there, else when it is the source of the alert the incident was made from
/// ([`mapping::source_of_incident`]); an incident without custom details counts as made for
/// whoever found it.
fn is_primary(ix: &Index, name: SentinelIncidentName, p: &DefenderIncident) -> bool {
    !ix.moved.contains(&name)
        && mapping::source_of_incident(p)
            .is_none_or(|(t, id)| SentinelIncidentName::for_defender(&t, &id) == name)
}

#[async_trait::async_trait]
impl SentinelApi for UnifiedClient {
    fn provisioning(&self) -> Provisioning {
        Provisioning::ByService
    }

    async fn get_incident(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Option<SentinelIncident>, SentinelError> {
        Ok(self
            .platform_incident(name)
            .await?
            .map(|p| self.as_sentinel(*name, &p)))
    }

    /// PATCHes the synced fields that differ (status, classification, determination,
    /// assignedTo, customTags). The platform owns title, description and severity: they are
    /// not written, and reported back as asked.
    async fn put_incident(
        &self,
        incident: &SentinelIncident,
    ) -> Result<SentinelIncident, SentinelError> {
        // After a restart (or on another instance) the index does not know the pair: the state
        // keeps it (`platform_id`, from its own field; a state written before that field
        // existed names it in the old etag form, read this once).
        let kept = incident
            .platform_id
            .clone()
            .or_else(|| incident.etag.as_deref().and_then(mapping::id_from_etag));
        if let Some(id) = kept {
            self.index().platform.entry(incident.name).or_insert(id);
        }
        let Some(p) = self.platform_incident(&incident.name).await? else {
            // The platform creates incidents; the engine only writes one it found.
            return Err(SentinelError::NotFound);
        };
        let primary = is_primary(&self.index(), incident.name, &p);
        if !primary {
            self.note_merged_change(&p, incident).await?;
        }
        let patch = if primary {
            mapping::patch_for(&p, incident)
                .map_err(|message| SentinelError::Rejected { status: 0, message })?
        } else {
            DefenderPatch::default()
        };
        let after = if mapping::is_empty(&patch) {
            p
        } else {
            self.graph
                .update_incident_as(&self.workspace, &p.id, &patch, "unified.update_incident")
                .await
                .map_err(to_sentinel_error)?
        };
        self.index()
            .asked
            .insert((after.id.clone(), incident.name), incident.clone());
        if primary {
            self.settle_extras(incident.name, &after.id).await;
        }
        Ok(self.as_sentinel(incident.name, &after))
    }

    async fn list_modified_since(
        &self,
        since: OffsetDateTime,
        next_link: Option<&str>,
    ) -> Result<SentinelPage, SentinelError> {
        // Oldest change first (as the ARM target lists them), alerts expanded for the custom
        // details.
        let page: IncidentPageDto = match next_link {
            Some(link) => {
                self.graph
                    .get_next(&self.workspace, link, "unified.list_modified")
                    .await
            }
            None => {
                let since = since
                    .to_offset(time::UtcOffset::UTC)
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(|e| SentinelError::Transient(format!("time format: {e}")))?;
                let filter = format!("lastUpdateDateTime ge {since}");
                self.graph
                    .get_security(
                        &self.workspace,
                        &["incidents"],
                        &[
                            ("$filter", filter.as_str()),
                            ("$orderby", "lastUpdateDateTime asc"),
                            ("$expand", "alerts"),
                            ("$top", "50"),
                        ],
                        "unified.list_modified",
                    )
                    .await
            }
        }
        .map_err(to_sentinel_error)?;
        let mut platform = Vec::with_capacity(page.value.len());
        for raw in page.value {
            let v: serde_json::Value =
                serde_json::from_str(raw.get()).map_err(|e| SentinelError::Rejected {
                    status: 200,
                    message: format!("platform incident does not parse: {e}"),
                })?;
            match crate::adapters::graph::incident_from_json(&self.workspace, v) {
                Ok(p) => platform.push(p),
                Err(error) => {
                    tracing::warn!(message = "Platform incident cannot be mapped; skipped.", %error);
                }
            }
        }
        let page = crate::ports::IncidentPage {
            incidents: platform,
            next_link: page.next_link,
            unmappable: Vec::new(),
        };
        let mut incidents = Vec::with_capacity(page.incidents.len());
        let mut split = HashSet::new();
        for p in &page.incidents {
            // Redirected ones are gone: their survivor changed too and is listed.
            if p.status == DefenderStatus::Redirected {
                continue;
            }
            let Some((tenant, id)) = mapping::source_of_incident(p) else {
                continue; // not made by the rule: not ours
            };
            let name = SentinelIncidentName::for_defender(&tenant, &id);
            let pair = {
                let mut ix = self.index();
                ix.record(name, p.id.clone());
                ix.platform.get(&name).cloned()
            };
            if pair.as_ref() != Some(&p.id) {
                // An extra incident of a split: closed below, never applied to the source.
                split.insert(name);
                continue;
            }
            incidents.push(self.as_sentinel(name, p));
        }
        for name in split {
            let primary = self.index().platform.get(&name).cloned();
            if let Some(primary) = primary {
                self.settle_extras(name, &primary).await;
            }
        }
        Ok(SentinelPage {
            incidents,
            next_link: page.next_link,
        })
    }

    async fn list_comments(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Vec<SentinelComment>, SentinelError> {
        Ok(self
            .platform_incident(name)
            .await?
            .map(|p| mapping::comments(&p))
            .unwrap_or_default())
    }

    /// Graph comments have no client id: a retry first looks for the same text and does not
    /// add it twice.
    async fn put_comment(
        &self,
        name: &SentinelIncidentName,
        comment_id: uuid::Uuid,
        message: &str,
    ) -> Result<SentinelComment, SentinelError> {
        let Some(p) = self.platform_incident(name).await? else {
            return Err(SentinelError::NotFound);
        };
        let existing = mapping::comments(&p);
        if let Some(c) = existing.iter().find(|c| c.message == message) {
            return Ok(c.clone());
        }
        let all = self
            .graph
            .add_comment_as(&self.workspace, &p.id, message, "unified.add_comment")
            .await
            .map_err(to_sentinel_error)?;
        let created = all
            .iter()
            .rev()
            .find(|c| c.text == message)
            .and_then(|c| c.created);
        Ok(SentinelComment {
            id: comment_id.to_string(),
            message: message.to_owned(),
            author: None,
            created,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: u8) -> SentinelIncidentName {
        SentinelIncidentName::for_defender(
            &TenantId::parse("b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c").unwrap(),
            &DefenderIncidentId::parse(&n.to_string()).unwrap(),
        )
    }

    fn id(s: &str) -> DefenderIncidentId {
        DefenderIncidentId::parse(s).unwrap()
    }

    #[test]
    fn the_oldest_platform_incident_is_the_pair_and_the_others_are_extras() {
        let mut ix = Index::default();
        // Found newest first (alerts_v2 lists newest first): the older one still wins.
        ix.record(name(1), id("1009"));
        ix.record(name(1), id("1003"));
        ix.record(name(1), id("1003"));
        assert_eq!(ix.platform[&name(1)], id("1003"));
        assert_eq!(ix.unsettled(&name(1)), vec![id("1009")]);
        ix.settled.insert(id("1009"));
        assert!(ix.unsettled(&name(1)).is_empty());
        // A pair a merge moved stays on the survivor, whatever its id.
        ix.record(name(2), id("1020"));
        ix.moved.insert(name(2));
        ix.record(name(2), id("1004"));
        assert_eq!(ix.platform[&name(2)], id("1020"));
    }
}
