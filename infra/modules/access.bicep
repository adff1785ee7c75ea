// Role assignments of the function app's managed identity: exactly the roles docs/permissions.md
// lists (tests/infra.rs compares them with the code's call list, src/adapters/calls.rs).
// Microsoft Graph application permissions cannot be granted by a template: see the runbook.
@description('The identity the handler calls Graph, ARM, Logs and Table with: the app\'s managed identity, or the service principal of the multi-tenant app (AZURE_CLIENT_ID + secret, MSSP).')
param principalId string
@description('The function app\'s managed identity: the platform\'s storage access and Key Vault references.')
param platformPrincipalId string
param workspaceName string
@description('Empty when alert ingestion is off.')
param dcrName string
param storageName string
param vaultName string

// Built-in role definition ids (the same in every Azure cloud).
var roles = {
  'Microsoft Sentinel Contributor': 'ab8e14d6-4a74-4a29-9ba8-549422addade'
  'Monitoring Metrics Publisher': '3913510d-42f4-4e42-8a64-420c390055eb'
  'Storage Table Data Contributor': '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  'Storage Blob Data Owner': 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  'Key Vault Secrets User': '4633458b-17de-408a-b874-0445c86b69e6'
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource dcr 'Microsoft.Insights/dataCollectionRules@2023-03-11' existing = if (!empty(dcrName)) {
  name: dcrName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

// ARM: create and update Sentinel incidents and their comments (Responder cannot create).
resource sentinelContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: workspace
  name: guid(workspace.id, principalId, roles['Microsoft Sentinel Contributor'])
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Microsoft Sentinel Contributor'])
  }
}

// Logs Ingestion: POST rows to the DCR's stream.
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(dcrName)) {
  scope: dcr
  name: guid(resourceGroup().id, dcrName, principalId, roles['Monitoring Metrics Publisher'])
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Monitoring Metrics Publisher'])
  }
}

// Table Storage: the sync state.
resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, principalId, roles['Storage Table Data Contributor'])
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Storage Table Data Contributor'])
  }
}

// Platform, not the handler: the Functions host's timer locks (blob leases) and the Flex
// deployment package container, both in this account.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, platformPrincipalId, roles['Storage Blob Data Owner'])
  properties: {
    principalId: platformPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Storage Blob Data Owner'])
  }
}

// Platform, not the handler: Key Vault references in app settings (WEBHOOK_SECRET, AZURE_CLIENT_SECRET).
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, platformPrincipalId, roles['Key Vault Secrets User'])
  properties: {
    principalId: platformPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Key Vault Secrets User'])
  }
}
