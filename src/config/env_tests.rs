use super::*;

const TENANT: &str = "11111111-1111-1111-1111-111111111111";
const OTHER: &str = "22222222-2222-2222-2222-222222222222";

fn base() -> HashMap<String, String> {
    [
        ("AZURE_TENANT_ID", TENANT),
        (
            "SENTINEL_SUBSCRIPTION_ID",
            "33333333-3333-3333-3333-333333333333",
        ),
        ("SENTINEL_RESOURCE_GROUP", "rg-sec"),
        ("SENTINEL_WORKSPACE_NAME", "law-sec"),
        ("SYNC_STATE_STORE", "memory"),
        ("IDENTITY_ENDPOINT", "http://169.254.255.2:8081/msi/token"),
        ("IDENTITY_HEADER", "platform-header"),
        ("WEBHOOK_SECRET", "0123456789abcdef0123"),
        ("DEFENDER_SYNC_SCHEDULE", "0 */5 * * * *"),
        ("PATH", "/usr/bin"),
        ("WEBSITE_SITE_NAME", "anything at all"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = base();
    for (k, v) in pairs {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

fn errors(env: &HashMap<String, String>) -> SettingsErrors {
    Settings::from_env(env, None).expect_err("settings should be refused")
}

#[test]
fn minimal_settings_parse_with_the_documented_defaults() {
    let s = Settings::from_env(&base(), None).expect("valid");
    assert_eq!(s.azure_tenant_id.as_str(), TENANT);
    assert_eq!(s.defender_tenants, vec![s.azure_tenant_id.clone()]);
    assert_eq!(s.graph_endpoint.as_str(), "https://graph.microsoft.com/");
    assert_eq!(s.arm_endpoint.as_str(), "https://management.azure.com/");
    assert_eq!(
        s.authority_host.as_str(),
        "https://login.microsoftonline.com/"
    );
    assert!(matches!(
        s.credential,
        CredentialSettings::ManagedIdentity { client_id: None }
    ));
    assert!(s.logs.is_none());
    assert!(s.storage.is_none());
    assert_eq!(s.state_table, "DefenderSentinelSync");
    assert_eq!(s.lookback, Duration::from_secs(24 * 3600));
    assert_eq!(s.conflict_policy, ConflictPolicyName::LatestWins);
    assert_eq!(s.sentinel_target, SentinelTarget::Arm);
    assert!(!s.severity_to_defender);
    assert_eq!(s.function_timeout, Duration::from_secs(300));
    assert!(matches!(s.webhook_auth, WebhookAuth::SharedSecret(_)));
    assert_eq!(s.limits, ClientLimits::default());
}

#[test]
fn every_missing_required_setting_is_named_on_its_own_line() {
    let env: HashMap<String, String> = HashMap::from([("PATH".to_owned(), "/bin".to_owned())]);
    let e = errors(&env);
    for name in [
        "AZURE_TENANT_ID",
        "SENTINEL_SUBSCRIPTION_ID",
        "SENTINEL_RESOURCE_GROUP",
        "SENTINEL_WORKSPACE_NAME",
        "AzureWebJobsStorage",
        "WEBHOOK_SECRET",
    ] {
        assert!(e.names(name), "{name} not reported in:\n{e}");
    }
    let text = e.to_string();
    assert_eq!(text.lines().count(), e.0.len());
    assert!(text.lines().all(|l| l.starts_with("setting ")));
}

#[test]
fn an_empty_value_means_unset() {
    let e = errors(&with(&[("AZURE_TENANT_ID", "  "), ("GRAPH_ENDPOINT", "")]));
    assert!(e.names("AZURE_TENANT_ID"));
    assert!(
        !e.names("GRAPH_ENDPOINT"),
        "empty GRAPH_ENDPOINT should take the default"
    );
}

#[test]
fn malformed_values_are_reported_each_naming_the_setting() {
    let e = errors(&with(&[
        ("SYNC_LOOKBACK_HOURS", "a day"),
        ("SYNC_CONFLICT_POLICY", "coin-flip"),
        ("SYNC_SEVERITY_TO_DEFENDER", "yes"),
        ("SENTINEL_SUBSCRIPTION_ID", "not-a-guid"),
        ("SYNC_STATE_TABLE", "no-dashes"),
        ("AzureFunctionsJobHost__functionTimeout", "ten minutes"),
        ("DEFENDER_SYNC_SCHEDULE", "every minute"),
        ("SENTINEL_TARGET", "portal"),
    ]));
    for name in [
        "SYNC_LOOKBACK_HOURS",
        "SYNC_CONFLICT_POLICY",
        "SYNC_SEVERITY_TO_DEFENDER",
        "SENTINEL_SUBSCRIPTION_ID",
        "SYNC_STATE_TABLE",
        "AzureFunctionsJobHost__functionTimeout",
        "DEFENDER_SYNC_SCHEDULE",
        "SENTINEL_TARGET",
    ] {
        assert!(e.names(name), "{name} not reported in:\n{e}");
    }
    assert_eq!(e.0.len(), 8, "{e}");
}

#[test]
fn endpoints_take_http_only_on_loopback_and_the_authority_only_https() {
    let ok = Settings::from_env(
        &with(&[
            ("GRAPH_ENDPOINT", "http://127.0.0.1:9000"),
            ("ARM_ENDPOINT", "http://localhost:9001"),
        ]),
        None,
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
    let e = errors(&with(&[
        ("GRAPH_ENDPOINT", "http://graph.example.com"),
        ("ARM_ENDPOINT", "http://10.1.2.3"),
        ("AZURE_AUTHORITY_HOST", "http://127.0.0.1:9443"),
        ("LOGS_INGESTION_ENDPOINT", "http://dce.example.com"),
        ("LOGS_DCR_IMMUTABLE_ID", "dcr-0123456789abcdef"),
    ]));
    for name in [
        "GRAPH_ENDPOINT",
        "ARM_ENDPOINT",
        "AZURE_AUTHORITY_HOST",
        "LOGS_INGESTION_ENDPOINT",
    ] {
        assert!(e.names(name), "{name} not reported in:\n{e}");
    }
}

#[test]
fn logs_ingestion_settings_go_together() {
    let e = errors(&with(&[(
        "LOGS_INGESTION_ENDPOINT",
        "https://dce.ingest.monitor.azure.com",
    )]));
    assert!(e.names("LOGS_DCR_IMMUTABLE_ID"));
    let s = Settings::from_env(
        &with(&[
            ("LOGS_INGESTION_ENDPOINT", "http://127.0.0.1:7000"),
            (
                "LOGS_DCR_IMMUTABLE_ID",
                "dcr-00000000000000000000000000000000",
            ),
        ]),
        None,
    )
    .expect("valid");
    let logs = s.logs.expect("ingestion on");
    assert_eq!(logs.stream_name, "Custom-DefenderAlerts_CL");
}

#[test]
fn managed_identity_may_only_name_its_own_tenant() {
    let e = errors(&with(&[(
        "DEFENDER_TENANT_IDS",
        &format!("{TENANT},{OTHER}"),
    )]));
    let line =
        e.0.iter()
            .find(|x| x.setting == "DEFENDER_TENANT_IDS")
            .expect("reported")
            .to_string();
    assert!(
        line.contains("AZURE_TENANT_ID") && line.contains(OTHER),
        "{line}"
    );

    let s = Settings::from_env(
        &with(&[
            ("DEFENDER_TENANT_IDS", &format!("{TENANT}, {OTHER},{OTHER}")),
            ("AZURE_CLIENT_ID", "app"),
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
        ]),
        None,
    )
    .expect("client secret reaches other tenants");
    assert_eq!(s.defender_tenants.len(), 2);
    assert!(matches!(
        s.credential,
        CredentialSettings::ClientSecret { .. }
    ));
}

#[test]
fn a_client_secret_needs_a_client_id_and_never_shows_in_debug() {
    assert!(errors(&with(&[("AZURE_CLIENT_SECRET", "s3cr3t-value")])).names("AZURE_CLIENT_ID"));
    let s = Settings::from_env(
        &with(&[
            ("AZURE_CLIENT_ID", "app"),
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
            ("WEBHOOK_SECRET", "webhook-secret-0123456789"),
        ]),
        None,
    )
    .expect("valid");
    let debug = format!("{s:?}");
    assert!(
        !debug.contains("s3cr3t-value") && !debug.contains("webhook-secret-0123456789"),
        "{debug}"
    );
}

#[test]
fn webhook_authentication_follows_the_contract() {
    let both =
        Settings::from_env(&with(&[("WEBHOOK_AUDIENCE", "api://sync")]), None).expect("valid");
    assert!(matches!(both.webhook_auth, WebhookAuth::Either { .. }));
    let mut only_audience = with(&[("WEBHOOK_AUDIENCE", "api://sync")]);
    only_audience.remove("WEBHOOK_SECRET");
    let s = Settings::from_env(&only_audience, None).expect("valid");
    assert!(matches!(s.webhook_auth, WebhookAuth::EntraToken { .. }));
    let mut none = base();
    none.remove("WEBHOOK_SECRET");
    none.insert("WEBHOOK_AUTH".into(), "none".into());
    assert!(matches!(
        Settings::from_env(&none, None).expect("valid").webhook_auth,
        WebhookAuth::Disabled
    ));
    assert!(errors(&with(&[("WEBHOOK_AUTH", "basic")])).names("WEBHOOK_AUTH"));
    assert!(errors(&with(&[("WEBHOOK_SECRET", "short")])).names("WEBHOOK_SECRET"));
}

#[test]
fn the_webhook_app_allow_list_is_optional_and_holds_app_ids() {
    assert!(
        Settings::from_env(&base(), None)
            .expect("valid")
            .webhook_allowed_app_ids
            .is_empty()
    );
    let s = Settings::from_env(
        &with(&[(
            "WEBHOOK_ALLOWED_APP_IDS",
            " 7D9E3B1A-2C4F-4A6B-8D0E-1F2A3B4C5D6E , 4f1c6a52-7d43-4d8e-9b0f-0d1b2c3e4f50,",
        )]),
        None,
    )
    .expect("valid");
    assert_eq!(
        s.webhook_allowed_app_ids,
        [
            "7d9e3b1a-2c4f-4a6b-8d0e-1f2a3b4c5d6e",
            "4f1c6a52-7d43-4d8e-9b0f-0d1b2c3e4f50"
        ]
    );
    assert!(
        errors(&with(&[("WEBHOOK_ALLOWED_APP_IDS", "my-playbook")]))
            .names("WEBHOOK_ALLOWED_APP_IDS")
    );
}

#[test]
fn storage_is_required_unless_state_is_kept_in_memory() {
    let mut env = base();
    env.remove("SYNC_STATE_STORE");
    assert!(errors(&env).names("AzureWebJobsStorage"));
    env.insert(
        "AzureWebJobsStorage".into(),
        "this is not a connection string".into(),
    );
    assert!(errors(&env).names("AzureWebJobsStorage"));
    assert!(errors(&with(&[("SYNC_STATE_STORE", "disk")])).names("SYNC_STATE_STORE"));
}

#[test]
fn function_timeout_comes_from_the_override_then_host_json() {
    let host = r#"{"version":"2.0","functionTimeout":"00:10:00"}"#;
    assert_eq!(
        Settings::from_env(&base(), Some(host))
            .expect("valid")
            .function_timeout,
        Duration::from_secs(600)
    );
    let s = Settings::from_env(
        &with(&[("AzureFunctionsJobHost__functionTimeout", "00:00:04")]),
        Some(host),
    )
    .expect("valid");
    assert_eq!(s.function_timeout, Duration::from_secs(4));
}

#[test]
fn the_retry_backoff_defaults_to_a_minute_and_can_be_shortened() {
    let s = Settings::from_env(&with(&[]), None).expect("valid");
    assert_eq!(s.retry_backoff, std::time::Duration::from_secs(60));
    let s =
        Settings::from_env(&with(&[("SYNC_RETRY_BACKOFF_SECONDS", "0.5")]), None).expect("valid");
    assert_eq!(s.retry_backoff, std::time::Duration::from_millis(500));
    let e = Settings::from_env(&with(&[("SYNC_RETRY_BACKOFF_SECONDS", "soon")]), None).unwrap_err();
    assert!(e.to_string().contains("SYNC_RETRY_BACKOFF_SECONDS"), "{e}");
}

#[test]
fn the_bench_only_setting_lifts_client_limits() {
    let s = Settings::from_env(&with(&[("SYNC_BENCH_UNLIMITED", "true")]), None).expect("valid");
    assert_eq!(s.limits, ClientLimits::unlimited());
}

#[test]
fn managed_identity_needs_the_platform_endpoint() {
    let mut env = base();
    env.remove("IDENTITY_ENDPOINT");
    env.remove("IDENTITY_HEADER");
    let e = errors(&env);
    assert!(e.names("IDENTITY_ENDPOINT"), "{e}");
    assert!(e.names("IDENTITY_HEADER"), "{e}");
    let mut env = with(&[
        ("AZURE_CLIENT_ID", "app"),
        ("AZURE_CLIENT_SECRET", "s3cret"),
    ]);
    env.remove("IDENTITY_ENDPOINT");
    env.remove("IDENTITY_HEADER");
    assert!(
        Settings::from_env(&env, None).is_ok(),
        "a client secret needs no platform endpoint"
    );
}

#[test]
fn the_logs_audience_follows_the_endpoints_cloud_unless_set() {
    let logs = |extra: &[(&str, &str)]| {
        let mut pairs = vec![(
            "LOGS_DCR_IMMUTABLE_ID",
            "dcr-00000000000000000000000000000000",
        )];
        pairs.extend_from_slice(extra);
        Settings::from_env(&with(&pairs), None)
            .expect("valid")
            .logs
            .expect("ingestion on")
            .audience
            .to_string()
    };
    let public = [(
        "LOGS_INGESTION_ENDPOINT",
        "https://dce-1.westeurope-1.ingest.monitor.azure.com",
    )];
    assert_eq!(logs(&public), "https://monitor.azure.com/");
    let gov = [(
        "LOGS_INGESTION_ENDPOINT",
        "https://dce-1.usgovvirginia-1.ingest.monitor.azure.us",
    )];
    assert_eq!(logs(&gov), "https://monitor.azure.us/");
    let china = [(
        "LOGS_INGESTION_ENDPOINT",
        "https://dce-1.chinanorth3-1.ingest.monitor.azure.cn",
    )];
    assert_eq!(logs(&china), "https://monitor.azure.cn/");
    let set = [
        ("LOGS_INGESTION_ENDPOINT", "http://127.0.0.1:7003"),
        ("LOGS_INGESTION_AUDIENCE", "https://monitor.azure.us"),
    ];
    assert_eq!(logs(&set), "https://monitor.azure.us/");
    let e = errors(&with(&[
        ("LOGS_INGESTION_ENDPOINT", "http://127.0.0.1:7003"),
        (
            "LOGS_DCR_IMMUTABLE_ID",
            "dcr-00000000000000000000000000000000",
        ),
        ("LOGS_INGESTION_AUDIENCE", "http://monitor.azure.us"),
    ]));
    assert!(e.names("LOGS_INGESTION_AUDIENCE"), "{e}");
}

#[test]
fn the_startup_check_is_on_unless_graph_is_loopback_or_it_is_switched() {
    let s = Settings::from_env(&base(), None).expect("valid");
    assert!(s.startup_check, "on by default against the real Graph");
    let local = with(&[("GRAPH_ENDPOINT", "http://127.0.0.1:9/graph")]);
    assert!(
        !Settings::from_env(&local, None)
            .expect("valid")
            .startup_check
    );
    let forced = with(&[
        ("GRAPH_ENDPOINT", "http://localhost:9/graph"),
        ("SYNC_STARTUP_CHECK", "true"),
    ]);
    assert!(
        Settings::from_env(&forced, None)
            .expect("valid")
            .startup_check
    );
    let off = with(&[("SYNC_STARTUP_CHECK", "false")]);
    assert!(!Settings::from_env(&off, None).expect("valid").startup_check);
    let e = errors(&with(&[("SYNC_STARTUP_CHECK", "sometimes")]));
    assert!(e.names("SYNC_STARTUP_CHECK"), "{e:?}");
}

#[test]
fn sentinel_target_is_arm_or_unified_and_nothing_else() {
    for (raw, want) in [
        ("arm", SentinelTarget::Arm),
        ("unified", SentinelTarget::Unified),
        ("Unified", SentinelTarget::Unified),
    ] {
        let env = with(&[
            ("SENTINEL_TARGET", raw),
            ("LOGS_INGESTION_ENDPOINT", "https://dce.example.com"),
            ("LOGS_DCR_IMMUTABLE_ID", "dcr-0123456789abcdef"),
            ("DEFENDER_TENANT_IDS", OTHER),
            ("AZURE_CLIENT_ID", "app"),
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
        ]);
        let s = Settings::from_env(&env, None).expect("valid");
        assert_eq!(s.sentinel_target, want, "{raw}");
    }
    let e = errors(&with(&[("SENTINEL_TARGET", "graph")]));
    assert!(e.names("SENTINEL_TARGET"), "{e}");
    assert!(e.to_string().contains("arm, unified"), "{e}");
    assert_eq!(e.0.len(), 1, "{e}");
    // Without alert ingestion the platform has nothing to make incidents from.
    let e = errors(&with(&[("SENTINEL_TARGET", "unified")]));
    assert!(e.names("SENTINEL_TARGET"), "{e}");
    assert!(e.to_string().contains("LOGS_INGESTION_ENDPOINT"), "{e}");
    // The workspace tenant's own incidents are in the unified portal already: never a source.
    let e = errors(&with(&[
        ("SENTINEL_TARGET", "unified"),
        ("LOGS_INGESTION_ENDPOINT", "https://dce.example.com"),
        ("LOGS_DCR_IMMUTABLE_ID", "dcr-0123456789abcdef"),
        ("DEFENDER_TENANT_IDS", &format!("{OTHER},{TENANT}")),
        ("AZURE_CLIENT_ID", "app"),
        ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
    ]));
    assert!(e.names("DEFENDER_TENANT_IDS"), "{e}");
    assert_eq!(e.0.len(), 1, "{e}");
}

#[test]
fn the_call_timeout_defaults_to_30_seconds_and_refuses_what_is_not_a_sane_duration() {
    let s = Settings::from_env(&with(&[]), None).expect("valid");
    assert_eq!(s.call_timeout, Duration::from_secs(30));
    let s =
        Settings::from_env(&with(&[("SYNC_CALL_TIMEOUT_SECONDS", "1.5")]), None).expect("valid");
    assert_eq!(s.call_timeout, Duration::from_millis(1500));
    for bad in ["0", "-1", "601", "soon", "NaN"] {
        let e = Settings::from_env(&with(&[("SYNC_CALL_TIMEOUT_SECONDS", bad)]), None).unwrap_err();
        assert!(
            e.to_string().contains("SYNC_CALL_TIMEOUT_SECONDS"),
            "{bad}: {e}"
        );
    }
}
