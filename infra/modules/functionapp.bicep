// The Function App: Flex Consumption (Linux), runtime "custom" (the Rust custom handler), a
// system-assigned managed identity, and its storage account (host, deployment package and the
// sync state table), all reached with that identity (no account keys in settings).
param location string
param tags object
param storageName string
param planName string
param appName string
param customRuntimeVersion string
param insightsConnectionString string
@description('The handler\'s settings (README, Configuration); host and platform settings are added here.')
param appSettings object

var deploymentContainer = 'app-package'
var stateTable = appSettings.SYNC_STATE_TABLE

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_59:Flex Consumption without a virtual network reaches its storage over the public endpoint; shared keys are off, so every request needs an Entra token of an assigned identity
  //checkov:skip=CKV_AZURE_206:Zone-redundant (ZRS): the app itself is regional, so a geo replica of its sync state would serve no failover
  //checkov:skip=CKV_AZURE_43:The name is derived (take('st' + baseName + uniqueString(...), 24)): lower-case letters and digits, at most 24; checkov cannot evaluate the expression
  name: storageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_ZRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // Identity-based connections only: AzureWebJobsStorage__accountName, the deployment container.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // Flex Consumption without VNet integration reaches its storage over the public endpoint.
      //checkov:skip=CKV_AZURE_35:Flex Consumption without a virtual network reaches storage publicly; access needs Entra ID (shared keys are off)
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// The sync state (docs/table-layout.md). The handler also creates it when missing.
resource table 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: stateTable
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225:Flex Consumption zone redundancy is not offered in every region; a missed timer run is caught up from the checkpoint by the next one
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

var hostSettings = {
  // Identity-based host storage (timer locks) and state table (the handler reads the same names).
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  APPLICATIONINSIGHTS_CONNECTION_STRING: insightsConnectionString
}
var allSettings = union(appSettings, hostSettings)

resource app 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_222:SentinelWebhook must be reachable by the Sentinel playbook (a consumption Logic App, public); it needs the function key plus the secret or an Entra token
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero; the timer function needs no standing instance and a missed run is caught up from the checkpoint
  //checkov:skip=CKV_AZURE_213:Flex Consumption apps have no App Service health check; SyncHealth (GET /api/sync/health) and the saved queries serve that purpose
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    //checkov:skip=CKV_AZURE_17:Client certificates would break the Sentinel playbook's call; SentinelWebhook needs the function key plus the X-Sync-Secret header or an Entra token
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for s in items(allSettings): {
        name: s.key
        value: s.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        // One sync cycle at a time is what the timer runs; webhooks are light.
        maximumInstanceCount: 40
        instanceMemoryMB: 512
      }
      runtime: {
        name: 'custom'
        version: customRuntimeVersion
      }
    }
  }
}

output name string = app.name
output principalId string = app.identity.principalId
output defaultHostName string = app.properties.defaultHostName
