//! State write throughput against a local Azurite: single writes (one at a time, and 16 in
//! flight) and entity-group transactions, one per partition of the store (at most 100 states
//! each). Prints writes per second.
//!
//! Then reads: one state at a time (16 in flight) and 200 at once (as the engine reads a
//! delivery batch).
//!
//! `npm ci --prefix tools/azurite && cargo run --release --example state_bench [-- <incidents>]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/azurite.rs"]
mod azurite;

use defender_sentinel_sync::adapters::table::TableClientOptions;
use defender_sentinel_sync::config::StorageConfig;
use defender_sentinel_sync::credentials::{CredentialError, TokenSource};
use defender_sentinel_sync::domain::{DefenderIncidentId, TenantId};
use defender_sentinel_sync::state::table::TableStateStore;
use defender_sentinel_sync::state::{IncidentState, Precondition, StateStore};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug)]
struct NoTokens;

#[async_trait::async_trait]
impl TokenSource for NoTokens {
    async fn token(
        &self,
        t: &TenantId,
        _: &str,
    ) -> Result<azure_core::credentials::Secret, CredentialError> {
        Err(CredentialError::Refused {
            tenant: t.to_string(),
            message: "SharedKey only".into(),
        })
    }
}

fn states(tenant: &str, n: usize) -> Vec<IncidentState> {
    let t = TenantId::parse(tenant).unwrap();
    (0..n)
        .map(|i| {
            let mut s = IncidentState::new(
                t.clone(),
                DefenderIncidentId::parse(&i.to_string()).unwrap(),
            );
            // A realistic size: a few mirrored comments and shipped alerts.
            for k in 0..5 {
                s.mirrored_comments.insert(format!("{:064x}", i * 10 + k));
                s.shipped_alerts
                    .insert(format!("da{i}_{k}"), format!("{:064x}", k));
            }
            s
        })
        .collect()
}

/// Items split by the store's transaction group (partition), as the engine writes them.
fn by_group(
    store: &TableStateStore,
    items: Vec<(IncidentState, Precondition)>,
) -> Vec<Vec<(IncidentState, Precondition)>> {
    let mut groups: std::collections::BTreeMap<String, Vec<_>> = std::collections::BTreeMap::new();
    for item in items {
        groups
            .entry(store.incident_group(&item.0.sentinel_name))
            .or_default()
            .push(item);
    }
    groups.into_values().collect()
}

fn report(what: &str, n: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what:<42} {n:>6} records in {secs:>6.2} s = {:>8.0} records/s",
        n as f64 / secs
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let az = azurite::Azurite::start();
    let cfg = StorageConfig::parse_connection_string(&az.connection_string()).unwrap();
    let tenant = TenantId::parse("bench").unwrap();
    let store = TableStateStore::connect(
        &cfg,
        "bench",
        Arc::new(NoTokens),
        tenant,
        TableClientOptions::default(),
    )
    .unwrap();
    store.ensure_ready().await.unwrap();

    let single = states("t-single", n);
    let started = Instant::now();
    for s in &single {
        store.put_incident(s, Precondition::Absent).await.unwrap();
    }
    report("single writes, sequential", n, started);

    let parallel = states("t-parallel", n);
    let started = Instant::now();
    futures::stream::iter(
        parallel
            .iter()
            .map(|s| store.put_incident(s, Precondition::Absent)),
    )
    .buffer_unordered(16)
    .for_each(|r| async move {
        r.unwrap();
    })
    .await;
    report("single writes, 16 in flight", n, started);

    let batched: Vec<_> = states("t-batch", n)
        .into_iter()
        .map(|s| (s, Precondition::Absent))
        .collect();
    let batched = by_group(&store, batched);
    let started = Instant::now();
    for group in &batched {
        store.put_incidents(group).await.unwrap();
    }
    report("transactions per partition, sequential", n, started);

    let more: Vec<_> = states("t-batch-parallel", n)
        .into_iter()
        .map(|s| (s, Precondition::Absent))
        .collect();
    let more = by_group(&store, more);
    let started = Instant::now();
    futures::stream::iter(
        more.iter()
            .flat_map(|g| g.chunks(100))
            .map(|c| store.put_incidents(c)),
    )
    .buffer_unordered(4)
    .for_each(|r| async move {
        r.unwrap();
    })
    .await;
    report("transactions per partition, 4 in flight", n, started);

    let updates: Vec<Vec<_>> = batched
        .into_iter()
        .map(|g| g.into_iter().map(|(s, _)| (s, Precondition::Any)).collect())
        .collect();
    let started = Instant::now();
    for group in &updates {
        store.put_incidents(group).await.unwrap();
    }
    report("transactions per partition, replacing", n, started);

    // Reads, with 5 × n states in the table: one at a time per incident (16 in flight), and a
    // batch of 200 at once, as the engine reads a delivery batch (`incidents`: queries of up to
    // 14 names per partition, which Azurite answers by scanning).
    let names: Vec<_> = updates
        .iter()
        .flatten()
        .map(|(s, _)| s.sentinel_name)
        .collect();
    let started = Instant::now();
    futures::stream::iter(names.iter().map(|name| store.incident(name)))
        .buffer_unordered(16)
        .for_each(|r| async move {
            assert!(r.unwrap().is_some());
        })
        .await;
    report("point reads, 16 in flight", n, started);
    let started = Instant::now();
    for page in names.chunks(200) {
        assert_eq!(store.incidents(page).await.unwrap().len(), page.len());
    }
    report("reads of 200 at once, sequential", n, started);
}
