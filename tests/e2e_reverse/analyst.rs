//! Sentinel analyst actions reach Defender within one cycle; the next cycle is idle; what is
//! not ours (a native Sentinel incident) is never touched; two Defender tenants never cross.

use super::*;

#[tokio::test]
async fn close_assign_tag_comment_and_reopen_reach_defender_within_one_cycle() {
    let (world, ids) = synced(4, 61, &[]).await;
    let close = SentinelAction::SetStatus {
        status: "Closed".into(),
        classification: Some("TruePositive".into()),
        classification_reason: Some("SuspiciousActivity".into()),
        classification_comment: Some("Confirmed phishing.".into()),
    };
    sentinel_act(&world, T, &ids[0], close);
    let owner = Some(wellknown::ANALYST_UPN.to_owned());
    sentinel_act(&world, T, &ids[1], SentinelAction::SetOwner { owner });
    let labels = vec!["Defender".to_owned(), "phish-wave".to_owned()];
    sentinel_act(&world, T, &ids[2], SentinelAction::SetLabels { labels });
    let message = "Isolated the host from the Sentinel side.".to_owned();
    sentinel_act(&world, T, &ids[3], SentinelAction::Comment { message });

    let reply = world.sync_ok().await.return_value;
    let p = poll(&reply);
    assert_eq!((n(p, "defenderWrites"), n(p, "comments")), (3, 1), "{p}");
    assert_eq!(n(p, "failed"), 0, "{p}");

    let d = defender_of(&world, T, &ids[0]);
    assert_eq!(d["status"], "resolved", "{d}");
    assert_eq!(d["classification"], "truePositive", "{d}");
    assert_eq!(d["resolvingComment"], "Confirmed phishing.", "{d}");
    let d = defender_of(&world, T, &ids[1]);
    assert_eq!(d["assignedTo"], wellknown::ANALYST_UPN, "{d}");
    let d = defender_of(&world, T, &ids[2]);
    assert_eq!(d["customTags"], serde_json::json!(["phish-wave"]), "{d}");
    let texts = defender_comments(&world, T, &ids[3]);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].starts_with("[Sentinel]") && texts[0].contains("Isolated the host"),
        "{texts:?}"
    );
    // Forward sync does not undo any of it, and nothing is mirrored back.
    assert_idle(&world).await;
    assert_eq!(
        sentinel_of(&world, T, &ids[0])["properties"]["status"],
        "Closed"
    );
    assert_eq!(
        comments(&world, &name_of(T, &ids[3])).len(),
        1,
        "the analyst's comment is not mirrored back to Sentinel"
    );

    // A reopen in Sentinel reopens Defender.
    let reopen = SentinelAction::SetStatus {
        status: "Active".into(),
        classification: None,
        classification_reason: None,
        classification_comment: None,
    };
    sentinel_act(&world, T, &ids[0], reopen);
    let reply = world.sync_ok().await.return_value;
    assert_eq!(n(poll(&reply), "defenderWrites"), 1, "{reply}");
    let d = defender_of(&world, T, &ids[0]);
    assert_ne!(d["status"], "resolved", "{d}");
    assert_idle(&world).await;
    assert_eq!(
        sentinel_of(&world, T, &ids[0])["properties"]["status"],
        "Active"
    );
}

#[tokio::test]
async fn a_native_sentinel_incident_is_left_alone() {
    let (world, ids) = synced(1, 62, &[]).await;
    let native = world
        .sims
        .insert_sentinel_incident(&fixture("sentinel-get-incident.response.json"))
        .unwrap();
    // An analyst works on it now, so the poll lists it.
    world
        .sims
        .sentinel_action(
            &native,
            SentinelAction::SetOwner {
                owner: Some(wellknown::ANALYST_UPN.into()),
            },
        )
        .unwrap();
    world.sims.reset_counters();
    let reply = world.sync_ok().await.return_value;
    let p = poll(&reply);
    assert_eq!((n(p, "unmanaged"), n(p, "defenderWrites")), (1, 0), "{p}");
    assert_eq!(writes(&world, "graph"), 0, "nothing written to Defender");
    assert_eq!(writes(&world, "arm"), 0, "nothing written to Sentinel");
    assert_eq!(defender_comments(&world, T, &ids[0]).len(), 0);
    assert_idle(&world).await;
}

#[tokio::test]
async fn two_defender_tenants_never_cross() {
    let world = World::start().await;
    let (t1, t2) = (wellknown::TENANT_ID, wellknown::TENANT_ID_2);
    let a = world.sims.seed_capped(t1, 2, 63, 2);
    let b = world.sims.seed_capped(t2, 2, 63, 2);
    for (t, id) in a.iter().map(|i| (t1, i)).chain(b.iter().map(|i| (t2, i))) {
        act(&world, t, id, DefenderAction::Assign { assigned_to: None });
    }
    world.sync_ok().await;
    let owner = Some(wellknown::ANALYST_UPN.to_owned());
    sentinel_act(&world, t2, &b[0], SentinelAction::SetOwner { owner });
    let message = "Tenant two only.".to_owned();
    sentinel_act(&world, t1, &a[1], SentinelAction::Comment { message });
    let reply = world.sync_ok().await.return_value;
    let p = poll(&reply);
    assert_eq!((n(p, "defenderWrites"), n(p, "comments")), (1, 1), "{p}");
    // SyncHealth: each tenant's share of the poll.
    let health = world.health().await;
    let share = |t: &str| health["perTenant"][t]["reverse"].clone();
    assert_eq!(share(t2)["defender_writes"], 1, "{health}");
    assert_eq!(share(t2)["comments"], 0, "{health}");
    assert_eq!(share(t1)["defender_writes"], 0, "{health}");
    assert_eq!(share(t1)["comments"], 1, "{health}");
    assert_eq!(
        defender_of(&world, t2, &b[0])["assignedTo"],
        wellknown::ANALYST_UPN
    );
    for id in &a {
        assert!(
            defender_of(&world, t1, id)["assignedTo"].is_null(),
            "tenant one untouched by tenant two's change"
        );
    }
    assert_eq!(defender_comments(&world, t1, &a[1]).len(), 1);
    for id in &b {
        assert!(
            defender_comments(&world, t2, id).is_empty(),
            "tenant two untouched by tenant one's comment"
        );
    }
    assert_idle(&world).await;
}

/// The timer path reads Defender once per tenant (a delta list), not once per incident: a label
/// costs the Graph PATCH, a comment the ARM comment list and the Graph comment POST.
#[tokio::test]
async fn the_poll_reads_no_defender_incident_one_by_one() {
    let (world, ids) = synced(4, 64, &[]).await;
    for id in &ids[..2] {
        let labels = vec!["Defender".to_owned(), "triaged".to_owned()];
        sentinel_act(&world, T, id, SentinelAction::SetLabels { labels });
    }
    for id in &ids[2..] {
        let message = format!("checked {id}");
        sentinel_act(&world, T, id, SentinelAction::Comment { message });
    }
    world.sims.reset_counters();
    let reply = world.sync_ok().await.return_value;
    let p = poll(&reply);
    assert_eq!((n(p, "defenderWrites"), n(p, "comments")), (2, 2), "{p}");
    assert_eq!(n(p, "defenderLists"), 1, "one list for the tenant: {p}");
    let k = world.sims.counters();
    let calls = |api: &str, op: &str| k.op(api, op).calls;
    assert_eq!(
        calls("graph", "GET incidents/{id}"),
        0,
        "no GET per incident"
    );
    assert_eq!(calls("graph", "PATCH incidents/{id}"), 2);
    assert_eq!(calls("graph", "POST incidents/{id}/comments"), 2);
    assert_eq!(calls("arm", "GET incidents/{id}/comments"), 2);
    for id in &ids[..2] {
        let d = defender_of(&world, T, id);
        assert_eq!(d["customTags"], serde_json::json!(["triaged"]), "{d}");
    }
    assert_idle(&world).await;
}
