//! `local.settings.example.json` lists every setting of the README with values that pass
//! validation.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

mod support;

use defender_sentinel_sync::config::Settings;
use std::collections::HashMap;

const CONTRACT_SETTINGS: [&str; 28] = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "DEFENDER_TENANT_IDS",
    "GRAPH_ENDPOINT",
    "SENTINEL_SUBSCRIPTION_ID",
    "SENTINEL_RESOURCE_GROUP",
    "SENTINEL_WORKSPACE_NAME",
    "ARM_ENDPOINT",
    "LOGS_INGESTION_ENDPOINT",
    "LOGS_DCR_IMMUTABLE_ID",
    "LOGS_STREAM_NAME",
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__tableServiceUri",
    "SYNC_STATE_TABLE",
    "DEFENDER_SYNC_SCHEDULE",
    "SYNC_LOOKBACK_HOURS",
    "SYNC_CONFLICT_POLICY",
    "SYNC_SEVERITY_TO_DEFENDER",
    "AzureFunctionsJobHost__functionTimeout",
    "WEBHOOK_SECRET",
    "WEBHOOK_AUDIENCE",
    "WEBHOOK_AUTH",
    "FUNCTIONS_WORKER_RUNTIME",
];

#[test]
fn the_example_lists_every_setting_with_valid_values() {
    let text =
        std::fs::read_to_string(support::repo().join("local.settings.example.json")).expect("read");
    let json: serde_json::Value = serde_json::from_str(&text).expect("comment-free valid JSON");
    let values: HashMap<String, String> = json["Values"]
        .as_object()
        .expect("Values")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string values").to_owned()))
        .collect();
    for name in CONTRACT_SETTINGS {
        assert!(
            values.contains_key(name),
            "{name} missing from local.settings.example.json"
        );
    }
    // Locally there is no managed identity: the example uses an app's client secret.
    let settings = Settings::from_env(&values, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        settings.storage.is_some(),
        "UseDevelopmentStorage=true is a Table Storage connection"
    );
}
