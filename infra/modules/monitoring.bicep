// Application Insights (on the Sentinel workspace), the DefenderAlerts_CL table with its Data
// Collection Endpoint and Rule, and saved KQL queries for sync health and the alert table.
param location string
param tags object
param workspaceName string
param insightsName string
param dceName string
param dcrName string
param enableAlertIngestion bool

// The stream's columns: exactly defender_sentinel_sync::adapters::logs::STREAM_COLUMNS, in its
// order (tests/infra.rs compares them). Change both together.
var streamColumns = [
  { name: 'TimeGenerated', type: 'datetime' }
  { name: 'RowId', type: 'string' }
  { name: 'ContentFingerprint', type: 'string' }
  { name: 'RowKind', type: 'string' }
  { name: 'SourceTenantId', type: 'string' }
  { name: 'DefenderIncidentId', type: 'string' }
  { name: 'SentinelIncidentName', type: 'string' }
  { name: 'AlertId', type: 'string' }
  { name: 'AlertTitle', type: 'string' }
  { name: 'AlertSeverity', type: 'string' }
  { name: 'AlertStatus', type: 'string' }
  { name: 'ServiceSource', type: 'string' }
  { name: 'DetectionSource', type: 'string' }
  { name: 'Category', type: 'string' }
  { name: 'MitreTechniques', type: 'dynamic' }
  { name: 'AlertCreatedTime', type: 'datetime' }
  { name: 'AlertLastUpdateTime', type: 'datetime' }
  { name: 'FirstActivityTime', type: 'datetime' }
  { name: 'LastActivityTime', type: 'datetime' }
  { name: 'EvidenceIndex', type: 'int' }
  { name: 'EvidenceType', type: 'string' }
  { name: 'EvidenceKey', type: 'string' }
  { name: 'Verdict', type: 'string' }
  { name: 'RemediationStatus', type: 'string' }
  { name: 'EvidenceRoles', type: 'dynamic' }
  { name: 'RawJson', type: 'string' }
  { name: 'RawJson2', type: 'string' }
  { name: 'RawJson3', type: 'string' }
  { name: 'RawJson4', type: 'string' }
  { name: 'RawJson5', type: 'string' }
  { name: 'RawJson6', type: 'string' }
  { name: 'RawJson7', type: 'string' }
  { name: 'RawJson8', type: 'string' }
  { name: 'RawJson9', type: 'string' }
  { name: 'RawJson10', type: 'string' }
  { name: 'RawJson11', type: 'string' }
  { name: 'RawJson12', type: 'string' }
  { name: 'RawJson13', type: 'string' }
  { name: 'RawJson14', type: 'string' }
  { name: 'RawJson15', type: 'string' }
  { name: 'RawJson16', type: 'string' }
  { name: 'RawTruncated', type: 'boolean' }
]
var tableName = 'DefenderAlerts_CL'
var streamName = 'Custom-${tableName}'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: insightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'other'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: false
  }
}

resource table 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = if (enableAlertIngestion) {
  parent: workspace
  name: tableName
  properties: {
    plan: 'Analytics'
    schema: {
      name: tableName
      columns: streamColumns
    }
  }
}

resource dce 'Microsoft.Insights/dataCollectionEndpoints@2023-03-11' = if (enableAlertIngestion) {
  name: dceName
  location: location
  tags: tags
  properties: {
    networkAcls: {
      publicNetworkAccess: 'Enabled'
    }
  }
}

resource dcr 'Microsoft.Insights/dataCollectionRules@2023-03-11' = if (enableAlertIngestion) {
  name: dcrName
  location: location
  tags: tags
  dependsOn: [table]
  properties: {
    dataCollectionEndpointId: dce.id
    streamDeclarations: {
      'Custom-DefenderAlerts_CL': {
        columns: streamColumns
      }
    }
    destinations: {
      logAnalytics: [
        {
          workspaceResourceId: workspace.id
          name: 'sentinel'
        }
      ]
    }
    dataFlows: [
      {
        streams: [streamName]
        destinations: ['sentinel']
        transformKql: 'source'
        outputStream: streamName
      }
    ]
  }
}

// Saved queries (Logs > Queries > "defender-sentinel-sync"). The handler's log lines reach
// AppTraces through Application Insights; under the Functions host they are JSON (docs/runbook.md).
var queries = [
  {
    name: 'dss-cycle-summary'
    displayName: 'Sync cycles: the one summary line per cycle'
    query: 'AppTraces\n| where Message has "\\"message\\":\\"Cycle summary."\n| extend m = parse_json(Message)\n| project TimeGenerated, direction = tostring(m.direction), tenants = toint(m.tenants), seen = toint(m.seen), written = toint(m.written), failed = toint(m.failed), parked = toint(m.parked), throttled = toint(m.throttled), lagSeconds = toint(m.lag_seconds), outcome = tostring(m.outcome)\n| order by TimeGenerated desc'
  }
  {
    name: 'dss-sync-health'
    displayName: 'Sync health per Defender tenant (last 24 h): cycles not completed, failures, parked, throttling (lag: see the cycle summary)'
    query: 'AppTraces\n| where TimeGenerated > ago(24h) and Message has "\\"message\\":\\"Forward cycle finished."\n| extend m = parse_json(Message)\n| summarize cycles = count(), notCompleted = countif(tobool(m.completed) == false), seen = sum(toint(m.seen)), written = sum(toint(m.written)), failed = sum(toint(m.failed)), parked = sum(toint(m.parked)), throttled = sum(toint(m.throttled)), lastCycle = max(TimeGenerated) by tenant = tostring(m.tenant)\n| extend minutesSinceLastCycle = datetime_diff("minute", now(), lastCycle)\n| order by notCompleted desc, failed desc'
  }
  {
    name: 'dss-errors'
    displayName: 'Sync warnings, errors and missing permissions (self-check)'
    query: 'AppTraces\n| where Message has_any ("\\"level\\":\\"ERROR\\"", "\\"level\\":\\"WARN\\"")\n| extend m = parse_json(Message)\n| mv-apply s = m.spans on (summarize invocationId = take_anyif(tostring(s.invocation_id), isnotempty(s.invocation_id)), incidentId = take_anyif(tostring(s.incident_id), isnotempty(s.incident_id)), spanTenant = take_anyif(tostring(s.tenant), isnotempty(s.tenant)))\n| project TimeGenerated, level = tostring(m.level), message = tostring(m.message), tenant = coalesce(tostring(m.tenant), spanTenant), incidentId, invocationId, line = tostring(m.line), error = tostring(m.error), Message\n| order by TimeGenerated desc'
  }
  {
    name: 'dss-alerts'
    displayName: 'Defender alerts (one row per alert, latest content)'
    query: 'DefenderAlerts_CL\n| where RowKind == "alert"\n| summarize arg_max(TimeGenerated, *) by RowId\n| summarize arg_max(AlertLastUpdateTime, *) by SourceTenantId, AlertId\n| project AlertLastUpdateTime, SourceTenantId, DefenderIncidentId, SentinelIncidentName, AlertId, AlertTitle, AlertSeverity, AlertStatus, ServiceSource, Category, MitreTechniques'
  }
  {
    name: 'dss-evidence'
    displayName: 'Defender alert evidence'
    query: 'DefenderAlerts_CL\n| where RowKind == "evidence"\n| summarize arg_max(TimeGenerated, *) by RowId\n| project TimeGenerated, SourceTenantId, DefenderIncidentId, AlertId, EvidenceIndex, EvidenceType, EvidenceKey, Verdict, RemediationStatus, EvidenceRoles'
  }
  {
    name: 'dss-ingestion-volume'
    displayName: 'Alert table volume per tenant and day'
    query: 'DefenderAlerts_CL\n| summarize rows = count(), alerts = countif(RowKind == "alert"), evidence = countif(RowKind == "evidence"), truncated = countif(RawTruncated) by SourceTenantId, bin(TimeGenerated, 1d)'
  }
]

resource savedSearches 'Microsoft.OperationalInsights/workspaces/savedSearches@2020-08-01' = [for q in queries: {
  parent: workspace
  name: q.name
  properties: {
    category: 'defender-sentinel-sync'
    displayName: q.displayName
    query: q.query
    version: 2
  }
}]

output insightsConnectionString string = insights.properties.ConnectionString
output logsIngestionEndpoint string = enableAlertIngestion ? dce.properties.logsIngestion.endpoint : ''
output dcrImmutableId string = enableAlertIngestion ? dcr.properties.immutableId : ''
output streamName string = streamName
