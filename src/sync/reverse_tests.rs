//! Reverse sync of one incident against the in-memory fakes: forward sync creates the
//! Sentinel incident, an analyst acts in Sentinel, [`ReverseApply`] brings it to Defender.

use super::*;
use crate::config::ClientLimits;
use crate::sync::{ForwardOptions, ForwardSync, ReverseOptions, ReverseReport};
use dss_test_support::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

struct Harness {
    d: Arc<FakeDefender>,
    s: Arc<FakeSentinel>,
    store: Arc<FlakyStore>,
    sync: ForwardSync,
    policy: MergePolicy,
    tenants: Vec<TenantId>,
}

fn harness_with(conflict: ConflictPolicyName) -> Harness {
    let (d, s, logs, store) = (
        Arc::new(FakeDefender::default()),
        Arc::new(FakeSentinel::default()),
        Arc::new(FakeLogs::default()),
        Arc::new(FlakyStore::default()),
    );
    let policy = MergePolicy {
        conflict,
        severity_to_defender: false,
    };
    let options = ForwardOptions {
        lookback: Duration::from_secs(7 * 24 * 3600),
        overlap: Duration::from_secs(5 * 60),
        park_backoff: Duration::ZERO,
        park_backoff_max: Duration::ZERO,
        deadline_margin: Duration::ZERO,
    };
    let sync = ForwardSync::new(
        d.clone(),
        s.clone(),
        Some(logs),
        store.clone(),
        vec![tenant()],
        policy.clone(),
        options,
        ClientLimits::default(),
    );
    Harness {
        d,
        s,
        store,
        sync,
        policy,
        tenants: vec![tenant()],
    }
}

fn harness() -> Harness {
    harness_with(ConflictPolicyName::LatestWins)
}

fn ago(minutes: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::minutes(minutes)
}

fn name(id: u32) -> SentinelIncidentName {
    SentinelIncidentName::for_defender(&tenant(), &did(id))
}

fn did(id: u32) -> DefenderIncidentId {
    DefenderIncidentId::parse(&id.to_string()).unwrap()
}

impl Harness {
    /// One forward cycle; returns the Sentinel PUTs it made.
    async fn forward(&self) -> u64 {
        let before = self.s.probe.calls("put_incident");
        let r = self
            .sync
            .run_cycle(tokio::time::Instant::now() + Duration::from_secs(60))
            .await;
        assert!(r.tenants.iter().all(|t| t.completed), "{r:?}");
        self.s.probe.calls("put_incident") - before
    }

    /// Forward-synced incident `id`, created `ago(30)`.
    async fn synced(&self, id: u32) {
        self.d.upsert(incident(&tenant(), id, ago(30)));
        assert_eq!(self.forward().await, 1);
    }

    fn apply_with<'a>(&'a self, tenants: &'a [TenantId]) -> ReverseApply<'a> {
        ReverseApply {
            defender: self.d.as_ref(),
            sentinel: self.s.as_ref(),
            store: self.store.as_ref(),
            policy: &self.policy,
            tenants,
        }
    }

    async fn reverse(&self, id: u32) -> ReverseOutcome {
        let s = self.s.incident(&name(id)).expect("the Sentinel incident");
        self.apply_with(&self.tenants).apply(&s).await.unwrap()
    }

    async fn defender(&self, id: u32) -> DefenderIncident {
        self.d
            .get_incident(&tenant(), &did(id))
            .await
            .unwrap()
            .unwrap()
    }

    fn patches(&self) -> u64 {
        self.d.probe.calls("update_incident")
    }

    fn posts(&self) -> u64 {
        self.d.probe.calls("add_comment")
    }

    async fn state(&self, id: u32) -> IncidentState {
        self.store.incident(&name(id)).await.unwrap().unwrap().value
    }

    /// After a change: the next reverse pass and the next forward cycle write nothing.
    async fn assert_idle(&self, id: u32) {
        let (p, c) = (self.patches(), self.posts());
        assert_eq!(self.reverse(id).await, ReverseOutcome::Unchanged);
        assert_eq!(self.forward().await, 0, "no Sentinel write after our PATCH");
        assert_eq!(self.reverse(id).await, ReverseOutcome::Unchanged);
        assert_eq!((self.patches(), self.posts()), (p, c), "no Defender write");
    }
}

fn user_label(n: &str) -> Label {
    Label {
        name: n.into(),
        kind: LabelKind::User,
    }
}

#[tokio::test]
async fn a_close_with_classification_reaches_defender_and_the_next_cycles_are_idle() {
    let h = harness();
    h.synced(1).await;
    h.s.analyst_edit(&name(1), |i| {
        i.status = SentinelStatus::Closed;
        i.classification = Some(SentinelClassification::FalsePositive);
        i.classification_reason = Some(ClassificationReason::IncorrectAlertLogic);
        i.classification_comment = Some("noisy rule".into());
    });
    let out = h.reverse(1).await;
    assert!(
        matches!(out, ReverseOutcome::Applied(Applied { patched: true, .. })),
        "{out:?}"
    );
    let d = h.defender(1).await;
    assert_eq!(d.status, DefenderStatus::Resolved);
    assert_eq!(
        d.classification,
        Some(DefenderClassification::FalsePositive)
    );
    assert_eq!(d.determination, Some(Determination::NotMalicious));
    assert_eq!(d.resolving_comment.as_deref(), Some("noisy rule"));
    assert_eq!(h.patches(), 1);
    h.assert_idle(1).await;
    let s = h.s.incident(&name(1)).unwrap();
    assert_eq!(s.status, SentinelStatus::Closed, "forward did not undo it");
}

#[tokio::test]
async fn an_assignment_and_tags_reach_defender_without_reserved_labels() {
    let h = harness();
    h.synced(2).await;
    h.s.analyst_edit(&name(2), |i| {
        i.owner = Owner {
            user_principal_name: Some("analyst@contoso.com".into()),
            ..Owner::default()
        };
        i.labels.push(user_label("phish-wave"));
        i.labels.push(user_label("Redirected"));
        i.labels.push(Label {
            name: "auto".into(),
            kind: LabelKind::AutoAssigned,
        });
    });
    assert!(matches!(h.reverse(2).await, ReverseOutcome::Applied(_)));
    let d = h.defender(2).await;
    assert_eq!(d.assigned_to.as_deref(), Some("analyst@contoso.com"));
    assert_eq!(d.custom_tags, vec!["phish-wave".to_string()]);
    h.assert_idle(2).await;
}

#[tokio::test]
async fn a_reopen_in_sentinel_reopens_defender() {
    let h = harness();
    h.synced(3).await;
    h.s.analyst_edit(&name(3), |i| {
        i.status = SentinelStatus::Closed;
        i.classification = Some(SentinelClassification::TruePositive);
        i.classification_reason = Some(ClassificationReason::SuspiciousActivity);
    });
    h.reverse(3).await;
    assert_eq!(h.defender(3).await.status, DefenderStatus::Resolved);
    h.assert_idle(3).await;
    h.s.analyst_edit(&name(3), |i| i.status = SentinelStatus::Active);
    assert!(matches!(h.reverse(3).await, ReverseOutcome::Applied(_)));
    assert_eq!(h.defender(3).await.status, DefenderStatus::Active);
    h.assert_idle(3).await;
    assert_eq!(
        h.s.incident(&name(3)).unwrap().status,
        SentinelStatus::Active
    );
}

#[tokio::test]
async fn our_forward_write_seen_again_writes_nothing_to_defender() {
    let h = harness();
    h.synced(4).await;
    assert_eq!(h.reverse(4).await, ReverseOutcome::Unchanged);
    assert_eq!((h.patches(), h.posts()), (0, 0));
    // A Defender change synced forward is also just an echo for reverse sync.
    h.d.edit(&tenant(), "4", |i| {
        i.severity = DefenderSeverity::Low;
        i.assigned_to = Some("soc@contoso.com".into());
        i.last_update = ago(1);
    });
    assert_eq!(h.forward().await, 1);
    assert_eq!(h.reverse(4).await, ReverseOutcome::Unchanged);
    assert_eq!((h.patches(), h.posts()), (0, 0));
}

#[tokio::test]
async fn an_analyst_comment_lands_once_marked_and_is_never_mirrored_back() {
    let h = harness();
    h.synced(5).await;
    h.s.put_comment(&name(5), uuid::Uuid::new_v4(), "looked at the host")
        .await
        .unwrap();
    let out = h.reverse(5).await;
    assert!(
        matches!(
            out,
            ReverseOutcome::Applied(Applied {
                comments: 1,
                patched: false,
                ..
            })
        ),
        "{out:?}"
    );
    let d = h.defender(5).await;
    assert_eq!(d.comments.len(), 1);
    assert!(d.comments[0].text.starts_with(SENTINEL_MARKER));
    assert!(d.comments[0].text.contains("looked at the host"));
    h.assert_idle(5).await;
    assert_eq!(
        h.s.comments(&name(5)).len(),
        1,
        "not mirrored back to Sentinel"
    );
    assert_eq!(h.defender(5).await.comments.len(), 1);
}

#[tokio::test]
async fn a_crash_between_the_comment_post_and_the_state_write_does_not_post_twice() {
    let h = harness();
    h.synced(6).await;
    h.s.put_comment(&name(6), uuid::Uuid::new_v4(), "escalated")
        .await
        .unwrap();
    // The claim before the POST is written; the state write after it is not.
    h.store.pass_incident_puts.store(1, Ordering::SeqCst);
    h.store.fail_incident_puts.store(1, Ordering::SeqCst);
    let s = h.s.incident(&name(6)).unwrap();
    let err = h.apply_with(&h.tenants).apply(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert_eq!(
        h.defender(6).await.comments.len(),
        1,
        "posted before the crash"
    );
    let out = h.reverse(6).await;
    assert!(
        matches!(out, ReverseOutcome::Applied(Applied { comments: 0, .. })),
        "{out:?}"
    );
    assert_eq!(h.defender(6).await.comments.len(), 1, "not posted again");
    assert_eq!(h.state(6).await.mirrored_comments.len(), 1);
    h.assert_idle(6).await;
}

/// Defender whose first two incident reads wait for each other: two instances have both read
/// Defender (without the comment) before either posts.
struct BothReadFirst {
    inner: Arc<FakeDefender>,
    barrier: tokio::sync::Barrier,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl DefenderApi for BothReadFirst {
    async fn count_incidents(
        &self,
        tenant: &TenantId,
        window: &IncidentWindow,
    ) -> Result<Option<u64>, DefenderError> {
        self.inner.count_incidents(tenant, window).await
    }
    async fn list_incidents(
        &self,
        tenant: &TenantId,
        window: &IncidentWindow,
        expand_alerts: bool,
    ) -> Result<IncidentPage, DefenderError> {
        self.inner
            .list_incidents(tenant, window, expand_alerts)
            .await
    }
    async fn next_page(
        &self,
        tenant: &TenantId,
        next_link: &str,
    ) -> Result<IncidentPage, DefenderError> {
        self.inner.next_page(tenant, next_link).await
    }
    async fn get_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<Option<DefenderIncident>, DefenderError> {
        let read = self.inner.get_incident(tenant, id).await;
        if self.reads.fetch_add(1, Ordering::SeqCst) < 2 {
            self.barrier.wait().await;
        }
        read
    }
    async fn alerts_for_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<Vec<Alert>, DefenderError> {
        self.inner.alerts_for_incident(tenant, id).await
    }
    async fn update_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        patch: &DefenderPatch,
    ) -> Result<DefenderIncident, DefenderError> {
        self.inner.update_incident(tenant, id, patch).await
    }
    async fn add_comment(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        text: &str,
    ) -> Result<Vec<DefenderComment>, DefenderError> {
        self.inner.add_comment(tenant, id, text).await
    }
    async fn resolve_user(&self, upn: &str) -> Result<Option<UserRef>, DefenderError> {
        self.inner.resolve_user(upn).await
    }
}

/// Issue 12: two instances (the webhook on one, the timer on another) apply the same comment
/// at once, both having read Defender before either posts, with no in-process lock between
/// them: the state's ETag alone lets one of them post it.
#[tokio::test]
async fn two_instances_applying_one_comment_at_once_post_it_once() {
    let h = harness();
    h.synced(7).await;
    h.s.put_comment(&name(7), uuid::Uuid::new_v4(), "contained")
        .await
        .unwrap();
    let s = h.s.incident(&name(7)).unwrap();
    let defender = BothReadFirst {
        inner: h.d.clone(),
        barrier: tokio::sync::Barrier::new(2),
        reads: Default::default(),
    };
    let apply = || ReverseApply {
        defender: &defender,
        ..h.apply_with(&h.tenants)
    };
    let (a, b) = (apply(), apply());
    let (ra, rb) = tokio::join!(a.apply(&s), b.apply(&s));
    assert!(
        defender.reads.load(Ordering::SeqCst) >= 2,
        "both read Defender"
    );
    for r in [&ra, &rb] {
        if let Err(e) = r {
            assert_eq!(e.class(), ErrorClass::Transient, "{e}");
        }
    }
    assert_eq!(h.posts(), 1, "posted once: {ra:?} {rb:?}");
    assert_eq!(h.defender(7).await.comments.len(), 1);
    // The one held (if any) finds it posted on its retry.
    let again = h.reverse(7).await;
    assert!(
        matches!(
            again,
            ReverseOutcome::Unchanged | ReverseOutcome::Applied(Applied { comments: 0, .. })
        ),
        "{again:?}"
    );
    assert_eq!(h.posts(), 1);
    h.assert_idle(7).await;
}

/// Incident `id`, synced, with a new Sentinel comment `text` recorded in the state as claimed
/// for posting by `key(fingerprint)`; returns the fingerprint.
async fn a_claimed_comment(
    h: &Harness,
    id: u32,
    text: &str,
    key: impl Fn(&str) -> String,
) -> String {
    h.synced(id).await;
    let c =
        h.s.put_comment(&name(id), uuid::Uuid::new_v4(), text)
            .await
            .unwrap();
    let fp = sentinel_comment_fingerprint(&c);
    let v = h.store.incident(&name(id)).await.unwrap().unwrap();
    let mut st = v.value.clone();
    st.mirrored_comments.insert(fp.clone());
    st.mirrored_comments.insert(key(&fp));
    h.store
        .put_incident(&st, Precondition::Matches(v.etag))
        .await
        .unwrap();
    fp
}

/// A fresh claim by another instance whose comment is not in Defender yet holds the incident
/// (nothing posted); a claim older than the lease died with its instance and is taken over.
#[tokio::test]
async fn a_fresh_claim_holds_and_a_stale_claim_is_taken_over() {
    let h = harness();
    let elsewhere = ClaimHolder::new("another-instance", "its-process");
    let fp = a_claimed_comment(&h, 8, "isolated", |fp| {
        claim_key_by(fp, OffsetDateTime::now_utc(), &elsewhere)
    })
    .await;
    let s = h.s.incident(&name(8)).unwrap();
    let err = h.apply_with(&h.tenants).apply(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert_eq!(h.posts(), 0, "another instance is posting it");
    let v = h.store.incident(&name(8)).await.unwrap().unwrap();
    let mut st = v.value.clone();
    release_claim(&mut st, &fp);
    st.mirrored_comments.insert(claim_key_by(
        &fp,
        OffsetDateTime::now_utc() - CLAIM_LEASE - time::Duration::seconds(1),
        &elsewhere,
    ));
    h.store
        .put_incident(&st, Precondition::Matches(v.etag))
        .await
        .unwrap();
    let out = h.reverse(8).await;
    assert!(
        matches!(out, ReverseOutcome::Applied(Applied { comments: 1, .. })),
        "{out:?}"
    );
    assert_eq!(h.defender(8).await.comments.len(), 1);
    assert_eq!(
        h.state(8).await.mirrored_comments,
        std::iter::once(fp).collect(),
        "the claim is released"
    );
    h.assert_idle(8).await;
}

#[tokio::test]
async fn a_native_sentinel_incident_is_left_alone() {
    let h = harness();
    h.synced(7).await;
    let mut native = h.s.incident(&name(7)).unwrap();
    native.name = SentinelIncidentName::parse("3f1c6a9e-1111-4a5b-9c7d-000000000001").unwrap();
    assert_ne!(native.name, name(7), "a name no state has");
    native.status = SentinelStatus::Closed;
    let out = h.apply_with(&h.tenants).apply(&native).await.unwrap();
    assert_eq!(out, ReverseOutcome::Unmanaged(Unmanaged::NoState));
    assert_eq!((h.patches(), h.posts()), (0, 0));
    assert_eq!(h.d.probe.calls("get_incident"), 0);
}

#[tokio::test]
async fn an_incident_of_a_tenant_not_synced_here_is_never_written() {
    let h = harness();
    h.synced(8).await;
    h.s.analyst_edit(&name(8), |i| i.status = SentinelStatus::Closed);
    let s = h.s.incident(&name(8)).unwrap();
    let other = [TenantId::parse("22222222-2222-2222-2222-222222222222").unwrap()];
    let out = h.apply_with(&other).apply(&s).await.unwrap();
    assert_eq!(out, ReverseOutcome::Unmanaged(Unmanaged::ForeignTenant));
    assert_eq!((h.patches(), h.posts()), (0, 0));
    assert_eq!(h.defender(8).await.status, DefenderStatus::Active);
}

/// Both sides change the owner; returns Defender's owner, its comments, and the outcome.
async fn conflicting_owner(
    policy: ConflictPolicyName,
) -> (Harness, DefenderIncident, ReverseOutcome) {
    let h = harness_with(policy);
    for (n, upn) in [
        (1, "defender-analyst@contoso.com"),
        (2, "sentinel-analyst@contoso.com"),
    ] {
        h.d.add_user(UserRef {
            object_id: uuid::Uuid::from_u128(n),
            user_principal_name: upn.into(),
            mail: None,
            display_name: None,
        });
    }
    h.synced(9).await;
    h.d.edit(&tenant(), "9", |i| {
        i.assigned_to = Some("defender-analyst@contoso.com".into());
        i.last_update = ago(2);
    });
    h.s.analyst_edit(&name(9), |i| {
        i.owner = Owner {
            user_principal_name: Some("sentinel-analyst@contoso.com".into()),
            ..Owner::default()
        };
    });
    let out = h.reverse(9).await;
    let d = h.defender(9).await;
    (h, d, out)
}

#[tokio::test]
async fn sentinel_wins_overrides_defender_and_says_so_in_defender() {
    let (h, d, out) = conflicting_owner(ConflictPolicyName::SentinelWins).await;
    assert!(
        matches!(
            out,
            ReverseOutcome::Applied(Applied {
                patched: true,
                conflicts: 1,
                comments: 1
            })
        ),
        "{out:?}"
    );
    assert_eq!(
        d.assigned_to.as_deref(),
        Some("sentinel-analyst@contoso.com")
    );
    assert_eq!(d.comments.len(), 1);
    assert!(d.comments[0].text.starts_with(SENTINEL_MARKER));
    assert!(d.comments[0].text.contains("defender-analyst@contoso.com"));
    h.assert_idle(9).await;
}

#[tokio::test]
async fn latest_wins_takes_the_later_sentinel_change() {
    let (h, d, out) = conflicting_owner(ConflictPolicyName::LatestWins).await;
    assert!(matches!(out, ReverseOutcome::Applied(_)), "{out:?}");
    assert_eq!(
        d.assigned_to.as_deref(),
        Some("sentinel-analyst@contoso.com")
    );
    h.assert_idle(9).await;
}

#[tokio::test]
async fn defender_wins_writes_nothing_to_defender_and_leaves_the_field_to_forward_sync() {
    let (h, d, out) = conflicting_owner(ConflictPolicyName::DefenderWins).await;
    assert_eq!(h.patches(), 0, "{out:?}");
    assert_eq!(
        d.assigned_to.as_deref(),
        Some("defender-analyst@contoso.com")
    );
    let st = h.state(9).await;
    assert_eq!(
        st.defender_base.and_then(|b| b.assigned_to),
        None,
        "the owner's base is kept so forward sync still sees Defender's change"
    );
    // Forward sync then writes Defender's owner to Sentinel (its PUT may first meet the
    // analyst's newer etag and start over).
    assert!(h.forward().await >= 1);
    let s = h.s.incident(&name(9)).unwrap();
    assert_eq!(
        s.owner.user_principal_name.as_deref(),
        Some("defender-analyst@contoso.com")
    );
    h.assert_idle(9).await;
}

#[tokio::test]
async fn an_unmappable_incident_is_parked_with_its_reason_and_cleared_once_fixed() {
    let h = harness();
    h.synced(10).await;
    h.s.analyst_edit(&name(10), |i| {
        i.status = SentinelStatus::Unrecognized("Triaged".into());
    });
    let out = h.reverse(10).await;
    assert!(
        matches!(out, ReverseOutcome::Parked(ref r) if r.contains("Triaged")),
        "{out:?}"
    );
    assert_eq!(h.patches(), 0);
    let st = h.state(10).await;
    assert_eq!(st.last_outcome, Some(Outcome::Parked));
    assert!(st.last_error.unwrap_or_default().contains("Triaged"));
    h.s.analyst_edit(&name(10), |i| {
        i.status = SentinelStatus::Closed;
        i.classification = Some(SentinelClassification::BenignPositive);
        i.classification_reason = Some(ClassificationReason::SuspiciousButExpected);
    });
    assert!(matches!(h.reverse(10).await, ReverseOutcome::Applied(_)));
    assert_eq!(h.defender(10).await.status, DefenderStatus::Resolved);
    let st = h.state(10).await;
    assert_eq!(
        (st.last_outcome, st.last_error),
        (Some(Outcome::Synced), None)
    );
    h.assert_idle(10).await;
}

#[tokio::test]
async fn a_graph_400_parks_the_incident() {
    let h = harness();
    h.synced(11).await;
    h.s.analyst_edit(&name(11), |i| i.labels.push(user_label("x")));
    h.d.probe.fail("update_incident", Fault::Rejected, 1);
    let out = h.reverse(11).await;
    assert!(matches!(out, ReverseOutcome::Parked(_)), "{out:?}");
    assert_eq!(h.state(11).await.last_outcome, Some(Outcome::Parked));
    assert!(h.defender(11).await.custom_tags.is_empty());
    assert!(matches!(h.reverse(11).await, ReverseOutcome::Applied(_)));
    assert_eq!(h.defender(11).await.custom_tags, vec!["x".to_string()]);
}

/// A forward cycle over an incident reverse sync parked (a Defender change meanwhile) keeps it
/// parked with its reason (SyncHealth lists it while its retry entry remains), and reverse sync
/// clears it once Graph takes the change.
#[tokio::test]
async fn forward_sync_keeps_a_reverse_park_until_reverse_sync_clears_it() {
    let h = harness();
    h.synced(12).await;
    h.s.analyst_edit(&name(12), |i| i.labels.push(user_label("y")));
    h.d.probe.fail("update_incident", Fault::Rejected, 1);
    assert!(matches!(h.reverse(12).await, ReverseOutcome::Parked(_)));
    let mut d = h.defender(12).await;
    d.display_name = "Renamed in Defender".into();
    d.last_update = OffsetDateTime::now_utc();
    h.d.upsert(d);
    h.forward().await;
    let st = h.state(12).await;
    assert_eq!(st.last_outcome, Some(Outcome::Parked), "{st:?}");
    assert!(
        st.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("reverse sync:")),
        "{st:?}"
    );
    assert_eq!(h.forward().await, 0, "a reverse park is not forward work");
    assert!(matches!(h.reverse(12).await, ReverseOutcome::Applied(_)));
    let st = h.state(12).await;
    assert_eq!(
        (st.last_outcome, st.last_error),
        (Some(Outcome::Synced), None)
    );
    assert_eq!(h.defender(12).await.custom_tags, vec!["y".to_string()]);
}

// ---- the poll in the cycle -------------------------------------------------------------------

fn tenant2() -> TenantId {
    TenantId::parse("22222222-2222-2222-2222-222222222222").unwrap()
}

/// Forward sync of `tenants` with the Sentinel poll in every cycle.
fn polling(tenants: Vec<TenantId>) -> Harness {
    let mut h = harness();
    let options = ForwardOptions {
        lookback: Duration::from_secs(7 * 24 * 3600),
        overlap: Duration::from_secs(5 * 60),
        park_backoff: Duration::ZERO,
        park_backoff_max: Duration::ZERO,
        deadline_margin: Duration::ZERO,
    };
    h.sync = ForwardSync::new(
        h.d.clone(),
        h.s.clone(),
        Some(Arc::new(FakeLogs::default())),
        h.store.clone(),
        tenants.clone(),
        h.policy.clone(),
        options,
        ClientLimits::default(),
    )
    .with_reverse_poll(ReverseOptions {
        lookback: Duration::from_secs(7 * 24 * 3600),
        overlap: Duration::from_secs(5 * 60),
        park_backoff: Duration::ZERO,
        park_backoff_max: Duration::ZERO,
    });
    h.tenants = tenants;
    h
}

impl Harness {
    async fn cycle(&self) -> crate::sync::CycleReport {
        self.sync
            .run_cycle(tokio::time::Instant::now() + Duration::from_secs(60))
            .await
    }
}

fn rev(r: &crate::sync::CycleReport) -> ReverseReport {
    r.reverse.clone().expect("the poll ran")
}

#[tokio::test]
async fn a_cycle_brings_a_sentinel_close_and_comment_to_defender_and_the_next_is_idle() {
    let h = polling(vec![tenant()]);
    h.d.upsert(incident(&tenant(), 1, ago(30)));
    let r = h.cycle().await;
    let p = rev(&r);
    assert!(r.completed(), "{r:?}");
    assert_eq!((p.seen, p.unchanged, p.defender_writes), (1, 1, 0), "{p:?}");
    h.s.analyst_edit(&name(1), |i| {
        i.status = SentinelStatus::Closed;
        i.classification = Some(SentinelClassification::TruePositive);
        i.classification_reason = Some(ClassificationReason::SuspiciousActivity);
    });
    h.s.put_comment(&name(1), uuid::Uuid::new_v4(), "contained")
        .await
        .unwrap();
    let p = rev(&h.cycle().await);
    assert_eq!(
        (p.defender_writes, p.comments, p.failed),
        (1, 1, 0),
        "{p:?}"
    );
    let d = h.defender(1).await;
    assert_eq!(d.status, DefenderStatus::Resolved);
    assert_eq!(d.comments.len(), 1);
    // The next cycle writes nothing on either side.
    let (patches, posts, puts) = (h.patches(), h.posts(), h.s.probe.calls("put_incident"));
    let r = h.cycle().await;
    assert_eq!(r.total(|t| t.written), 0, "{r:?}");
    let p = rev(&r);
    assert_eq!((p.defender_writes, p.comments), (0, 0), "{p:?}");
    assert_eq!(
        (h.patches(), h.posts(), h.s.probe.calls("put_incident")),
        (patches, posts, puts)
    );
    assert_eq!(
        h.s.incident(&name(1)).unwrap().status,
        SentinelStatus::Closed
    );
}

#[tokio::test]
async fn the_poll_counts_a_native_incident_and_leaves_it_alone() {
    let h = polling(vec![tenant()]);
    h.d.upsert(incident(&tenant(), 1, ago(30)));
    h.cycle().await;
    let mut native = h.s.incident(&name(1)).unwrap();
    native.name = SentinelIncidentName::parse("3f1c6a9e-1111-4a5b-9c7d-000000000001").unwrap();
    native.status = SentinelStatus::Closed;
    native.classification = Some(SentinelClassification::FalsePositive);
    h.s.create_by_service(native.clone());
    let p = rev(&h.cycle().await);
    assert_eq!(p.unmanaged, 1, "{p:?}");
    assert_eq!((h.patches(), h.posts()), (0, 0));
    assert_eq!(
        h.s.incident(&native.name).unwrap().status,
        SentinelStatus::Closed
    );
    assert_eq!(h.defender(1).await.status, DefenderStatus::Active);
}

#[tokio::test]
async fn two_defender_tenants_never_cross() {
    let h = polling(vec![tenant(), tenant2()]);
    h.d.upsert(incident(&tenant(), 1, ago(30)));
    h.d.upsert(incident(&tenant2(), 1, ago(30)));
    h.cycle().await;
    let other = SentinelIncidentName::for_defender(&tenant2(), &did(1));
    assert_ne!(other, name(1));
    h.s.analyst_edit(&other, |i| {
        i.owner = Owner {
            user_principal_name: Some("mssp-analyst@fabrikam.com".into()),
            ..Owner::default()
        };
    });
    let p = rev(&h.cycle().await);
    assert_eq!(p.defender_writes, 1, "{p:?}");
    let t2 =
        h.d.get_incident(&tenant2(), &did(1))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(t2.assigned_to.as_deref(), Some("mssp-analyst@fabrikam.com"));
    assert_eq!(
        h.defender(1).await.assigned_to,
        None,
        "the other tenant is untouched"
    );
}

#[tokio::test]
async fn a_parked_incident_does_not_pin_the_checkpoint_and_is_applied_once_fixed() {
    let h = polling(vec![tenant()]);
    h.d.upsert(incident(&tenant(), 1, ago(30)));
    h.d.upsert(incident(&tenant(), 2, ago(30)));
    h.cycle().await;
    h.s.analyst_edit(&name(1), |i| {
        i.status = SentinelStatus::Unrecognized("Triaged".into())
    });
    h.s.analyst_edit(&name(2), |i| i.labels.push(user_label("later")));
    let p = rev(&h.cycle().await);
    assert_eq!((p.parked, p.defender_writes, p.failed), (1, 1, 0), "{p:?}");
    assert!(p.completed, "{p:?}");
    let latest = h.s.incident(&name(2)).unwrap().last_modified.unwrap();
    let cp = h.store.sentinel_checkpoint().await.unwrap().unwrap().value;
    assert_eq!(cp.watermark, latest, "moved past the parked incident");
    h.s.analyst_edit(&name(1), |i| i.status = SentinelStatus::Active);
    let p = rev(&h.cycle().await);
    assert_eq!(p.parked, 0, "{p:?}");
    assert_eq!(h.state(1).await.last_outcome, Some(Outcome::Synced));
}

#[tokio::test]
async fn a_transient_failure_holds_the_checkpoint_at_the_failed_incident() {
    let h = polling(vec![tenant()]);
    h.d.upsert(incident(&tenant(), 1, ago(30)));
    h.cycle().await;
    let before = h.store.sentinel_checkpoint().await.unwrap().unwrap().value;
    h.s.analyst_edit(&name(1), |i| i.labels.push(user_label("t")));
    h.d.probe.fail(
        "update_incident",
        Fault::Transient,
        dss_test_support::ATTEMPTS as usize,
    );
    let p = rev(&h.cycle().await);
    assert_eq!(p.failed, 1, "{p:?}");
    assert!(!p.completed);
    let held = h.store.sentinel_checkpoint().await.unwrap().unwrap().value;
    let changed = h.s.incident(&name(1)).unwrap().last_modified.unwrap();
    assert!(held.watermark <= changed && held.watermark >= before.watermark);
    let p = rev(&h.cycle().await);
    assert_eq!((p.failed, p.defender_writes), (0, 1), "{p:?}");
    assert_eq!(h.defender(1).await.custom_tags, vec!["t".to_string()]);
}

#[tokio::test]
async fn a_comment_put_moves_the_sentinel_etag_and_modification_time_as_the_simulator_does() {
    let h = harness();
    h.synced(12).await;
    let before = h.s.incident(&name(12)).unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    h.s.put_comment(&name(12), uuid::Uuid::new_v4(), "note")
        .await
        .unwrap();
    let after = h.s.incident(&name(12)).unwrap();
    assert_ne!(after.etag, before.etag);
    assert!(after.last_modified > before.last_modified);
    assert_eq!(after.fields(), before.fields());
}

#[tokio::test]
async fn our_own_writes_with_comments_cost_the_poll_nothing_beyond_the_list_page() {
    let h = polling(vec![tenant()]);
    let mut i = incident(&tenant(), 1, ago(30));
    i.comments = vec![DefenderComment {
        text: "from defender".into(),
        author: Some("alice".into()),
        created: Some(ago(31)),
    }];
    h.d.upsert(i);
    h.d.upsert(incident(&tenant(), 2, ago(30)));
    let lists = h.s.probe.calls("list_comments");
    let r = h.cycle().await;
    assert_eq!(
        h.s.probe.calls("list_comments"),
        lists,
        "a just-created incident holds no comment: mirroring needs no list"
    );
    assert_eq!(h.s.comments(&name(1)).len(), 1, "mirrored forward");
    let p = rev(&r);
    assert_eq!((p.seen, p.unchanged, p.pages), (2, 2, 1), "{p:?}");
    assert_eq!(
        (
            h.d.probe.calls("get_incident"),
            h.s.probe.calls("list_comments"),
            h.s.probe.calls("get_incident"),
        ),
        (0, lists, 0),
        "our own writes (the comment PUT moved the etag) cost no read"
    );
    // A later Defender comment, mirrored forward, is an echo too.
    h.d.edit(&tenant(), "1", |i| {
        i.comments.push(DefenderComment {
            text: "second".into(),
            author: Some("bob".into()),
            created: Some(ago(1)),
        });
        i.last_update = ago(1);
    });
    let gets = h.d.probe.calls("get_incident");
    let lists = h.s.probe.calls("list_comments");
    let p = rev(&h.cycle().await);
    assert_eq!(h.s.comments(&name(1)).len(), 2);
    assert_eq!(
        (p.unchanged, p.defender_writes, p.comments),
        (2, 0, 0),
        "{p:?}"
    );
    assert_eq!(h.d.probe.calls("get_incident"), gets, "no Graph GET");
    assert_eq!(
        h.s.probe.calls("list_comments"),
        lists + 1,
        "only forward's own list"
    );
    assert_eq!((h.patches(), h.posts()), (0, 0));
}

#[tokio::test]
async fn an_analyst_comment_alone_is_seen_by_its_count_and_reaches_defender() {
    let h = polling(vec![tenant()]);
    h.d.upsert(incident(&tenant(), 1, ago(30)));
    h.cycle().await;
    h.s.put_comment(&name(1), uuid::Uuid::new_v4(), "analyst note")
        .await
        .unwrap();
    let p = rev(&h.cycle().await);
    assert_eq!((p.comments, p.unchanged), (1, 0), "{p:?}");
    assert_eq!(h.defender(1).await.comments.len(), 1);
    let gets = h.d.probe.calls("get_incident");
    let p = rev(&h.cycle().await);
    assert_eq!((p.unchanged, p.comments), (1, 0), "{p:?}");
    assert_eq!(h.d.probe.calls("get_incident"), gets, "idle: no Graph GET");
}

#[tokio::test]
async fn triage_tells_unmanaged_and_unchanged_from_the_state_alone() {
    let h = harness();
    h.synced(1).await;
    let s = h.s.incident(&name(1)).unwrap();
    let synced = h.state(1).await;
    assert_eq!(
        triage(Some(&synced), &s, &[tenant()]),
        Some(ReverseOutcome::Unchanged),
        "just synced"
    );
    assert_eq!(
        triage(None, &s, &[tenant()]),
        Some(ReverseOutcome::Unmanaged(Unmanaged::NoState))
    );
    assert_eq!(
        triage(Some(&synced), &s, &[tenant2()]),
        Some(ReverseOutcome::Unmanaged(Unmanaged::ForeignTenant))
    );
    let mut st = synced.clone();
    st.sentinel_base = None;
    assert_eq!(
        triage(Some(&st), &s, &[tenant()]),
        Some(ReverseOutcome::Unmanaged(Unmanaged::NotYetSynced))
    );
    let mut st = synced.clone();
    st.record_sentinel(Some("\"other\"".into()), None);
    assert_eq!(triage(Some(&st), &s, &[tenant()]), None, "no snapshot");
    let mut st = synced.clone();
    st.sentinel_comments = None;
    assert_eq!(triage(Some(&st), &s, &[tenant()]), None, "count unknown");
    let mut moved = s.clone();
    moved.etag = Some("\"e2\"".into());
    assert_eq!(
        triage(Some(&synced), &moved, &[tenant()]),
        Some(ReverseOutcome::Unchanged),
        "another etag alone is no change"
    );
    moved.comments_count = moved.comments_count.map(|n| n + 1);
    assert_eq!(
        triage(Some(&synced), &moved, &[tenant()]),
        None,
        "a new comment"
    );
    let mut edited = s.clone();
    edited.severity = SentinelSeverity::Low;
    assert_eq!(triage(Some(&synced), &edited, &[tenant()]), None, "an edit");
    let mut st = synced.clone();
    st.last_outcome = Some(Outcome::Parked);
    assert_eq!(triage(Some(&st), &s, &[tenant()]), None, "parked");
}

#[tokio::test]
async fn a_sentinel_change_forward_sync_merged_but_left_pending_reaches_defender_in_the_same_cycle()
{
    let h = polling(vec![tenant()]);
    h.d.upsert(incident(&tenant(), 1, ago(30)));
    h.cycle().await;
    h.s.analyst_edit(&name(1), |i| {
        i.owner = Owner {
            user_principal_name: Some("analyst@contoso.com".into()),
            ..Owner::default()
        };
    });
    h.d.edit(&tenant(), "1", |i| {
        i.severity = DefenderSeverity::Low;
        i.last_update = ago(1);
    });
    let r = h.cycle().await;
    assert_eq!(
        r.total(|t| t.written),
        1,
        "forward wrote the severity: {r:?}"
    );
    let p = rev(&r);
    assert_eq!(p.defender_writes, 1, "{p:?}");
    assert_eq!(
        h.defender(1).await.assigned_to.as_deref(),
        Some("analyst@contoso.com")
    );
    let (patches, puts) = (h.patches(), h.s.probe.calls("put_incident"));
    let r = h.cycle().await;
    assert_eq!((rev(&r).defender_writes, r.total(|t| t.written)), (0, 0));
    assert_eq!(
        (h.patches(), h.s.probe.calls("put_incident")),
        (patches, puts)
    );
}

#[tokio::test]
async fn an_unknown_classification_reason_is_parked_not_guessed() {
    let h = harness();
    h.synced(13).await;
    h.s.analyst_edit(&name(13), |i| {
        i.status = SentinelStatus::Closed;
        i.classification = Some(SentinelClassification::FalsePositive);
        i.classification_reason = Some(ClassificationReason::Unrecognized("SomethingNewer".into()));
    });
    let out = h.reverse(13).await;
    assert!(
        matches!(out, ReverseOutcome::Parked(ref r) if r.contains("SomethingNewer")),
        "{out:?}"
    );
    assert_eq!(h.patches(), 0, "nothing guessed into Defender");
    let d = h.defender(13).await;
    assert_eq!(d.status, DefenderStatus::Active);
    assert_eq!(d.determination, None);
    assert_eq!(h.state(13).await.last_outcome, Some(Outcome::Parked));
}

#[tokio::test]
async fn an_owner_defender_cannot_take_is_parked_with_its_reason() {
    let h = harness();
    h.d.add_user(UserRef {
        object_id: uuid::Uuid::from_u128(5),
        user_principal_name: "soc@contoso.com".into(),
        mail: None,
        display_name: None,
    });
    h.d.upsert(DefenderIncident {
        assigned_to: Some("soc@contoso.com".into()),
        ..incident(&tenant(), 14, ago(30))
    });
    assert_eq!(h.forward().await, 1);
    h.s.analyst_edit(&name(14), |i| {
        i.owner = Owner {
            object_id: Some(uuid::Uuid::from_u128(77)),
            assigned_to: Some("SOC Tier 1".into()),
            owner_type: Some(OwnerType::Group),
            ..Owner::default()
        };
    });
    let out = h.reverse(14).await;
    assert!(
        matches!(out, ReverseOutcome::Parked(ref r) if r.contains("SOC Tier 1")),
        "{out:?}"
    );
    assert_eq!(h.patches(), 0);
    assert_eq!(
        h.defender(14).await.assigned_to.as_deref(),
        Some("soc@contoso.com"),
        "not unassigned"
    );
    let st = h.state(14).await;
    assert_eq!(st.last_outcome, Some(Outcome::Parked));
    assert!(st.last_error.unwrap_or_default().contains("SOC Tier 1"));
}

#[tokio::test]
async fn an_incident_the_service_created_is_routed_by_its_defender_link_never_to_another_tenant() {
    let h = harness();
    h.synced(15).await;
    let ours = h.s.incident(&name(15)).unwrap();
    let mut service = ours.clone();
    service.name = SentinelIncidentName::parse("3f1c6a9e-1111-4a5b-9c7d-000000000015").unwrap();
    service.status = SentinelStatus::Closed;
    service.classification = Some(SentinelClassification::FalsePositive);
    service.classification_reason = Some(ClassificationReason::IncorrectAlertLogic);
    let service = h.s.create_by_service(service);
    assert_eq!(
        routed_by_link(&service, &h.tenants),
        Some((tenant(), did(15)))
    );
    // Where the sync creates the incidents, one without a state is never ours.
    let out = h.apply_with(&h.tenants).apply(&service).await.unwrap();
    assert_eq!(out, ReverseOutcome::Unmanaged(Unmanaged::NoState));
    h.s.set_service_created(true);
    // A tenant not synced here: never routed.
    assert_eq!(routed_by_link(&service, &[tenant2()]), None);
    let out = h.apply_with(&[tenant2()]).apply(&service).await.unwrap();
    assert_eq!(out, ReverseOutcome::Unmanaged(Unmanaged::NoState));
    assert_eq!(h.patches(), 0);
    let out = h.apply_with(&h.tenants).apply(&service).await.unwrap();
    assert!(
        matches!(out, ReverseOutcome::Applied(Applied { patched: true, .. })),
        "{out:?}"
    );
    assert_eq!(h.defender(15).await.status, DefenderStatus::Resolved);
    // Our own incident (the link's derived name) is never routed to itself.
    assert_eq!(routed_by_link(&ours, &h.tenants), None);
}

#[tokio::test]
async fn sync_health_gets_each_tenants_share_of_the_poll() {
    let h = polling(vec![tenant(), tenant2()]);
    h.d.upsert(incident(&tenant(), 1, ago(30)));
    h.d.upsert(incident(&tenant2(), 1, ago(30)));
    h.cycle().await;
    let other = SentinelIncidentName::for_defender(&tenant2(), &did(1));
    h.s.analyst_edit(&other, |i| i.labels.push(user_label("t2")));
    h.s.put_comment(&other, uuid::Uuid::new_v4(), "t2 note")
        .await
        .unwrap();
    let p = rev(&h.cycle().await);
    assert_eq!(p.per_tenant[&tenant2()].defender_writes, 1, "{p:?}");
    assert_eq!(p.per_tenant[&tenant2()].comments, 1, "{p:?}");
    let health = |t: TenantId| {
        let store = h.store.clone();
        async move { store.tenant_health(&t).await.unwrap().unwrap().reverse }
    };
    let two = health(tenant2()).await.expect("tenant two's poll figures");
    assert_eq!((two.defender_writes, two.comments, two.parked), (1, 1, 0));
    let one = health(tenant()).await.expect("tenant one's poll figures");
    assert_eq!((one.defender_writes, one.comments), (0, 0));
}

#[tokio::test]
async fn a_parked_incident_waits_in_the_retry_set_and_the_poll_retries_it_without_a_new_change() {
    let mut h = polling(vec![tenant()]);
    h.sync = h.sync.with_reverse_poll(ReverseOptions {
        lookback: Duration::from_secs(7 * 24 * 3600),
        overlap: Duration::ZERO,
        park_backoff: Duration::ZERO,
        park_backoff_max: Duration::ZERO,
    });
    h.d.upsert(incident(&tenant(), 1, ago(30)));
    h.d.upsert(incident(&tenant(), 2, ago(30)));
    h.cycle().await;
    h.s.analyst_edit(&name(1), |i| i.labels.push(user_label("refused")));
    h.d.probe.fail("update_incident", Fault::Rejected, 2);
    let p = rev(&h.cycle().await);
    assert_eq!(p.parked, 1, "{p:?}");
    let entries = h.store.retry_set(&tenant()).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].reverse && entries[0].incident_id == did(1));
    // A later change elsewhere moves the checkpoint past incident 1 (listed once more at the
    // checkpoint's instant, refused again; incident 2 needs no PATCH, so the refusal is 1's).
    tokio::time::sleep(Duration::from_millis(5)).await;
    h.s.put_comment(&name(2), uuid::Uuid::new_v4(), "other")
        .await
        .unwrap();
    let r = h.cycle().await;
    assert_eq!(rev(&r).parked, 1, "{r:?}");
    assert_eq!(
        r.total(|t| t.cleared),
        0,
        "forward sync leaves it to the poll: {r:?}"
    );
    // Now only the retry set brings it back: read from Sentinel and applied.
    let gets = h.s.probe.calls("get_incident");
    let p = rev(&h.cycle().await);
    assert_eq!((p.cleared, p.parked, p.failed), (1, 0, 0), "{p:?}");
    assert_eq!(
        h.s.probe.calls("get_incident"),
        gets + 1,
        "read by the retry"
    );
    assert_eq!(h.defender(1).await.custom_tags, vec!["refused".to_string()]);
    assert!(h.store.retry_set(&tenant()).await.unwrap().is_empty());
    assert_eq!(h.state(1).await.last_outcome, Some(Outcome::Synced));
}

#[tokio::test]
async fn the_poll_reports_each_page_as_progress() {
    let mut h = polling(vec![tenant()]);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    h.sync.set_reverse_progress(Arc::new(move |p| {
        sink.lock().unwrap().push(p.clone());
    }));
    h.d.upsert(incident(&tenant(), 1, ago(30)));
    h.d.upsert(incident(&tenant(), 2, ago(30)));
    h.cycle().await;
    let pages = seen.lock().unwrap().clone();
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert_eq!(
        (pages[0].page, pages[0].incidents, pages[0].more),
        (1, 2, false)
    );
}

#[test]
fn a_claim_holds_for_its_lease_unless_its_process_is_gone() {
    let now = OffsetDateTime::now_utc();
    let me = ClaimHolder::new("instance-a", "p2");
    let fresh = now - time::Duration::seconds(5);
    let stale = now - CLAIM_LEASE - time::Duration::seconds(1);
    let claim = |at, by: Option<ClaimHolder>| Claim { at, by };
    // A service that applies nothing after its answer (no settle time).
    let none = time::Duration::ZERO;
    // This very process: holds while a task of it is posting, is dead once none is (a POST that
    // failed left it).
    assert!(claim_holds(
        &claim(fresh, Some(me.clone())),
        now,
        &me,
        true,
        none
    ));
    assert!(!claim_holds(
        &claim(fresh, Some(me.clone())),
        now,
        &me,
        false,
        none
    ));
    assert!(!claim_holds(
        &claim(stale, Some(me.clone())),
        now,
        &me,
        true,
        none
    ));
    // Another instance: holds for the lease; it may be posting right now.
    let other = ClaimHolder::new("instance-b", "p1");
    assert!(claim_holds(
        &claim(fresh, Some(other.clone())),
        now,
        &me,
        false,
        none
    ));
    assert!(!claim_holds(
        &claim(stale, Some(other)),
        now,
        &me,
        false,
        none
    ));
    // An earlier process of this instance: gone (one handler process per instance).
    let gone = ClaimHolder::new("instance-a", "p1");
    assert!(!claim_holds(
        &claim(fresh, Some(gone)),
        now,
        &me,
        false,
        none
    ));
    // A claim written without a holder: the lease alone decides.
    assert!(claim_holds(&claim(fresh, None), now, &me, false, none));
    assert!(!claim_holds(&claim(stale, None), now, &me, false, none));
    // An instance left unknown (empty) never counts as this one.
    let unknown = ClaimHolder::new("", "p2");
    assert!(claim_holds(
        &claim(fresh, Some(ClaimHolder::new("", "p1"))),
        now,
        &unknown,
        false,
        none
    ));
}

/// A claim whose POST may still be applied (no task of this process posting it: it ended
/// without an answer, or its process was killed) holds until its POST settled, then dies;
/// claims of another instance keep the lease (converge finding 7).
#[test]
fn a_claim_without_a_posting_task_holds_until_its_post_settled() {
    let now = OffsetDateTime::now_utc();
    let settle = time::Duration::seconds(3);
    let me = ClaimHolder::new("instance-a", "p2");
    let gone = ClaimHolder::new("instance-a", "p1");
    let other = ClaimHolder::new("instance-b", "p1");
    let claim = |age: time::Duration, by: &ClaimHolder| Claim {
        at: now - age,
        by: Some(by.clone()),
    };
    for by in [&me, &gone] {
        // Within the settle time, and within the second a claim's whole-second time hides.
        for age in [0, 2, 3] {
            let c = claim(time::Duration::seconds(age), by);
            assert!(claim_holds(&c, now, &me, false, settle), "{by:?} {age} s");
        }
        // Settled: taken over.
        let c = claim(time::Duration::seconds(4), by);
        assert!(!claim_holds(&c, now, &me, false, settle), "{by:?}");
        let c = claim(CLAIM_LEASE, by);
        assert!(!claim_holds(&c, now, &me, false, settle), "{by:?}");
    }
    // Still posted by a task of this process: holds, settled or not.
    let c = claim(time::Duration::seconds(30), &me);
    assert!(claim_holds(&c, now, &me, true, settle));
    // Another instance: the lease alone.
    let c = claim(time::Duration::seconds(30), &other);
    assert!(claim_holds(&c, now, &me, false, settle));
    let c = claim(CLAIM_LEASE, &other);
    assert!(!claim_holds(&c, now, &me, false, settle));
}

#[tokio::test]
async fn a_claim_key_reads_back_with_its_time_and_holder_and_old_keys_still_read() {
    let h = harness();
    h.synced(1).await;
    let at = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let by = ClaimHolder::new("inst@x/y\n", "proc");
    let mut st = h.state(1).await;
    st.mirrored_comments.insert(claim_key_by("fp1", at, &by));
    let c = claimed(&st, "fp1").unwrap();
    assert_eq!(c.at, at);
    assert_eq!(c.by, Some(ClaimHolder::new("instxy", "proc")));
    st.mirrored_comments
        .insert(format!("{CLAIM_PREFIX}fp2@{}", at.unix_timestamp()));
    let c = claimed(&st, "fp2").unwrap();
    assert_eq!((c.at, c.by), (at, None));
    assert!(
        claimed(&st, "fp").is_none(),
        "a prefix of another fingerprint"
    );
}

/// A handler killed between its claim and the POST (the convergence suite's seed 3007): the
/// process the host starts next on the same instance posts the comment at once, once.
#[tokio::test]
async fn a_claim_left_by_a_killed_process_of_this_instance_is_taken_over_at_once() {
    let h = harness();
    let killed = ClaimHolder::new(
        &ClaimHolder::this_process().instance,
        "a-process-before-the-kill",
    );
    let fp = a_claimed_comment(&h, 9, "after a kill", |fp| {
        claim_key_by(fp, OffsetDateTime::now_utc(), &killed)
    })
    .await;
    let out = h.reverse(9).await;
    assert!(
        matches!(out, ReverseOutcome::Applied(Applied { comments: 1, .. })),
        "{out:?}"
    );
    assert_eq!(h.posts(), 1);
    assert_eq!(
        h.state(9).await.mirrored_comments,
        std::iter::once(fp).collect(),
        "the claim is released"
    );
    h.assert_idle(9).await;
}

/// A comment POST that failed leaves this process's claim in the state; the next attempt of
/// the same process takes it over at once and posts the comment once (the convergence suite's
/// seed 1603, with answers slower than the call timeout: the claim held the incident for the
/// whole lease).
#[tokio::test]
async fn a_claim_left_by_a_failed_post_of_this_process_is_taken_over_by_its_next_attempt() {
    let h = harness();
    a_claimed_comment(&h, 10, "after a failed post", |fp| {
        claim_key(fp, OffsetDateTime::now_utc())
    })
    .await;
    let out = h.reverse(10).await;
    assert!(
        matches!(out, ReverseOutcome::Applied(Applied { comments: 1, .. })),
        "{out:?}"
    );
    assert_eq!(h.posts(), 1);
    h.assert_idle(10).await;
}

/// Defender whose first comment POST is cut off without an answer (as by the call timeout) and
/// applied only when the test says so ([`LateApply::land`]), as a service may apply a request
/// after the client gave up on it; `settle` is its [`DefenderApi::write_settle`].
struct LateApply {
    inner: Arc<FakeDefender>,
    settle: Duration,
    pending: std::sync::Mutex<Option<(TenantId, DefenderIncidentId, String)>>,
    posts: std::sync::atomic::AtomicUsize,
}

impl LateApply {
    fn new(inner: &Arc<FakeDefender>, settle: Duration) -> Self {
        Self {
            inner: inner.clone(),
            settle,
            pending: Default::default(),
            posts: Default::default(),
        }
    }

    fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }

    /// The service applies the POST it was sent earlier.
    async fn land(&self) {
        let p = self.pending.lock().unwrap().take();
        let (t, id, text) = p.expect("a POST cut off");
        self.inner.add_comment(&t, &id, &text).await.unwrap();
    }
}

#[async_trait::async_trait]
impl DefenderApi for LateApply {
    async fn count_incidents(
        &self,
        tenant: &TenantId,
        window: &IncidentWindow,
    ) -> Result<Option<u64>, DefenderError> {
        self.inner.count_incidents(tenant, window).await
    }
    async fn list_incidents(
        &self,
        tenant: &TenantId,
        window: &IncidentWindow,
        expand_alerts: bool,
    ) -> Result<IncidentPage, DefenderError> {
        self.inner
            .list_incidents(tenant, window, expand_alerts)
            .await
    }
    async fn next_page(
        &self,
        tenant: &TenantId,
        next_link: &str,
    ) -> Result<IncidentPage, DefenderError> {
        self.inner.next_page(tenant, next_link).await
    }
    async fn get_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<Option<DefenderIncident>, DefenderError> {
        self.inner.get_incident(tenant, id).await
    }
    async fn alerts_for_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
    ) -> Result<Vec<Alert>, DefenderError> {
        self.inner.alerts_for_incident(tenant, id).await
    }
    async fn update_incident(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        patch: &DefenderPatch,
    ) -> Result<DefenderIncident, DefenderError> {
        self.inner.update_incident(tenant, id, patch).await
    }
    async fn add_comment(
        &self,
        tenant: &TenantId,
        id: &DefenderIncidentId,
        text: &str,
    ) -> Result<Vec<DefenderComment>, DefenderError> {
        if self.posts.fetch_add(1, Ordering::SeqCst) == 0 {
            *self.pending.lock().unwrap() = Some((tenant.clone(), id.clone(), text.to_owned()));
            return Err(DefenderError::Transient(
                "operation timed out (the call timeout)".into(),
            ));
        }
        self.inner.add_comment(tenant, id, text).await
    }
    async fn resolve_user(&self, upn: &str) -> Result<Option<UserRef>, DefenderError> {
        self.inner.resolve_user(upn).await
    }
    fn write_settle(&self) -> Duration {
        self.settle
    }
}

/// Incident `id`'s claim on comment `fp`, by this process, moved `age` into the past.
async fn backdate_claim(h: &Harness, id: u32, fp: &str, age: time::Duration) {
    let v = h.store.incident(&name(id)).await.unwrap().unwrap();
    let mut st = v.value.clone();
    assert!(claimed(&st, fp).is_some(), "a claim to move");
    release_claim(&mut st, fp);
    st.mirrored_comments
        .insert(claim_key(fp, OffsetDateTime::now_utc() - age));
    h.store
        .put_incident(&st, Precondition::Matches(v.etag))
        .await
        .unwrap();
}

/// Converge finding 7 (seed 3012): a comment POST cut off by the call timeout is applied by
/// the service afterwards. The next attempt of the same process, before the POST settled, must
/// not post it again (it did: fix 5 took the claim over at once); after the settle time it
/// reads Defender, finds the comment and only records it.
#[tokio::test]
async fn a_comment_post_cut_off_and_applied_late_is_not_posted_again() {
    let h = harness();
    h.synced(11).await;
    let c =
        h.s.put_comment(&name(11), uuid::Uuid::new_v4(), "posted late")
            .await
            .unwrap();
    let fp = sentinel_comment_fingerprint(&c);
    let settle = Duration::from_secs(60);
    let late = LateApply::new(&h.d, settle);
    let apply = ReverseApply {
        defender: &late,
        ..h.apply_with(&h.tenants)
    };
    let s = h.s.incident(&name(11)).unwrap();
    let err = apply.apply(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert_eq!(late.posts(), 1);
    // At once (the next cycle, the webhook): the POST may still land, the incident is held.
    let err = apply.apply(&s).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert_eq!(
        late.posts(),
        1,
        "not posted again while the first POST may land"
    );
    late.land().await;
    // Past the settle time: Defender, read again, holds the comment; it is only recorded.
    backdate_claim(&h, 11, &fp, time::Duration::seconds(62)).await;
    let out = apply.apply(&s).await.unwrap();
    assert!(
        matches!(out, ReverseOutcome::Applied(Applied { comments: 0, .. })),
        "{out:?}"
    );
    assert_eq!(late.posts(), 1, "posted once");
    assert_eq!(h.defender(11).await.comments.len(), 1);
    assert_eq!(
        h.state(11).await.mirrored_comments,
        std::iter::once(fp).collect(),
        "recorded, the claim released"
    );
    h.assert_idle(11).await;
}

/// The same cut-off POST never applied by the service: after the settle time the comment is
/// posted, once.
#[tokio::test]
async fn a_comment_post_cut_off_and_never_applied_is_posted_after_the_settle_time() {
    let h = harness();
    h.synced(12).await;
    let c =
        h.s.put_comment(&name(12), uuid::Uuid::new_v4(), "lost on the way")
            .await
            .unwrap();
    let fp = sentinel_comment_fingerprint(&c);
    let late = LateApply::new(&h.d, Duration::from_secs(60));
    let apply = ReverseApply {
        defender: &late,
        ..h.apply_with(&h.tenants)
    };
    let s = h.s.incident(&name(12)).unwrap();
    apply.apply(&s).await.unwrap_err();
    backdate_claim(&h, 12, &fp, time::Duration::seconds(62)).await;
    let out = apply.apply(&s).await.unwrap();
    assert!(
        matches!(out, ReverseOutcome::Applied(Applied { comments: 1, .. })),
        "{out:?}"
    );
    assert_eq!(late.posts(), 2);
    assert_eq!(h.defender(12).await.comments.len(), 1, "posted once");
    h.assert_idle(12).await;
}

/// The reverse poll's Defender delta lists so far: one list query per tenant, open-ended and
/// without `$expand=alerts` (the forward pull's windows are closed and expand alerts).
fn delta_lists(h: &Harness) -> Vec<TenantId> {
    h.d.queries()
        .into_iter()
        .filter(|(_, w, expand)| w.updated_to.is_none() && !expand)
        .map(|(t, _, _)| t)
        .collect()
}

#[tokio::test]
async fn a_label_change_costs_one_patch_plus_the_tenants_delta_list_and_no_get() {
    let h = polling(vec![tenant()]);
    for id in 1..=3 {
        h.d.upsert(incident(&tenant(), id, ago(30)));
    }
    h.cycle().await;
    assert!(
        delta_lists(&h).is_empty(),
        "nothing changed in Sentinel: no list"
    );
    for id in 1..=3 {
        h.s.analyst_edit(&name(id), |i| i.labels.push(user_label("triaged")));
    }
    let gets = h.d.probe.calls("get_incident");
    let p = rev(&h.cycle().await);
    assert_eq!((p.defender_writes, p.failed), (3, 0), "{p:?}");
    assert_eq!(h.patches(), 3, "one PATCH per changed incident");
    assert_eq!(h.d.probe.calls("get_incident"), gets, "no GET per incident");
    assert_eq!(delta_lists(&h), vec![tenant()], "one list for the tenant");
    assert_eq!(p.defender_lists, 1, "{p:?}");
    for id in 1..=3 {
        assert_eq!(
            h.defender(id).await.custom_tags,
            vec!["triaged".to_string()]
        );
    }
    // Our PATCHes are seen again by the next cycle: nothing is written on either side.
    let (patches, puts) = (h.patches(), h.s.probe.calls("put_incident"));
    let r = h.cycle().await;
    assert_eq!(r.total(|t| t.written), 0, "{r:?}");
    assert_eq!(
        (h.patches(), h.s.probe.calls("put_incident")),
        (patches, puts)
    );
}

/// A Defender change made after the forward pull and before the poll (here: after forward
/// sync, before the apply) to the field an analyst changed in Sentinel: the delta list holds
/// it, so the merge sees the conflict and the policy decides.
async fn defender_change_after_the_pull(policy: ConflictPolicyName) -> (Harness, ReverseOutcome) {
    let h = harness_with(policy);
    h.synced(7).await;
    h.d.edit(&tenant(), "7", |i| {
        i.custom_tags = vec!["from-defender".into()];
        i.last_update = OffsetDateTime::now_utc();
    });
    h.s.analyst_edit(&name(7), |i| i.labels.push(user_label("from-sentinel")));
    let lists = super::super::defender_delta::DefenderLists::new(
        h.d.as_ref(),
        h.store.as_ref(),
        &h.tenants,
        Duration::from_secs(5 * 60),
    );
    let s = h.s.incident(&name(7)).unwrap();
    let gets = h.d.probe.calls("get_incident");
    let out = h
        .apply_with(&h.tenants)
        .apply_listed(&s, None, Some(&lists))
        .await
        .unwrap();
    assert_eq!(h.d.probe.calls("get_incident"), gets, "read from the list");
    (h, out)
}

#[tokio::test]
async fn a_defender_change_after_the_forward_pull_is_not_lost() {
    let (h, out) = defender_change_after_the_pull(ConflictPolicyName::DefenderWins).await;
    assert_eq!(
        h.patches(),
        0,
        "Defender's change wins: nothing written to it ({out:?})"
    );
    assert_eq!(
        h.defender(7).await.custom_tags,
        vec!["from-defender".to_string()]
    );
    // Forward sync then takes Defender's tags to Sentinel.
    assert!(h.forward().await >= 1);
    let s = h.s.incident(&name(7)).unwrap();
    assert!(
        s.labels.iter().any(|l| l.name == "from-defender"),
        "{:?}",
        s.labels
    );

    let (h, out) = defender_change_after_the_pull(ConflictPolicyName::SentinelWins).await;
    assert!(
        matches!(
            out,
            ReverseOutcome::Applied(Applied {
                patched: true,
                conflicts: 1,
                ..
            })
        ),
        "the merge saw the conflict: {out:?}"
    );
    let d = h.defender(7).await;
    assert_eq!(d.custom_tags, vec!["from-sentinel".to_string()]);
    assert!(
        d.comments.iter().any(|c| c.text.contains("from-defender")),
        "the overridden Defender change is noted"
    );
}

#[tokio::test]
async fn two_tenants_each_get_their_own_delta_list() {
    let h = polling(vec![tenant(), tenant2()]);
    h.d.upsert(incident(&tenant(), 1, ago(30)));
    h.d.upsert(incident(&tenant2(), 1, ago(30)));
    h.cycle().await;
    let other = SentinelIncidentName::for_defender(&tenant2(), &did(1));
    for n in [name(1), other] {
        h.s.analyst_edit(&n, |i| i.labels.push(user_label("mssp")));
    }
    let gets = h.d.probe.calls("get_incident");
    let p = rev(&h.cycle().await);
    assert_eq!((p.defender_writes, p.failed), (2, 0), "{p:?}");
    assert_eq!(h.d.probe.calls("get_incident"), gets);
    let mut lists = delta_lists(&h);
    lists.sort();
    let mut want = vec![tenant(), tenant2()];
    want.sort();
    assert_eq!(lists, want, "one list per tenant");
    assert_eq!(h.defender(1).await.assigned_to, None, "tenant 1 untouched");
    let t2 =
        h.d.get_incident(&tenant2(), &did(1))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(t2.custom_tags, vec!["mssp".to_string()]);
}

/// A claim left by a crash between the comment POST and the state write is checked against
/// Defender as it is now, never against a delta list made before the POST (converge seed
/// 3005: a listing without the comment made the takeover post it a second time).
#[tokio::test]
async fn a_claim_is_checked_against_defender_now_not_against_an_older_delta_list() {
    let h = harness();
    h.synced(6).await;
    // Defender moved since the forward pull: the incident is in the list, as it is now.
    h.d.edit(&tenant(), "6", |i| {
        i.last_update = OffsetDateTime::now_utc()
    });
    let lists = super::super::defender_delta::DefenderLists::new(
        h.d.as_ref(),
        h.store.as_ref(),
        &h.tenants,
        Duration::from_secs(5 * 60),
    );
    use super::super::defender_delta::DeltaSource;
    let listed = lists.delta(&tenant()).await.expect("listed");
    assert!(listed.listed.contains_key(&did(6)));
    h.s.put_comment(&name(6), uuid::Uuid::new_v4(), "escalated")
        .await
        .unwrap();
    // The claim before the POST is written; the state write after it is not.
    h.store.pass_incident_puts.store(1, Ordering::SeqCst);
    h.store.fail_incident_puts.store(1, Ordering::SeqCst);
    let s = h.s.incident(&name(6)).unwrap();
    let apply = h.apply_with(&h.tenants);
    let err = apply
        .apply_listed(&s, None, Some(&lists))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert_eq!(
        h.defender(6).await.comments.len(),
        1,
        "posted before the crash"
    );
    // The same (cached) list, made before the POST, is still current for the poll.
    let out = apply.apply_listed(&s, None, Some(&lists)).await.unwrap();
    assert!(
        matches!(out, ReverseOutcome::Applied(Applied { comments: 0, .. })),
        "{out:?}"
    );
    assert_eq!(h.defender(6).await.comments.len(), 1, "not posted again");
}
