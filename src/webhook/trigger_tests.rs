use super::*;
use dss_test_support::fixture;

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[test]
fn both_fixture_bodies_parse_to_their_incident() {
    let create = parse_trigger(&bytes(&fixture("sentinel-incident-trigger.create.json"))).unwrap();
    assert_eq!(
        create.incident.subscription_id,
        "d0cfe6b2-9ac0-4464-9919-dccaee2e48c0"
    );
    assert_eq!(create.incident.resource_group, "rg-secops-prod");
    assert_eq!(create.incident.workspace_name, "law-sentinel-prod");
    assert!(
        create.alerts > 0,
        "the create body lists its alerts under `Alerts`"
    );
    let update = parse_trigger(&bytes(&fixture("sentinel-incident-trigger.update.json"))).unwrap();
    assert_eq!(update.incident.name, "73e01a99-5cd7-4139-a149-9f2736ff2ab5");
    assert_eq!(update.updated_by_source.as_deref(), Some("User"));
    assert_eq!(
        update.last_modified,
        Some(time::macros::datetime!(2026-10-09 03:02:44 UTC))
    );
}

#[test]
fn alerts_are_read_in_either_casing_and_unknown_fields_are_ignored() {
    let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/Incidents/n";
    for key in ["alerts", "Alerts"] {
        let body = serde_json::json!({
            "somethingNew": {"x": [1, 2]},
            "object": {"id": id, "name": "n", "etag": "\"1\"", "properties": {key: [{"id": "a"}, {"id": "b"}], "future": true}}
        });
        let t = parse_trigger(&bytes(&body)).unwrap();
        assert_eq!(t.alerts, 2, "{key}");
        assert_eq!(t.incident.name, "n");
    }
    // A body with nothing but the id is enough: the handler reads the incident itself.
    let t = parse_trigger(format!(r#"{{"object":{{"id":"{id}"}}}}"#).as_bytes()).unwrap();
    assert_eq!(t.alerts, 0);
    assert_eq!(t.event, None);
}

#[test]
fn each_malformed_body_is_refused_naming_what_is_wrong() {
    let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/incidents/n";
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "empty"),
        ("  \n".into(), "empty"),
        ("{not json".into(), "not JSON"),
        (r#"{"object":{"id":"x"}"#.into(), "not JSON"),
        ("[]".into(), "not a Sentinel incident trigger"),
        (r#"{"workspaceId":"w"}"#.into(), "`object`"),
        (r#"{"object":[]}"#.into(), "not a Sentinel incident trigger"),
        (r#"{"object":{"name":"n"}}"#.into(), "`object.id`"),
        (r#"{"object":{"id":7}}"#.into(), "not a Sentinel incident trigger"),
        (r#"{"object":{"id":"/subscriptions/s/resourceGroups/rg"}}"#.into(), "ARM id"),
        (
            r#"{"object":{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/alertRules/n"}}"#.into(),
            "ARM id",
        ),
        (format!(r#"{{"object":{{"id":"{id}","name":"other"}}}}"#), "`object.name`"),
        (format!(r#"{{"object":{{"id":"{id}","properties":{{"alerts":3}}}}}}"#), "not a Sentinel incident trigger"),
    ];
    for (body, needle) in cases {
        let e = parse_trigger(body.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(needle), "{body:?}: {e}");
    }
}

#[test]
fn a_body_over_the_limit_is_refused_unread() {
    let big = vec![b'{'; MAX_BODY_BYTES + 1];
    assert_eq!(
        parse_trigger(&big),
        Err(TriggerError::TooLarge(MAX_BODY_BYTES + 1))
    );
    let mut ok = b"{\"object\":{\"id\":\"/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/incidents/n\"}}".to_vec();
    ok.resize(MAX_BODY_BYTES, b' ');
    assert!(parse_trigger(&ok).is_ok(), "exactly the limit is accepted");
}

#[test]
fn arm_ids_are_matched_case_insensitively_by_segment() {
    let id = "/SUBSCRIPTIONS/s/resourcegroups/rg/PROVIDERS/microsoft.operationalinsights/Workspaces/w/providers/MICROSOFT.SECURITYINSIGHTS/incidents/n/";
    let r = parse_incident_id(id).unwrap();
    assert_eq!((r.subscription_id.as_str(), r.name.as_str()), ("s", "n"));
    assert!(parse_incident_id("/subscriptions//resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/incidents/n").is_none());
    assert!(parse_incident_id("subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/incidents/n").is_none());
}

#[test]
fn the_provider_incident_id_and_name_are_read_as_string_or_number() {
    let update = parse_trigger(&bytes(&fixture("sentinel-incident-trigger.update.json"))).unwrap();
    assert_eq!(update.provider_incident_id.as_deref(), Some("3177"));
    assert_eq!(update.provider_name.as_deref(), Some("Azure Sentinel"));
    let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/incidents/73e01a99-5cd7-4139-a149-9f2736ff2ab5";
    let body = format!(
        r#"{{"object":{{"id":"{id}","properties":{{"providerName":"Microsoft XDR","providerIncidentId":42}}}}}}"#
    );
    let t = parse_trigger(body.as_bytes()).unwrap();
    assert_eq!(t.provider_incident_id.as_deref(), Some("42"));
    assert_eq!(t.provider_name.as_deref(), Some("Microsoft XDR"));
    let blank =
        format!(r#"{{"object":{{"id":"{id}","properties":{{"providerIncidentId":" "}}}}}}"#);
    assert_eq!(
        parse_trigger(blank.as_bytes())
            .unwrap()
            .provider_incident_id,
        None
    );
}

#[test]
fn an_odd_provider_incident_id_is_ignored_not_refused() {
    let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/incidents/73e01a99-5cd7-4139-a149-9f2736ff2ab5";
    let body = format!(
        r#"{{"object":{{"id":"{id}","properties":{{"providerName":7,"providerIncidentId":{{"x":1}}}}}}}}"#
    );
    let t = parse_trigger(body.as_bytes()).unwrap();
    assert_eq!(t.provider_incident_id, None);
    assert_eq!(t.provider_name, None);
}
