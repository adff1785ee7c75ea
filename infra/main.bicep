// defender-sentinel-sync: everything the handler needs next to an existing Microsoft Sentinel
// workspace. Deploy into the resource group that holds the workspace:
//   az deployment group create -g <rg> -f infra/main.bicep -p @infra/main.parameters.json
// Parameters are documented in infra/README.md and below (@description).
targetScope = 'resourceGroup'

@description('Azure region of the new resources (Flex Consumption must be offered there: az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Short name used to derive resource names (3-11 lower-case letters or digits).')
@minLength(3)
@maxLength(11)
param baseName string = 'dss'

@description('Name of the existing Log Analytics workspace with Microsoft Sentinel enabled, in this resource group.')
param sentinelWorkspaceName string

@description('Comma-separated Defender tenants to pull from (DEFENDER_TENANT_IDS); empty = this tenant only. Other tenants need a multi-tenant app and a client secret (docs/runbook.md, MSSP setup).')
param defenderTenantIds string = ''

@description('AZURE_CLIENT_ID: app (client) id of a multi-tenant app (MSSP); empty = the function app\'s system-assigned managed identity.')
param clientId string = ''

@description('Object id of that app\'s service principal in this tenant (az ad sp show --id <clientId> --query id -o tsv): with a client secret the handler calls ARM, Logs and Table as the app, so the roles go to it. Empty = the managed identity.')
param clientPrincipalId string = ''

@description('Name of a Key Vault secret (in the vault this template creates) holding the client secret of that app; empty = no client secret.')
param clientSecretName string = ''

@description('NCRONTAB schedule of DefenderSync (DEFENDER_SYNC_SCHEDULE).')
param syncSchedule string = '0 */5 * * * *'

@description('SYNC_LOOKBACK_HOURS: the first run pulls incidents updated in this window.')
param lookbackHours int = 24

@description('SYNC_CONFLICT_POLICY.')
@allowed(['latest-wins', 'defender-wins', 'sentinel-wins'])
param conflictPolicy string = 'latest-wins'

@description('SYNC_SEVERITY_TO_DEFENDER: also push Sentinel severity changes to Defender.')
param severityToDefender bool = false

@description('SYNC_RETRY_BACKOFF_SECONDS: first wait before a parked incident is retried.')
param retryBackoffSeconds int = 60

@description('SYNC_CALL_TIMEOUT_SECONDS: how long one Graph, ARM or Logs call may take.')
@minValue(1)
@maxValue(600)
param callTimeoutSeconds int = 30

@description('Ship alerts and evidence to DefenderAlerts_CL (creates the table, the DCE and the DCR).')
param enableAlertIngestion bool = true

@description('How the playbook authenticates to SentinelWebhook: "secret" (header X-Sync-Secret from Key Vault) or "entra" (a managed-identity token for webhookAudience).')
@allowed(['secret', 'entra'])
param webhookAuthMode string = 'secret'

@description('The webhook secret (at least 16 characters), stored in Key Vault as webhook-secret. Used when webhookAuthMode is "secret".')
@secure()
@minLength(16)
param webhookSecret string

@description('SENTINEL_TARGET: "arm" (the sync creates Sentinel incidents through ARM; Azure portal) or "unified" (the analytics rule of modules/unified-analytics-rule.bicep makes incidents from DefenderAlerts_CL; unified Defender portal; needs alert ingestion).')
@allowed(['arm', 'unified'])
param sentinelTarget string = 'arm'

@description('WEBHOOK_ALLOWED_APP_IDS: comma-separated app (client) ids whose Entra tokens SentinelWebhook accepts; empty = any app of the tenant with a token for webhookAudience.')
param webhookAllowedAppIds string = ''

@description('WEBHOOK_AUDIENCE: Entra audience (application ID URI) of the tokens the playbook sends when webhookAuthMode is "entra".')
param webhookAudience string = ''

@description('Object id of the "Azure Security Insights" service principal in this tenant (az ad sp show --id 98785600-1bb7-4fb9-b9fa-19afe2c8a360 --query id -o tsv); it needs Microsoft Sentinel Automation Contributor to run the playbook. Empty = grant it by hand.')
param sentinelAutomationPrincipalId string = ''

@description('Deploy the playbook and the automation rules (reverse sync through SentinelWebhook).')
param deployPlaybook bool = true

@description('Flex Consumption runtime of a custom handler (az functionapp list-flexconsumption-runtimes -l <region> --runtime custom).')
param customRuntimeVersion string = '1.0'

@description('Tags on every resource.')
param tags object = {}

var suffix = uniqueString(resourceGroup().id, baseName)
var names = {
  storage: take('st${baseName}${suffix}', 24)
  plan: 'plan-${baseName}-${suffix}'
  app: 'func-${baseName}-${suffix}'
  insights: 'appi-${baseName}-${suffix}'
  vault: take('kv-${baseName}-${suffix}', 24)
  dce: 'dce-${baseName}-${suffix}'
  dcr: 'dcr-${baseName}-${suffix}'
  playbook: 'logic-${baseName}-webhook-${suffix}'
  sentinelConnection: 'azuresentinel-${baseName}-${suffix}'
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: sentinelWorkspaceName
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'dss-monitoring'
  params: {
    location: location
    tags: tags
    workspaceName: workspace.name
    insightsName: names.insights
    dceName: names.dce
    dcrName: names.dcr
    enableAlertIngestion: enableAlertIngestion
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'dss-keyvault'
  params: {
    location: location
    tags: tags
    vaultName: names.vault
    webhookSecret: webhookSecret
  }
}

module app 'modules/functionapp.bicep' = {
  name: 'dss-functionapp'
  params: {
    location: location
    tags: tags
    storageName: names.storage
    planName: names.plan
    appName: names.app
    customRuntimeVersion: customRuntimeVersion
    insightsConnectionString: monitoring.outputs.insightsConnectionString
    appSettings: {
      AZURE_TENANT_ID: tenant().tenantId
      AZURE_CLIENT_ID: clientId
      AZURE_CLIENT_SECRET: empty(clientSecretName) ? '' : '@Microsoft.KeyVault(VaultName=${names.vault};SecretName=${clientSecretName})'
      AZURE_AUTHORITY_HOST: environment().authentication.loginEndpoint
      DEFENDER_TENANT_IDS: defenderTenantIds
      GRAPH_ENDPOINT: environment().graph
      SENTINEL_SUBSCRIPTION_ID: subscription().subscriptionId
      SENTINEL_RESOURCE_GROUP: resourceGroup().name
      SENTINEL_WORKSPACE_NAME: workspace.name
      ARM_ENDPOINT: environment().resourceManager
      LOGS_INGESTION_ENDPOINT: monitoring.outputs.logsIngestionEndpoint
      LOGS_DCR_IMMUTABLE_ID: monitoring.outputs.dcrImmutableId
      LOGS_STREAM_NAME: monitoring.outputs.streamName
      // Empty: the handler derives the audience from the endpoint's cloud.
      LOGS_INGESTION_AUDIENCE: ''
      SYNC_STATE_TABLE: 'DefenderSentinelSync'
      DEFENDER_SYNC_SCHEDULE: syncSchedule
      SYNC_LOOKBACK_HOURS: string(lookbackHours)
      SYNC_CONFLICT_POLICY: conflictPolicy
      SYNC_SEVERITY_TO_DEFENDER: string(severityToDefender)
      SYNC_RETRY_BACKOFF_SECONDS: string(retryBackoffSeconds)
      SYNC_CALL_TIMEOUT_SECONDS: string(callTimeoutSeconds)
      // Empty: host.json's functionTimeout (00:10:00) applies.
      AzureFunctionsJobHost__functionTimeout: ''
      WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${vault.outputs.webhookSecretUri})'
      WEBHOOK_AUDIENCE: webhookAudience
      WEBHOOK_ALLOWED_APP_IDS: webhookAllowedAppIds
      SENTINEL_TARGET: sentinelTarget
      // Empty: the webhook authenticates callers (WEBHOOK_AUTH=none is for local development only).
      WEBHOOK_AUTH: ''
      SYNC_STATE_STORE: 'table'
      SYNC_BENCH_UNLIMITED: 'false'
      SYNC_LOG_FORMAT: 'json'
      SYNC_STARTUP_CHECK: 'true'
    }
  }
}

// Least privilege: exactly the roles of docs/permissions.md (checked by tests/infra.rs).
module access 'modules/access.bicep' = {
  name: 'dss-access'
  params: {
    principalId: empty(clientPrincipalId) ? app.outputs.principalId : clientPrincipalId
    platformPrincipalId: app.outputs.principalId
    workspaceName: workspace.name
    dcrName: enableAlertIngestion ? names.dcr : ''
    storageName: names.storage
    vaultName: names.vault
  }
  dependsOn: [monitoring, vault]
}

module playbook 'modules/playbook.bicep' = if (deployPlaybook) {
  name: 'dss-playbook'
  params: {
    location: location
    tags: tags
    playbookName: names.playbook
    connectionName: names.sentinelConnection
    workspaceName: workspace.name
    appName: app.outputs.name
    appHostName: app.outputs.defaultHostName
    vaultName: names.vault
    authMode: webhookAuthMode
    webhookAudience: webhookAudience
    sentinelAutomationPrincipalId: sentinelAutomationPrincipalId
  }
  dependsOn: [vault]
}

// The unified target: the platform makes the incidents from the ingested alerts.
module unifiedRule 'modules/unified-analytics-rule.bicep' = if (sentinelTarget == 'unified' && enableAlertIngestion) {
  name: 'dss-unified-rule'
  params: {
    workspaceName: workspace.name
  }
  dependsOn: [monitoring]
}

output functionAppName string = app.outputs.name
output functionAppPrincipalId string = app.outputs.principalId
output logsIngestionEndpoint string = monitoring.outputs.logsIngestionEndpoint
output dcrImmutableId string = monitoring.outputs.dcrImmutableId
output keyVaultName string = names.vault
