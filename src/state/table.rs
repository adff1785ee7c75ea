//! Azure Table Storage [`StateStore`] over the [`TableClient`].
//!
//! Layout of the one table (`SYNC_STATE_TABLE`):
//!
//! | record | PartitionKey | RowKey |
//! |---|---|---|
//! | Defender checkpoint | `checkpoint` | tenant |
//! | state horizon | `horizon` | tenant |
//! | retry entry | `retry~{tenant}` | Defender incident id |
//! | Sentinel checkpoint | `sentinel` | `checkpoint` |
//! | tenant health | `health` | tenant |
//! | incident state | `incident~{b}`, `b` = the name's first hex digit, as a number 0–15 | Sentinel incident name |
//!
//! The Sentinel name is the only lookup key of an incident state (the webhook knows nothing
//! else), and the partition is derived from it. Incident states are spread over 16 partitions.
//! The engine delivers incidents in batches of about 200 (four Graph pages): a batch's states
//! are written in one entity-group transaction per partition (about 16 requests instead of 200)
//! and read with queries of up to 14 names per partition. Queries by a list of row keys are
//! partition scans, in Azurite (which scans every entity of the table, and compares each of
//! the partition's entities with every listed name) and in the service alike, and Azurite's
//! inserts and replaces look the entity up among its whole partition: the smaller the
//! partitions, the cheaper each state. In benchmark A (batches of 200) the changed cycle over
//! 10,000 states ran at 769 incidents/s with 4 partitions, about 980 with 8 and 1,100 to 1,160
//! with 16, while a first sync (no reads, thanks to the state horizon) stayed above 1,000 with
//! 16. More partitions mean more, smaller requests per batch (each costs Azurite about 1.5 ms).

mod codec;

use super::*;
use crate::adapters::table::{
    AUTH_HINT, BatchOp, Entity, IfMatch, Query, TableClient, TableClientOptions, TableError, batch,
    quote,
};
use crate::config::{Settings, StorageConfig};
use crate::credentials::TokenSource;
use crate::domain::{DefenderIncidentId, SentinelIncidentName, TenantId};
use serde_json::Value;
use std::sync::Arc;

const PK_CHECKPOINT: &str = "checkpoint";
const PK_HORIZON: &str = "horizon";
const PK_SENTINEL: &str = "sentinel";
const RK_SENTINEL: &str = "checkpoint";
const PK_HEALTH: &str = "health";
/// Prefix of the incident states' partitions (`incident~0` … `incident~15`).
const PK_INCIDENT: &str = "incident~";
/// Partitions of incident states.
const INCIDENT_BUCKETS: u32 = 16;
/// Row keys per `$filter` of [`StateStore::incidents`] (the service allows 15 comparisons).
const NAMES_PER_QUERY: usize = 14;

/// The Table Storage state store. Cheap to clone (shares the HTTP connection pool).
#[derive(Debug, Clone)]
pub struct TableStateStore {
    client: TableClient,
}

impl TableStateStore {
    /// The store the handler uses: `settings.storage` (key or identity), table
    /// `settings.state_table`, tokens for `settings.azure_tenant_id` from `tokens` (used only by
    /// identity-based connections).
    pub fn from_settings(
        settings: &Settings,
        tokens: Arc<dyn TokenSource>,
    ) -> Result<Self, StateError> {
        let storage = settings.storage.as_ref().ok_or_else(|| {
            StateError::Invalid("no table storage is configured (SYNC_STATE_STORE=memory)".into())
        })?;
        Self::connect(
            storage,
            &settings.state_table,
            tokens,
            settings.azure_tenant_id.clone(),
            TableClientOptions::default(),
        )
    }

    /// The same with explicit parts and options (tests: extra root certificates).
    pub fn connect(
        storage: &StorageConfig,
        table: &str,
        tokens: Arc<dyn TokenSource>,
        tenant: TenantId,
        options: TableClientOptions,
    ) -> Result<Self, StateError> {
        Ok(Self::new(
            TableClient::new(storage, table, tokens, tenant, options).map_err(state_error)?,
        ))
    }

    /// Wraps an existing client.
    pub fn new(client: TableClient) -> Self {
        Self { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &TableClient {
        &self.client
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        pk: &str,
        rk: &str,
    ) -> Result<Option<Versioned<T>>, StateError> {
        let Some(e) = self.client.get(pk, rk).await.map_err(state_error)? else {
            return Ok(None);
        };
        let etag = e.etag.clone().ok_or_else(|| {
            StateError::Invalid(format!("state record {pk}/{rk} came without an ETag"))
        })?;
        Ok(Some(Versioned {
            value: codec::decode(&e)?,
            etag: ETag(etag),
        }))
    }

    async fn write(&self, entity: Entity, pre: Precondition) -> Result<ETag, StateError> {
        let result = match &pre {
            Precondition::Absent => self.client.insert(&entity).await,
            Precondition::Matches(etag) => {
                self.client
                    .replace(&entity, &IfMatch::ETag(etag.0.clone()))
                    .await
            }
            Precondition::Any => self.client.upsert(&entity).await,
        };
        match result {
            Ok(etag) => Ok(ETag(etag)),
            // Replacing a record that was deleted meanwhile is a lost race too.
            Err(TableError::NotFound(_)) if matches!(pre, Precondition::Matches(_)) => {
                Err(StateError::Conflict)
            }
            Err(e) => {
                if matches!(
                    e,
                    TableError::Conflict(_) | TableError::PreconditionFailed(_)
                ) {
                    tracing::debug!(pk = %entity.partition_key, rk = %entity.row_key, "state write lost a race");
                }
                Err(state_error(e))
            }
        }
    }
}

/// The partition of an incident's state: the name's first hex digit, mod [`INCIDENT_BUCKETS`].
fn incident_pk(name: &SentinelIncidentName) -> String {
    let digit = name
        .to_string()
        .chars()
        .next()
        .and_then(|c| c.to_digit(16))
        .unwrap_or(0);
    format!("{PK_INCIDENT}{}", digit % INCIDENT_BUCKETS)
}

fn retry_pk(tenant: &TenantId) -> String {
    format!("retry~{tenant}")
}

fn incident_entity(s: &IncidentState) -> Result<Entity, StateError> {
    let outcome = s
        .last_outcome
        .as_ref()
        .map(|o| Value::from(outcome_name(o)))
        .unwrap_or(Value::Null);
    let mut extra = vec![
        ("Tenant", Value::from(s.tenant.as_str())),
        ("DefenderId", Value::from(s.defender_id.as_str())),
    ];
    if !outcome.is_null() {
        extra.push(("LastOutcome", outcome));
    }
    codec::encode(
        &incident_pk(&s.sentinel_name),
        &s.sentinel_name.to_string(),
        s,
        extra,
    )
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Synced => "Synced",
        Outcome::Unchanged => "Unchanged",
        Outcome::Parked => "Parked",
        Outcome::Failed => "Failed",
    }
}

fn batch_op(entity: Entity, pre: &Precondition) -> BatchOp {
    match pre {
        Precondition::Absent => BatchOp::Insert(entity),
        Precondition::Matches(etag) => BatchOp::Replace(entity, IfMatch::ETag(etag.0.clone())),
        Precondition::Any => BatchOp::Upsert(entity),
    }
}

/// Client errors → store errors, grouped by what the sync engine does next.
fn state_error(e: TableError) -> StateError {
    match e {
        TableError::Conflict(_) | TableError::PreconditionFailed(_) => StateError::Conflict,
        TableError::Throttled { retry_after } => StateError::Throttled { retry_after },
        TableError::Auth(m) => StateError::Auth(format!("{m}; {AUTH_HINT}")),
        TableError::Transient(m) => StateError::Transient(m),
        TableError::NotFound(m) => {
            StateError::Invalid(format!("{m} (has ensure_ready created the table?)"))
        }
        TableError::Rejected(m) => StateError::Invalid(m),
    }
}

#[async_trait::async_trait]
impl StateStore for TableStateStore {
    async fn ensure_ready(&self) -> Result<(), StateError> {
        self.client
            .create_table_if_missing()
            .await
            .map_err(state_error)
    }

    async fn checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<Versioned<Checkpoint>>, StateError> {
        self.read(PK_CHECKPOINT, tenant.as_str()).await
    }

    async fn put_checkpoint(
        &self,
        tenant: &TenantId,
        value: &Checkpoint,
        pre: Precondition,
    ) -> Result<ETag, StateError> {
        self.write(
            codec::encode(PK_CHECKPOINT, tenant.as_str(), value, vec![])?,
            pre,
        )
        .await
    }

    async fn retry_set(&self, tenant: &TenantId) -> Result<Vec<RetryEntry>, StateError> {
        let q = Query {
            filter: Some(format!("PartitionKey eq {}", quote(&retry_pk(tenant)))),
            ..Query::default()
        };
        let entities = self.client.query_all(&q).await.map_err(state_error)?;
        entities.iter().map(codec::decode).collect()
    }

    async fn put_retry(&self, tenant: &TenantId, entry: &RetryEntry) -> Result<(), StateError> {
        let e = codec::encode(&retry_pk(tenant), entry.incident_id.as_str(), entry, vec![])?;
        self.write(e, Precondition::Any).await.map(drop)
    }

    async fn remove_retry(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<(), StateError> {
        match self
            .client
            .delete(&retry_pk(tenant), id.as_str(), &IfMatch::Any)
            .await
        {
            Ok(()) | Err(TableError::NotFound(_)) => Ok(()),
            Err(e) => Err(state_error(e)),
        }
    }

    async fn state_horizon(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<Versioned<StateHorizon>>, StateError> {
        self.read(PK_HORIZON, tenant.as_str()).await
    }

    async fn put_state_horizon(
        &self,
        tenant: &TenantId,
        value: &StateHorizon,
        pre: Precondition,
    ) -> Result<ETag, StateError> {
        self.write(
            codec::encode(PK_HORIZON, tenant.as_str(), value, vec![])?,
            pre,
        )
        .await
    }

    async fn sentinel_checkpoint(
        &self,
    ) -> Result<Option<Versioned<SentinelCheckpoint>>, StateError> {
        self.read(PK_SENTINEL, RK_SENTINEL).await
    }

    async fn put_sentinel_checkpoint(
        &self,
        value: &SentinelCheckpoint,
        pre: Precondition,
    ) -> Result<ETag, StateError> {
        self.write(codec::encode(PK_SENTINEL, RK_SENTINEL, value, vec![])?, pre)
            .await
    }

    async fn incident(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Option<Versioned<IncidentState>>, StateError> {
        self.read(&incident_pk(name), &name.to_string()).await
    }

    async fn put_incident(
        &self,
        value: &IncidentState,
        pre: Precondition,
    ) -> Result<ETag, StateError> {
        self.write(incident_entity(value)?, pre).await
    }

    /// One query per 14 names, run together: the service allows at most 15 comparisons in a
    /// `$filter` (the partition and 14 row keys). A query is a partition scan where a point read
    /// is not, but for a page of 50 it replaces 50 round trips by 4.
    fn incident_group(&self, name: &SentinelIncidentName) -> String {
        incident_pk(name)
    }

    async fn incidents(
        &self,
        names: &[SentinelIncidentName],
    ) -> Result<IncidentStates, StateError> {
        let mut by_partition: std::collections::BTreeMap<String, Vec<SentinelIncidentName>> =
            std::collections::BTreeMap::new();
        for name in names {
            by_partition
                .entry(incident_pk(name))
                .or_default()
                .push(*name);
        }
        let chunks = by_partition
            .iter()
            .flat_map(|(pk, names)| names.chunks(NAMES_PER_QUERY).map(move |c| (pk, c)));
        let queries = chunks.map(|(pk, chunk)| {
            let keys: Vec<String> = chunk
                .iter()
                .map(|n| format!("RowKey eq {}", quote(&n.to_string())))
                .collect();
            let filter = format!("PartitionKey eq {} and ({})", quote(pk), keys.join(" or "));
            async move {
                self.client
                    .query_all(&Query {
                        filter: Some(filter),
                        ..Query::default()
                    })
                    .await
            }
        });
        let pages = futures::future::try_join_all(queries)
            .await
            .map_err(state_error)?;
        let mut out = IncidentStates::new();
        for e in pages.iter().flatten() {
            let etag = e.etag.clone().ok_or_else(|| {
                StateError::Invalid(format!(
                    "state record {}/{} came without an ETag",
                    e.partition_key, e.row_key
                ))
            })?;
            let value: IncidentState = codec::decode(e)?;
            out.insert(
                value.sentinel_name,
                Versioned {
                    value,
                    etag: ETag(etag),
                },
            );
        }
        Ok(out)
    }

    /// Writes in transactions of up to 100: all-or-nothing holds per group of 100 (in order);
    /// on an error, earlier groups stay written and the error is returned.
    async fn put_incidents(
        &self,
        items: &[(IncidentState, Precondition)],
    ) -> Result<Vec<ETag>, StateError> {
        distinct_incidents(items)?;
        let groups: std::collections::HashSet<String> = items
            .iter()
            .map(|(v, _)| incident_pk(&v.sentinel_name))
            .collect();
        if groups.len() > 1 {
            return Err(StateError::Invalid(
                "one put_incidents call spans several incident groups (partitions)".into(),
            ));
        }
        let mut etags = Vec::with_capacity(items.len());
        for group in items.chunks(MAX_STATES_PER_PUT.min(batch::MAX_OPERATIONS)) {
            let ops = group
                .iter()
                .map(|(s, pre)| Ok(batch_op(incident_entity(s)?, pre)))
                .collect::<Result<Vec<_>, StateError>>()?;
            let written = match self.client.batch(&ops).await {
                Ok(w) => w,
                // A Matches on a deleted record: the race is lost, as for a single write.
                Err(TableError::NotFound(_)) => return Err(StateError::Conflict),
                Err(e) => return Err(state_error(e)),
            };
            for etag in written {
                etags.push(ETag(etag.ok_or_else(|| {
                    StateError::Invalid("a transaction result came without an ETag".into())
                })?));
            }
        }
        Ok(etags)
    }

    async fn tenant_health(&self, tenant: &TenantId) -> Result<Option<TenantHealth>, StateError> {
        Ok(self
            .read(PK_HEALTH, tenant.as_str())
            .await?
            .map(|v| v.value))
    }

    async fn put_tenant_health(
        &self,
        tenant: &TenantId,
        value: &TenantHealth,
    ) -> Result<(), StateError> {
        self.write(
            codec::encode(PK_HEALTH, tenant.as_str(), value, vec![])?,
            Precondition::Any,
        )
        .await
        .map(drop)
    }

    async fn failed_incidents(&self, limit: usize) -> Result<Vec<IncidentState>, StateError> {
        // Every incident partition: `incident~0` … `incident~15` sort between these bounds.
        let filter = format!(
            "PartitionKey ge {} and PartitionKey lt {} and (LastOutcome eq 'Failed' or LastOutcome eq 'Parked')",
            quote(PK_INCIDENT),
            quote(&format!("{PK_INCIDENT}~"))
        );
        let entities = self
            .client
            .query_all(&Query {
                filter: Some(filter),
                ..Query::default()
            })
            .await
            .map_err(state_error)?;
        let mut out = entities
            .iter()
            .map(codec::decode)
            .collect::<Result<Vec<IncidentState>, _>>()?;
        out.sort_by_key(|s| std::cmp::Reverse(s.updated_at));
        out.truncate(limit);
        Ok(out)
    }
}

/// Entry point for the fuzz targets and the corpus replay (`crate::fuzzing`): decodes an entity
/// as every record the store reads, and checks that each record that decodes encodes back to
/// an entity that decodes to the same record.
pub(crate) mod fuzz {
    use super::codec;
    use crate::adapters::table::Entity;
    use crate::state::*;

    fn round_trip<T>(e: &Entity) -> Result<bool, String>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let Ok(record) = codec::decode::<T>(e) else {
            return Ok(false);
        };
        // A record over the 1 MiB entity limit is refused on encode; that is its documented end.
        let Ok(again) = codec::encode(&e.partition_key, &e.row_key, &record, Vec::new()) else {
            return Ok(true);
        };
        let back: T = codec::decode(&again).map_err(|err| format!("re-decode: {err}"))?;
        if back != record {
            return Err(format!(
                "record changed in a round trip: {record:?} → {back:?}"
            ));
        }
        Ok(true)
    }

    /// How many record kinds the entity decodes as; an error when a round trip changes one.
    pub(crate) fn decode_all(e: &Entity) -> Result<usize, String> {
        let kinds = [
            round_trip::<Checkpoint>(e)?,
            round_trip::<StateHorizon>(e)?,
            round_trip::<RetryEntry>(e)?,
            round_trip::<SentinelCheckpoint>(e)?,
            round_trip::<IncidentState>(e)?,
            round_trip::<TenantHealth>(e)?,
        ];
        Ok(kinds.into_iter().filter(|k| *k).count())
    }
}
