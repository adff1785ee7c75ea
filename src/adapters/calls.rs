//! Every upstream call the adapters make, with the permission or role it needs: the source of
//! `docs/permissions.md`, of the role assignments in `infra/` and of what `check` names when a
//! call is refused. `tests/infra.rs` keeps the three in agreement, and checks that every
//! operation name the adapters send (`Call::op`) is listed here.

/// The upstream API of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Upstream {
    /// Microsoft Graph (Defender XDR incidents; users of the Sentinel tenant).
    Graph,
    /// Azure Resource Manager, `Microsoft.SecurityInsights` (Sentinel incidents).
    Arm,
    /// Azure Monitor Logs Ingestion (the DCR's stream).
    Logs,
    /// Azure Table Storage (the sync state).
    Table,
}

impl Upstream {
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Graph => "Microsoft Graph",
            Upstream::Arm => "Azure Resource Manager (Sentinel)",
            Upstream::Logs => "Logs Ingestion",
            Upstream::Table => "Table Storage",
        }
    }
}

/// How a permission is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grant {
    /// A Microsoft Graph application permission (app role) with admin consent, in `where_`.
    GraphAppRole,
    /// An Azure built-in role assigned to the identity on `where_`.
    AzureRole,
}

/// One call an adapter makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamCall {
    pub upstream: Upstream,
    /// The operation name the adapter gives the HTTP layer (`Call::op`), or `table.<method>`.
    pub op: &'static str,
    pub method: &'static str,
    /// The path, with `{placeholders}`.
    pub path: &'static str,
    /// The least permission or role that allows it.
    pub permission: &'static str,
    pub grant: Grant,
    /// Where the permission is granted.
    pub scope: &'static str,
}

const SECURITY_READ: &str = "SecurityIncident.Read.All";
const SECURITY_WRITE: &str = "SecurityIncident.ReadWrite.All";
const ALERT_READ: &str = "SecurityAlert.Read.All";
const USER_READ: &str = "User.Read.All";
const SENTINEL_READER: &str = "Microsoft Sentinel Reader";
const SENTINEL_CONTRIBUTOR: &str = "Microsoft Sentinel Contributor";
const METRICS_PUBLISHER: &str = "Monitoring Metrics Publisher";
const TABLE_CONTRIBUTOR: &str = "Storage Table Data Contributor";

const EACH_DEFENDER_TENANT: &str = "each Defender tenant (DEFENDER_TENANT_IDS)";
const SENTINEL_TENANT: &str = "the Sentinel tenant (AZURE_TENANT_ID)";
const WORKSPACE_TENANT: &str =
    "the workspace's tenant (AZURE_TENANT_ID), only with SENTINEL_TARGET=unified";
const WORKSPACE: &str = "the Sentinel workspace";
const DCR: &str = "the data collection rule";
const STORAGE: &str = "the storage account (identity-based connection only)";

const fn graph(
    op: &'static str,
    method: &'static str,
    path: &'static str,
    permission: &'static str,
) -> UpstreamCall {
    UpstreamCall {
        upstream: Upstream::Graph,
        op,
        method,
        path,
        permission,
        grant: Grant::GraphAppRole,
        scope: EACH_DEFENDER_TENANT,
    }
}

/// A Graph call of the unified target (`SENTINEL_TARGET=unified`): in the workspace's tenant,
/// where the platform keeps the incidents its analytics rule made.
const fn unified(
    op: &'static str,
    method: &'static str,
    path: &'static str,
    permission: &'static str,
) -> UpstreamCall {
    UpstreamCall {
        scope: WORKSPACE_TENANT,
        ..graph(op, method, path, permission)
    }
}

const fn arm(
    op: &'static str,
    method: &'static str,
    path: &'static str,
    permission: &'static str,
) -> UpstreamCall {
    UpstreamCall {
        upstream: Upstream::Arm,
        op,
        method,
        path,
        permission,
        grant: Grant::AzureRole,
        scope: WORKSPACE,
    }
}

const fn table(op: &'static str, method: &'static str, path: &'static str) -> UpstreamCall {
    UpstreamCall {
        upstream: Upstream::Table,
        op,
        method,
        path,
        permission: TABLE_CONTRIBUTOR,
        grant: Grant::AzureRole,
        scope: STORAGE,
    }
}

const INCIDENTS: &str = "/v1.0/security/incidents";
const INCIDENT: &str = "/v1.0/security/incidents/{id}";
const ARM_INCIDENTS: &str = "{workspace}/providers/Microsoft.SecurityInsights/incidents";
const ARM_INCIDENT: &str = "{workspace}/providers/Microsoft.SecurityInsights/incidents/{name}";
const ARM_COMMENTS: &str =
    "{workspace}/providers/Microsoft.SecurityInsights/incidents/{name}/comments";

/// Every call, per adapter.
pub const CALLS: &[UpstreamCall] = &[
    graph(
        "graph.count_incidents",
        "GET",
        "/v1.0/security/incidents?$count=true&$top=1",
        SECURITY_READ,
    ),
    graph("graph.list_incidents", "GET", INCIDENTS, SECURITY_READ),
    graph(
        "graph.next_page",
        "GET",
        "@odata.nextLink (same host)",
        SECURITY_READ,
    ),
    graph(
        "graph.get_incident",
        "GET",
        "/v1.0/security/incidents/{id}?$expand=alerts",
        SECURITY_READ,
    ),
    graph(
        "graph.alerts_for_incident",
        "GET",
        "/v1.0/security/incidents/{id}?$expand=alerts",
        SECURITY_READ,
    ),
    graph("graph.update_incident", "PATCH", INCIDENT, SECURITY_WRITE),
    graph(
        "graph.add_comment",
        "POST",
        "/v1.0/security/incidents/{id}/comments",
        SECURITY_WRITE,
    ),
    UpstreamCall {
        scope: SENTINEL_TENANT,
        ..graph("graph.resolve_user", "GET", "/v1.0/users/{upn}", USER_READ)
    },
    unified(
        "unified.scan_alerts",
        "GET",
        "/v1.0/security/alerts_v2?$filter=serviceSource eq 'microsoftSentinel' and createdDateTime ge {t}",
        ALERT_READ,
    ),
    unified(
        "unified.list_modified",
        "GET",
        "/v1.0/security/incidents?$filter=lastUpdateDateTime ge {t}&$expand=alerts",
        SECURITY_READ,
    ),
    unified(
        "unified.get_incident",
        "GET",
        "/v1.0/security/incidents/{id}?$expand=alerts",
        SECURITY_READ,
    ),
    unified("unified.update_incident", "PATCH", INCIDENT, SECURITY_WRITE),
    unified(
        "unified.add_comment",
        "POST",
        "/v1.0/security/incidents/{id}/comments",
        SECURITY_WRITE,
    ),
    arm("arm.list_incidents", "GET", ARM_INCIDENTS, SENTINEL_READER),
    arm("arm.get_incident", "GET", ARM_INCIDENT, SENTINEL_READER),
    arm(
        "arm.put_incident",
        "PUT",
        ARM_INCIDENT,
        SENTINEL_CONTRIBUTOR,
    ),
    arm("arm.list_comments", "GET", ARM_COMMENTS, SENTINEL_READER),
    arm(
        "arm.put_comment",
        "PUT",
        "{workspace}/providers/Microsoft.SecurityInsights/incidents/{name}/comments/{id}",
        SENTINEL_CONTRIBUTOR,
    ),
    UpstreamCall {
        upstream: Upstream::Logs,
        op: "logs.upload",
        method: "POST",
        path: "{LOGS_INGESTION_ENDPOINT}/dataCollectionRules/{LOGS_DCR_IMMUTABLE_ID}/streams/{LOGS_STREAM_NAME}",
        permission: METRICS_PUBLISHER,
        grant: Grant::AzureRole,
        scope: DCR,
    },
    table("table.create_table_if_missing", "POST", "/Tables"),
    table(
        "table.get",
        "GET",
        "/{table}(PartitionKey='{pk}',RowKey='{rk}')",
    ),
    table("table.insert", "POST", "/{table}"),
    table(
        "table.replace",
        "PUT",
        "/{table}(PartitionKey='{pk}',RowKey='{rk}') If-Match",
    ),
    table(
        "table.merge",
        "MERGE",
        "/{table}(PartitionKey='{pk}',RowKey='{rk}') If-Match",
    ),
    table(
        "table.upsert",
        "PUT",
        "/{table}(PartitionKey='{pk}',RowKey='{rk}')",
    ),
    table(
        "table.delete",
        "DELETE",
        "/{table}(PartitionKey='{pk}',RowKey='{rk}')",
    ),
    table("table.query", "GET", "/{table}()?$filter=…"),
    table(
        "table.query_all",
        "GET",
        "/{table}()?$filter=… (every page)",
    ),
    table("table.batch", "POST", "/$batch"),
];

/// `(broader, narrower)`: the broader permission includes the narrower one.
pub const INCLUDES: &[(&str, &str)] = &[
    (SECURITY_WRITE, SECURITY_READ),
    (SENTINEL_CONTRIBUTOR, SENTINEL_READER),
];

/// Roles the identity needs for the platform rather than for the handler's own calls.
pub const PLATFORM_ROLES: &[(&str, &str)] = &[
    (
        "Storage Blob Data Owner",
        "the Functions host's timer locks (blob leases) and the Flex Consumption deployment package, in the app's storage account",
    ),
    (
        "Key Vault Secrets User",
        "Key Vault references in app settings (WEBHOOK_SECRET, AZURE_CLIENT_SECRET), on the app's key vault",
    ),
];

/// Built-in Azure role definition ids (the same in every cloud), for the roles above.
pub const ROLE_IDS: &[(&str, &str)] = &[
    (SENTINEL_READER, "8d289c81-5878-46d4-8554-54e1e3d8b5cb"),
    (SENTINEL_CONTRIBUTOR, "ab8e14d6-4a74-4a29-9ba8-549422addade"),
    (METRICS_PUBLISHER, "3913510d-42f4-4e42-8a64-420c390055eb"),
    (TABLE_CONTRIBUTOR, "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"),
    (
        "Storage Blob Data Owner",
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    ),
    (
        "Key Vault Secrets User",
        "4633458b-17de-408a-b874-0445c86b69e6",
    ),
    // Not the handler's: Sentinel's automation identity needs it to run the playbook.
    (
        "Microsoft Sentinel Automation Contributor",
        "f4c81013-99ee-4d62-a7ee-b3f1f648599a",
    ),
];

/// The permissions to grant, per kind: the calls' permissions, without those a broader one
/// in the same set includes (sorted, each once).
pub fn granted(grant: Grant) -> Vec<&'static str> {
    let mut all: Vec<&'static str> = CALLS
        .iter()
        .filter(|c| c.grant == grant)
        .map(|c| c.permission)
        .collect();
    all.sort_unstable();
    all.dedup();
    let covered = |p: &str| {
        INCLUDES
            .iter()
            .any(|(broad, narrow)| *narrow == p && all.contains(broad))
    };
    all.iter().copied().filter(|p| !covered(p)).collect()
}

/// The permission to grant (after [`INCLUDES`]) that covers a call's permission.
pub fn granted_for(call: &UpstreamCall) -> &'static str {
    let grants = granted(call.grant);
    if grants.contains(&call.permission) {
        return call.permission;
    }
    INCLUDES
        .iter()
        .find(|(broad, narrow)| *narrow == call.permission && grants.contains(broad))
        .map(|(broad, _)| *broad)
        .unwrap_or(call.permission)
}

/// The call with this operation name.
pub fn call(op: &str) -> Option<&'static UpstreamCall> {
    CALLS.iter().find(|c| c.op == op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grants_are_the_broadest_permission_of_each_family() {
        assert_eq!(
            granted(Grant::GraphAppRole),
            vec![ALERT_READ, SECURITY_WRITE, USER_READ]
        );
        assert_eq!(
            granted(Grant::AzureRole),
            vec![SENTINEL_CONTRIBUTOR, METRICS_PUBLISHER, TABLE_CONTRIBUTOR]
        );
        let list = call("graph.list_incidents").map(granted_for);
        assert_eq!(list, Some(SECURITY_WRITE));
        assert_eq!(
            call("unified.list_modified").map(granted_for),
            Some(SECURITY_WRITE)
        );
        assert_eq!(
            call("unified.scan_alerts").map(|c| (granted_for(c), c.scope)),
            Some((ALERT_READ, WORKSPACE_TENANT))
        );
        assert_eq!(
            call("arm.get_incident").map(granted_for),
            Some(SENTINEL_CONTRIBUTOR)
        );
    }

    #[test]
    fn every_operation_is_listed_once_and_every_role_has_its_id() {
        let mut ops: Vec<_> = CALLS.iter().map(|c| c.op).collect();
        ops.sort_unstable();
        let n = ops.len();
        ops.dedup();
        assert_eq!(ops.len(), n, "an operation is listed twice");
        for role in granted(Grant::AzureRole)
            .into_iter()
            .chain(PLATFORM_ROLES.iter().map(|(r, _)| *r))
        {
            assert!(ROLE_IDS.iter().any(|(r, _)| *r == role), "{role} has no id");
        }
    }
}
