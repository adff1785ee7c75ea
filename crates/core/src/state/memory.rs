//! In-memory [`StateStore`] for unit tests and the demo. Same semantics as the Table store:
//! every write checks its precondition and returns a new ETag.

use super::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// One process's state, behind a mutex (never held across an await).
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_etag: u64,
    records: HashMap<String, (serde_json::Value, ETag)>,
    retries: HashMap<String, BTreeMap<String, RetryEntry>>,
    health: HashMap<String, TenantHealth>,
}

impl Inner {
    fn check(&self, key: &str, pre: &Precondition) -> Result<(), StateError> {
        let current = self.records.get(key).map(|(_, e)| e);
        match (pre, current) {
            (Precondition::Any, _) | (Precondition::Absent, None) => Ok(()),
            (Precondition::Matches(want), Some(have)) if want == have => Ok(()),
            _ => Err(StateError::Conflict),
        }
    }

    fn write<T: serde::Serialize>(&mut self, key: String, value: &T) -> Result<ETag, StateError> {
        self.next_etag += 1;
        let etag = ETag(format!("W/\"mem-{}\"", self.next_etag));
        let json = serde_json::to_value(value).map_err(|e| StateError::Invalid(e.to_string()))?;
        self.records.insert(key, (json, etag.clone()));
        Ok(etag)
    }

    fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, StateError> {
        self.records
            .get(key)
            .map(|(v, etag)| {
                serde_json::from_value(v.clone())
                    .map(|value| Versioned {
                        value,
                        etag: etag.clone(),
                    })
                    .map_err(|e| StateError::Invalid(e.to_string()))
            })
            .transpose()
    }
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another test thread panicked; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn checkpoint_key(t: &TenantId) -> String {
    format!("checkpoint/{t}")
}

fn incident_key(n: &SentinelIncidentName) -> String {
    format!("incident/{n}")
}

const SENTINEL_CHECKPOINT_KEY: &str = "checkpoint/sentinel";

#[async_trait::async_trait]
impl StateStore for MemoryStateStore {
    async fn ensure_ready(&self) -> Result<(), StateError> {
        Ok(())
    }

    async fn checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<Versioned<Checkpoint>>, StateError> {
        self.lock().read(&checkpoint_key(tenant))
    }

    async fn put_checkpoint(
        &self,
        tenant: &TenantId,
        value: &Checkpoint,
        pre: Precondition,
    ) -> Result<ETag, StateError> {
        let mut inner = self.lock();
        let key = checkpoint_key(tenant);
        inner.check(&key, &pre)?;
        inner.write(key, value)
    }

    async fn state_horizon(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<Versioned<StateHorizon>>, StateError> {
        self.lock().read(&format!("horizon/{tenant}"))
    }

    async fn put_state_horizon(
        &self,
        tenant: &TenantId,
        value: &StateHorizon,
        pre: Precondition,
    ) -> Result<ETag, StateError> {
        let mut inner = self.lock();
        let key = format!("horizon/{tenant}");
        inner.check(&key, &pre)?;
        inner.write(key, value)
    }

    async fn retry_set(&self, tenant: &TenantId) -> Result<Vec<RetryEntry>, StateError> {
        Ok(self
            .lock()
            .retries
            .get(tenant.as_str())
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn put_retry(&self, tenant: &TenantId, entry: &RetryEntry) -> Result<(), StateError> {
        self.lock()
            .retries
            .entry(tenant.as_str().to_owned())
            .or_default()
            .insert(entry.incident_id.as_str().to_owned(), entry.clone());
        Ok(())
    }

    async fn remove_retry(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<(), StateError> {
        if let Some(m) = self.lock().retries.get_mut(tenant.as_str()) {
            m.remove(id.as_str());
        }
        Ok(())
    }

    async fn sentinel_checkpoint(
        &self,
    ) -> Result<Option<Versioned<SentinelCheckpoint>>, StateError> {
        self.lock().read(SENTINEL_CHECKPOINT_KEY)
    }

    async fn put_sentinel_checkpoint(
        &self,
        value: &SentinelCheckpoint,
        pre: Precondition,
    ) -> Result<ETag, StateError> {
        let mut inner = self.lock();
        inner.check(SENTINEL_CHECKPOINT_KEY, &pre)?;
        inner.write(SENTINEL_CHECKPOINT_KEY.to_owned(), value)
    }

    async fn incident(
        &self,
        name: &SentinelIncidentName,
    ) -> Result<Option<Versioned<IncidentState>>, StateError> {
        self.lock().read(&incident_key(name))
    }

    async fn put_incident(
        &self,
        value: &IncidentState,
        pre: Precondition,
    ) -> Result<ETag, StateError> {
        let mut inner = self.lock();
        let key = incident_key(&value.sentinel_name);
        inner.check(&key, &pre)?;
        inner.write(key, value)
    }

    async fn incidents(
        &self,
        names: &[SentinelIncidentName],
    ) -> Result<IncidentStates, StateError> {
        let inner = self.lock();
        let mut out = IncidentStates::new();
        for name in names {
            if let Some(v) = inner.read(&incident_key(name))? {
                out.insert(*name, v);
            }
        }
        Ok(out)
    }

    async fn put_incidents(
        &self,
        items: &[(IncidentState, Precondition)],
    ) -> Result<Vec<ETag>, StateError> {
        // Same rule as a Table transaction: each incident at most once per call.
        distinct_incidents(items)?;
        let mut inner = self.lock();
        for (value, pre) in items {
            inner.check(&incident_key(&value.sentinel_name), pre)?;
        }
        items
            .iter()
            .map(|(value, _)| inner.write(incident_key(&value.sentinel_name), value))
            .collect()
    }

    async fn tenant_health(&self, tenant: &TenantId) -> Result<Option<TenantHealth>, StateError> {
        Ok(self.lock().health.get(tenant.as_str()).cloned())
    }

    async fn put_tenant_health(
        &self,
        tenant: &TenantId,
        value: &TenantHealth,
    ) -> Result<(), StateError> {
        self.lock()
            .health
            .insert(tenant.as_str().to_owned(), value.clone());
        Ok(())
    }

    async fn failed_incidents(&self, limit: usize) -> Result<Vec<IncidentState>, StateError> {
        let inner = self.lock();
        let mut out = Vec::new();
        for (key, (json, _)) in &inner.records {
            if !key.starts_with("incident/") {
                continue;
            }
            let state: IncidentState = serde_json::from_value(json.clone())
                .map_err(|e| StateError::Invalid(e.to_string()))?;
            if matches!(state.last_outcome, Some(Outcome::Failed | Outcome::Parked)) {
                out.push(state);
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.updated_at));
        out.truncate(limit);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str) -> IncidentState {
        IncidentState::new(
            TenantId::parse("t1").unwrap(),
            DefenderIncidentId::parse(id).unwrap(),
        )
    }

    #[tokio::test]
    async fn insert_then_conditional_replace_then_stale_replace_conflicts() {
        let store = MemoryStateStore::new();
        let s = state("1");
        let e1 = store.put_incident(&s, Precondition::Absent).await.unwrap();
        assert!(matches!(
            store.put_incident(&s, Precondition::Absent).await,
            Err(StateError::Conflict)
        ));
        let e2 = store
            .put_incident(&s, Precondition::Matches(e1.clone()))
            .await
            .unwrap();
        assert_ne!(e1, e2);
        assert!(matches!(
            store.put_incident(&s, Precondition::Matches(e1)).await,
            Err(StateError::Conflict)
        ));
        let got = store.incident(&s.sentinel_name).await.unwrap().unwrap();
        assert_eq!(got.etag, e2);
        assert_eq!(got.value, s);
    }

    #[tokio::test]
    async fn a_batch_with_one_conflict_writes_nothing() {
        let store = MemoryStateStore::new();
        let a = state("1");
        let b = state("2");
        store.put_incident(&a, Precondition::Absent).await.unwrap();
        let res = store
            .put_incidents(&[
                (b.clone(), Precondition::Absent),
                (a.clone(), Precondition::Absent),
            ])
            .await;
        assert!(matches!(res, Err(StateError::Conflict)));
        assert!(store.incident(&b.sentinel_name).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_batch_naming_one_incident_twice_is_invalid() {
        let store = MemoryStateStore::new();
        let a = state("1");
        let res = store
            .put_incidents(&[
                (a.clone(), Precondition::Any),
                (a.clone(), Precondition::Any),
            ])
            .await;
        assert!(matches!(res, Err(StateError::Invalid(_))));
        assert!(store.incident(&a.sentinel_name).await.unwrap().is_none());
    }
}
