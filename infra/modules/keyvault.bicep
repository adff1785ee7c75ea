// Key Vault (RBAC authorization) holding the webhook secret. The function app reads it through a
// Key Vault reference (WEBHOOK_SECRET); the playbook reads it with its managed identity.
param location string
param tags object
param vaultName string
@secure()
param webhookSecret string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_189:Flex Consumption without a virtual network and a consumption Logic App can only reach the vault publicly; RBAC (Key Vault Secrets User) guards every read
  name: vaultName
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      //checkov:skip=CKV_AZURE_109:Flex Consumption without a virtual network and the Logic App (consumption) reach the vault over its public endpoint; every read needs an Entra token with Key Vault Secrets User
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'webhook-secret'
  properties: {
    value: webhookSecret
    contentType: 'text/plain'
    //checkov:skip=CKV_AZURE_41:The webhook secret is rotated by the operator (docs/runbook.md, Upgrades and rotation), not on a fixed expiry that would silently break the playbook
  }
}

output vaultUri string = vault.properties.vaultUri
output webhookSecretUri string = secret.properties.secretUri
