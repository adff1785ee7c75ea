use super::*;
use dss_test_support::fixture;
use serde_json::json;

fn read(name: &str) -> SentinelIncident {
    let dto: IncidentDto = serde_json::from_value(fixture(name)).unwrap();
    SentinelIncident::try_from(dto).unwrap()
}

#[test]
fn get_fixture_maps() {
    let i = read("sentinel-get-incident.response.json");
    assert_eq!(i.name.to_string(), "73e01a99-5cd7-4139-a149-9f2736ff2ab5");
    assert_eq!(
        i.etag.as_deref(),
        Some("\"0300bf09-0000-0000-0000-5c37296e0000\"")
    );
    assert_eq!(i.status, SentinelStatus::Closed);
    assert_eq!(i.severity, SentinelSeverity::High);
    assert_eq!(
        i.classification,
        Some(SentinelClassification::FalsePositive)
    );
    assert_eq!(
        i.classification_reason,
        Some(ClassificationReason::InaccurateData)
    );
    assert_eq!(i.owner.upn_or_email(), Some("john@contoso.com"));
    assert_eq!(
        i.owner.object_id.map(|u| u.to_string()).as_deref(),
        Some("2046feea-040d-4a46-9e2b-91c2941bfa70")
    );
    assert_eq!(i.incident_number, Some(3177));
    assert!(i.first_activity.is_some() && i.last_modified.is_some());
    assert_eq!(i.comments_count, Some(3), "additionalData.commentsCount");
}

#[test]
fn put_body_carries_the_fixture_request_and_the_whole_object() {
    let mut i = read("sentinel-get-incident.response.json");
    i.classification_reason = Some(ClassificationReason::IncorrectAlertLogic);
    let body = serde_json::to_value(PutDto::try_from(&i).unwrap()).unwrap();
    let expected = fixture("sentinel-incident-put.request.json");
    assert_eq!(body["etag"], expected["etag"]);
    for (k, v) in expected["properties"].as_object().unwrap() {
        if k != "owner" {
            assert_eq!(&body["properties"][k], v, "{k}");
        }
    }
    assert_eq!(
        body["properties"]["owner"]["objectId"],
        expected["properties"]["owner"]["objectId"]
    );
    assert_eq!(
        body["properties"]["owner"]["userPrincipalName"],
        "john@contoso.com"
    );
    assert_eq!(body["properties"]["labels"], json!([]));
    for read_only in [
        "incidentNumber",
        "createdTimeUtc",
        "lastModifiedTimeUtc",
        "providerName",
        "additionalData",
    ] {
        assert!(
            body["properties"].get(read_only).is_none(),
            "{read_only} must not be written"
        );
    }
}

#[test]
fn labels_keep_auto_assigned_ones_as_read_and_write_user_ones_by_name() {
    let raw = json!({"name": "73e01a99-5cd7-4139-a149-9f2736ff2ab5", "properties": {"title": "t", "severity": "Low", "status": "New",
        "labels": [{"labelName": "Defender", "labelType": "User"}, {"labelName": "ml", "labelType": "AutoAssigned"}]}});
    let i =
        SentinelIncident::try_from(serde_json::from_value::<IncidentDto>(raw).unwrap()).unwrap();
    assert_eq!(i.labels[1].kind, LabelKind::AutoAssigned);
    let body = serde_json::to_value(PutDto::try_from(&i).unwrap()).unwrap();
    assert_eq!(
        body["properties"]["labels"],
        json!([{"labelName": "Defender"}, {"labelName": "ml", "labelType": "AutoAssigned"}])
    );
    assert!(body.get("etag").is_none(), "new incident: no etag");
    assert_eq!(
        body["properties"]["owner"],
        json!({}),
        "owner always sent, even unassigned"
    );
}

#[test]
fn oversized_description_and_empty_title_are_refused() {
    let mut i = read("sentinel-get-incident.response.json");
    i.description = Some("é".repeat(5_000));
    assert!(
        PutDto::try_from(&i).is_ok(),
        "5,000 characters (not bytes) fit"
    );
    i.description = Some("x".repeat(5_001));
    assert!(PutDto::try_from(&i).unwrap_err().contains("5001"));
    i.description = None;
    i.title = " ".into();
    assert!(PutDto::try_from(&i).is_err());
}

#[test]
fn comment_fixture_maps() {
    let c: SentinelComment = serde_json::from_value::<CommentDto>(fixture(
        "sentinel-incident-comment.put.response.json",
    ))
    .unwrap()
    .into();
    assert_eq!(c.id, "4bb36b7b-26ff-4d1c-9cbe-0d8ab3da0014");
    assert_eq!(c.message, "Some message");
    assert_eq!(c.author.as_deref(), Some("john@contoso.com"));
    assert!(c.created.is_some());
}

#[test]
fn owner_type_is_read_and_written_back_as_read() {
    let mut raw = fixture("sentinel-get-incident.response.json");
    raw["properties"]["owner"] = json!({
        "objectId": "9c4b2e61-7d3a-4f85-b1c0-3e2d5a6f7081", "email": null,
        "assignedTo": "SOC Tier 1", "userPrincipalName": null, "ownerType": "Group"
    });
    let dto: IncidentDto = serde_json::from_value(raw).unwrap();
    let i = SentinelIncident::try_from(dto).unwrap();
    assert_eq!(i.owner.owner_type, Some(OwnerType::Group));
    assert!(i.owner.is_group() && !i.owner.is_unassigned());
    let body = serde_json::to_value(PutDto::try_from(&i).unwrap()).unwrap();
    assert_eq!(
        body["properties"]["owner"],
        json!({"objectId": "9c4b2e61-7d3a-4f85-b1c0-3e2d5a6f7081", "ownerType": "Group"}),
        "a group owner goes back as a group"
    );

    let user = read("sentinel-get-incident.response.json");
    let body = serde_json::to_value(PutDto::try_from(&user).unwrap()).unwrap();
    assert_eq!(
        body["properties"]["owner"]["ownerType"],
        json!(user.owner.owner_type.as_ref().map(|t| t.as_str())),
        "a user owner keeps the type it was read with"
    );

    let mut none = user.clone();
    none.owner = Owner {
        owner_type: Some(OwnerType::Unknown),
        ..Owner::default()
    };
    let body = serde_json::to_value(PutDto::try_from(&none).unwrap()).unwrap();
    assert_eq!(
        body["properties"]["owner"],
        json!({}),
        "unassigned: no type"
    );
}
