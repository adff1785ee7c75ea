//! The deployment templates in `infra/` agree with the code, checked without Azure: the Bicep
//! is parsed with pycep (`infra/tests/extract.py`) and scanned with checkov, both from the venv
//! `scripts/test.sh` creates (`.venv-infra/`, pinned in `infra/tests/requirements.txt`).
//! Missing tools fail these tests, naming the install step: they are never skipped.
//!
//! - the settings the templates set are enough for the handler to start, and cover every setting
//!   of the README's table;
//! - the DCR stream and the custom table declare exactly `STREAM_COLUMNS`;
//! - the roles granted are exactly those the adapters' calls need (`adapters::calls`), plus the
//!   platform's, and `docs/permissions.md` says the same;
//! - every operation the adapters send is in the call list;
//! - `checkov --skip-download -d infra --framework bicep` passes (findings fixed or skipped
//!   inline with a reason).
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

mod support;

use defender_sentinel_sync::adapters::calls::{
    self, CALLS, Grant, PLATFORM_ROLES, ROLE_IDS, Upstream,
};
use defender_sentinel_sync::adapters::logs::STREAM_COLUMNS;
use defender_sentinel_sync::config::{CredentialSettings, Settings, StorageConfig, WebhookAuth};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const INSTALL: &str = "run scripts/test.sh (it creates .venv-infra/), or by hand: \
python3 -m venv .venv-infra && .venv-infra/bin/pip install -r infra/tests/requirements.txt";

/// The venv's bin directory (`DSS_INFRA_VENV` overrides `.venv-infra/`; set but empty, it
/// does not).
fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var_os("DSS_INFRA_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo().join(".venv-infra"));
    let path = venv.join("bin").join(tool);
    assert!(
        path.exists(),
        "{} is missing: the template tests need pycep-parser and checkov; {INSTALL}",
        path.display()
    );
    path
}

/// What `infra/tests/extract.py` reads from the templates.
fn facts() -> &'static Value {
    static FACTS: OnceLock<Value> = OnceLock::new();
    FACTS.get_or_init(|| {
        let repo = support::repo();
        let out = Command::new(venv_bin("python"))
            .arg(repo.join("infra/tests/extract.py"))
            .arg(repo.join("infra"))
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "extract.py failed ({INSTALL}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("extract.py prints JSON")
    })
}

/// Values the template leaves to deployment time (tenant(), environment(), resource
/// properties, Key Vault references the platform resolves), as a deployment in the public
/// cloud gets them.
fn deployed_value(name: &str) -> Option<&'static str> {
    Some(match name {
        "AZURE_TENANT_ID" => "72f988bf-86f1-41af-91ab-2d7cd011db47",
        // empty(clientSecretName) ? '' : Key Vault reference; the default name is empty.
        "AZURE_CLIENT_SECRET" => "",
        "AZURE_AUTHORITY_HOST" => "https://login.microsoftonline.com/",
        "GRAPH_ENDPOINT" => "https://graph.microsoft.com/",
        "ARM_ENDPOINT" => "https://management.azure.com/",
        "SENTINEL_SUBSCRIPTION_ID" => "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
        "SENTINEL_RESOURCE_GROUP" => "rg-sentinel",
        "SENTINEL_WORKSPACE_NAME" => "law-sentinel",
        "LOGS_INGESTION_ENDPOINT" => "https://dce-dss-abc-x1y2.eastus-1.ingest.monitor.azure.com",
        "LOGS_DCR_IMMUTABLE_ID" => "dcr-0123456789abcdef0123456789abcdef",
        "LOGS_STREAM_NAME" => "Custom-DefenderAlerts_CL",
        // The platform resolves the Key Vault reference to the secret's value.
        "WEBHOOK_SECRET" => "a-webhook-secret-of-32-characters",
        "AzureWebJobsStorage__accountName" => "stdssabc123",
        "AzureWebJobsStorage__tableServiceUri" => "https://stdssabc123.table.core.windows.net/",
        "APPLICATIONINSIGHTS_CONNECTION_STRING" => {
            "InstrumentationKey=00000000-0000-0000-0000-000000000000"
        }
        _ => return None,
    })
}

fn app_settings() -> HashMap<String, Option<String>> {
    facts()["app_settings"]
        .as_object()
        .expect("app_settings")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned)))
        .collect()
}

#[test]
fn the_templates_settings_start_the_handler_as_deployed() {
    let mut env: HashMap<String, String> = HashMap::new();
    for (name, value) in app_settings() {
        let value = match value {
            Some(v) => v,
            None => deployed_value(&name)
                .unwrap_or_else(|| {
                    panic!("{name}: the template computes it; add its deployed value to deployed_value()")
                })
                .to_owned(),
        };
        env.insert(name, value);
    }
    // What the platform adds for the system-assigned managed identity.
    env.insert(
        "IDENTITY_ENDPOINT".into(),
        "http://169.254.255.2:8081/msi/token".into(),
    );
    env.insert("IDENTITY_HEADER".into(), "platform".into());
    let host_json = std::fs::read_to_string(support::repo().join("host.json")).unwrap();
    let settings = Settings::from_env(&env, Some(&host_json))
        .unwrap_or_else(|e| panic!("the deployed settings do not start the handler:\n{e}"));
    assert!(
        matches!(
            settings.credential,
            CredentialSettings::ManagedIdentity { client_id: None }
        ),
        "the system-assigned identity by default"
    );
    assert!(matches!(
        settings.storage,
        Some(StorageConfig::Identity { .. })
    ));
    assert!(matches!(
        settings.webhook_auth,
        WebhookAuth::SharedSecret(_)
    ));
    let logs = settings.logs.expect("alert ingestion on by default");
    assert_eq!(logs.stream_name, facts()["stream_name"].as_str().unwrap());
    assert_eq!(
        settings.defender_tenants,
        vec![settings.azure_tenant_id.clone()]
    );
    assert!(settings.startup_check);
    assert_eq!(settings.state_table, "DefenderSentinelSync");
}

/// The names in the README's Configuration table (`| \`NAME\`, \`NAME\` | …`).
fn readme_settings() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    let section = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Configuration section");
    let mut names = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap_or("");
        for part in first.split('`').skip(1).step_by(2) {
            names.insert(part.to_owned());
        }
    }
    assert!(names.len() > 20, "{names:?}");
    names
}

#[test]
fn the_templates_set_every_setting_of_the_readme() {
    let set = app_settings();
    // Not app settings of a deployment: the platform's identity endpoint, and the
    // connection-string form of the storage connection (the template uses the identity-based
    // pair; the account allows no shared keys).
    let not_set = [
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "AzureWebJobsStorage",
    ];
    let missing: Vec<_> = readme_settings()
        .into_iter()
        .filter(|n| !not_set.contains(&n.as_str()) && !set.contains_key(n))
        .collect();
    assert!(
        missing.is_empty(),
        "infra/main.bicep does not set {missing:?}"
    );
    for name in not_set {
        assert!(!set.contains_key(name), "{name} must not be set");
    }
    // Flex Consumption takes the runtime from functionAppConfig, not from this setting.
    assert!(!set.contains_key("FUNCTIONS_WORKER_RUNTIME"));
    assert_eq!(facts()["runtime"]["name"], "custom");
    assert_eq!(facts()["plan_sku"]["tier"], "FlexConsumption");
    assert_eq!(facts()["identity"], "SystemAssigned");
}

#[test]
fn the_stream_and_the_table_declare_exactly_the_columns_the_rows_carry() {
    let expected: Vec<Value> = STREAM_COLUMNS
        .iter()
        .map(|(n, t)| serde_json::json!([n, t]))
        .collect();
    let f = facts();
    assert_eq!(
        f["stream_columns"].as_array().unwrap(),
        &expected,
        "DCR streamDeclarations"
    );
    assert_eq!(
        f["table_columns"].as_array().unwrap(),
        &expected,
        "DefenderAlerts_CL schema"
    );
    assert_eq!(f["stream_name"], "Custom-DefenderAlerts_CL");
    assert_eq!(f["table_name"], "DefenderAlerts_CL");
    assert_eq!(
        f["data_flow_stream_values"],
        serde_json::json!(["Custom-DefenderAlerts_CL"])
    );
}

fn role_id(role: &str) -> &'static str {
    ROLE_IDS
        .iter()
        .find(|(r, _)| *r == role)
        .map(|(_, id)| *id)
        .unwrap_or_else(|| panic!("{role} is not in calls::ROLE_IDS"))
}

#[test]
fn the_roles_granted_are_exactly_those_the_calls_and_the_platform_need() {
    let assignments = facts()["role_assignments"].as_array().unwrap();
    let of = |identity: &str| -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = assignments
            .iter()
            .filter(|a| a["identity"] == identity)
            .map(|a| {
                let role = a["role"].as_str().unwrap();
                assert_eq!(
                    a["role_id"].as_str(),
                    Some(role_id(role)),
                    "{role}: wrong role definition id"
                );
                (role, a["scope"].as_str().unwrap_or("resourceGroup"))
            })
            .collect();
        v.sort_unstable();
        v
    };
    // The handler's identity (the managed identity, or the MSSP app): exactly what its calls
    // need, each on the resource the calls use.
    let handler = of("principalId");
    let expected: Vec<&str> = calls::granted(Grant::AzureRole);
    assert_eq!(
        handler.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        handler,
        vec![
            ("Microsoft Sentinel Contributor", "workspace"),
            ("Monitoring Metrics Publisher", "dcr"),
            ("Storage Table Data Contributor", "storage"),
        ]
    );
    // The app's managed identity, for the platform: exactly calls::PLATFORM_ROLES.
    let platform = of("platformPrincipalId");
    let mut expected: Vec<&str> = PLATFORM_ROLES.iter().map(|(r, _)| *r).collect();
    expected.sort_unstable();
    assert_eq!(
        platform.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        platform,
        vec![
            ("Key Vault Secrets User", "vault"),
            ("Storage Blob Data Owner", "storage")
        ]
    );
    // The other identities: the playbook reads the webhook secret; Sentinel's automation
    // identity runs the playbook (on the resource group).
    let others = of("other");
    assert_eq!(
        others,
        vec![
            ("Key Vault Secrets User", "vault"),
            ("Microsoft Sentinel Automation Contributor", "resourceGroup"),
        ]
    );
}

#[test]
fn the_automation_rules_run_on_created_and_on_updated_except_by_applications() {
    let rules = facts()["automation_rules"].as_array().unwrap();
    let when: BTreeSet<&str> = rules
        .iter()
        .map(|r| r["triggers_when"].as_str().unwrap())
        .collect();
    assert_eq!(when, BTreeSet::from(["Created", "Updated"]));
    let updated = rules
        .iter()
        .find(|r| r["triggers_when"] == "Updated")
        .unwrap();
    let c = &updated["conditions"][0]["conditionProperties"];
    assert_eq!(c["propertyName"], "IncidentUpdatedBySource");
    assert_eq!(c["operator"], "NotEquals");
    assert_eq!(c["propertyValues"], serde_json::json!(["Application"]));
}

/// The playbook posts the trigger body to SentinelWebhook's route (function-defs + host.json's
/// route prefix) with the function key, and the secret header or a managed-identity token.
#[test]
fn the_playbook_posts_the_trigger_body_to_the_webhook_route() {
    let repo = support::repo();
    let def: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("function-defs/SentinelWebhook/function.json")).unwrap(),
    )
    .unwrap();
    let host: Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("host.json")).unwrap()).unwrap();
    let route = format!(
        "/{}/{}",
        host["extensions"]["http"]["routePrefix"].as_str().unwrap(),
        def["bindings"][0]["route"].as_str().unwrap()
    );
    let f = facts();
    let url = f["webhook_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://") && url.ends_with(&route),
        "{url} vs {route}"
    );
    for mode in ["secret", "entra"] {
        let post = &f["playbook_posts"][mode];
        assert_eq!(post["method"], "POST", "{mode}");
        assert_eq!(post["uri"], "webhookUrl", "{mode}");
        assert_eq!(post["body"], "@triggerBody()", "{mode}");
        assert!(
            post["queries"]["code"]
                .as_str()
                .unwrap()
                .contains("functionKey"),
            "{mode}: the function key goes in ?code="
        );
    }
    let secret = &f["playbook_posts"]["secret"];
    assert!(
        secret["headers"]["X-Sync-Secret"]
            .as_str()
            .unwrap()
            .contains("Get_webhook_secret"),
        "{secret}"
    );
    let entra = &f["playbook_posts"]["entra"];
    assert_eq!(entra["authentication"]["type"], "ManagedServiceIdentity");
    assert_eq!(entra["authentication"]["audience"], "webhookAudience");
    assert!(entra["headers"].get("X-Sync-Secret").is_none());
}

#[test]
fn the_permissions_doc_lists_every_call_with_its_permission() {
    let doc = std::fs::read_to_string(support::repo().join("docs/permissions.md")).unwrap();
    let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `")).collect();
    for call in CALLS {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `{}` |", call.op)))
            .unwrap_or_else(|| panic!("docs/permissions.md has no row for {}", call.op));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], call.upstream.name(), "{row}");
        assert_eq!(cells[3], call.method, "{row}");
        assert_eq!(cells[4], format!("`{}`", call.path), "{row}");
        assert_eq!(cells[5], call.permission, "{row}");
        assert_eq!(cells[6], calls::granted_for(call), "{row}");
        assert_eq!(cells[7], call.scope, "{row}");
    }
    let ops: BTreeSet<&str> = CALLS.iter().map(|c| c.op).collect();
    for row in &rows {
        let op = row.split('`').nth(1).unwrap();
        if op.contains('.') && !op.contains(' ') && op.chars().next().unwrap().is_ascii_lowercase()
        {
            assert!(
                ops.contains(op),
                "docs/permissions.md lists {op}, which no adapter calls"
            );
        }
    }
    for grant in calls::granted(Grant::GraphAppRole) {
        assert!(
            doc.contains(&format!("`{grant}`")),
            "the consent commands must name {grant}"
        );
    }
    for (role, _) in PLATFORM_ROLES {
        assert!(doc.contains(role), "{role}");
    }
}

/// Operation names (`"graph.…"`, `"arm.…"`, `"logs.…"`, `"unified.…"`) in the adapters' sources, and the
/// Table client's public methods.
#[test]
fn every_operation_the_adapters_send_is_in_the_call_list() {
    let root = support::repo().join("src/adapters");
    let mut files = vec![];
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("calls.rs") {
                files.push(p);
            }
        }
    }
    let mut sent = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for prefix in ["\"graph.", "\"arm.", "\"logs.", "\"unified."] {
            for (i, _) in text.match_indices(prefix) {
                let rest = &text[i + 1..];
                let end = rest.find('"').unwrap();
                let op = &rest[..end];
                if op
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                {
                    sent.insert(op.to_owned());
                }
            }
        }
    }
    let table = std::fs::read_to_string(root.join("table/client.rs")).unwrap();
    for (i, _) in table.match_indices("pub async fn ") {
        let rest = &table[i + "pub async fn ".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        sent.insert(format!("table.{name}"));
    }
    let listed: BTreeSet<String> = CALLS.iter().map(|c| c.op.to_owned()).collect();
    assert!(sent.len() >= 20, "{sent:?}");
    assert_eq!(
        sent, listed,
        "calls::CALLS and the adapters' operations differ"
    );
    // Every upstream has its calls.
    for u in [
        Upstream::Graph,
        Upstream::Arm,
        Upstream::Logs,
        Upstream::Table,
    ] {
        assert!(CALLS.iter().any(|c| c.upstream == u), "{u:?}");
    }
}

#[test]
fn checkov_passes_on_the_templates() {
    let checkov = venv_bin("checkov");
    let out = Command::new(checkov)
        .args([
            "--skip-download",
            "--framework",
            "bicep",
            "--compact",
            "--quiet",
            "-d",
        ])
        .arg(support::repo().join("infra"))
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
        .output()
        .expect("checkov runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "checkov found problems (fix them, or skip one inline with //checkov:skip=ID:reason):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It did scan: the templates have resources it checks.
    assert!(stdout.contains("Passed checks: "), "{stdout}");
    assert!(stdout.contains("Failed checks: 0,"), "{stdout}");
}
