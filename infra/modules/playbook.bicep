// The caller of SentinelWebhook: a Logic App playbook with the Microsoft Sentinel incident
// trigger that POSTs the trigger body to https://<app>/api/sentinel/webhook?code=<function key>
// with header X-Sync-Secret (read from Key Vault with the playbook's managed identity), or with
// a managed-identity token for WEBHOOK_AUDIENCE; and the automation rules that run it when an
// incident is created or updated, except by an application (the sync's own ARM writes).
param location string
param tags object
param playbookName string
param connectionName string
param workspaceName string
param appName string
param appHostName string
param vaultName string
@allowed(['secret', 'entra'])
param authMode string
param webhookAudience string
param sentinelAutomationPrincipalId string

var roles = {
  'Key Vault Secrets User': '4633458b-17de-408a-b874-0445c86b69e6'
  'Microsoft Sentinel Automation Contributor': 'f4c81013-99ee-4d62-a7ee-b3f1f648599a'
}
var webhookUrl = 'https://${appHostName}/api/sentinel/webhook'
var secretUrl = 'https://${vaultName}${environment().suffixes.keyvaultDns}/secrets/webhook-secret?api-version=7.4'
// keyvaultDns is '.vault.azure.net' (with its leading dot) in the public cloud.
var vaultAudience = 'https://${substring(environment().suffixes.keyvaultDns, 1)}'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource functionHost 'Microsoft.Web/sites/host@2024-04-01' existing = {
  name: '${appName}/default'
}

// The Sentinel connector, authenticated with the playbook's managed identity.
resource sentinelConnection 'Microsoft.Web/connections@2016-06-01' = {
  name: connectionName
  location: location
  tags: tags
  kind: 'V1'
  properties: {
    displayName: connectionName
    api: {
      id: subscriptionResourceId('Microsoft.Web/locations/managedApis', location, 'azuresentinel')
    }
    parameterValueType: 'Alternative'
  }
}

var readSecret = {
  Get_webhook_secret: {
    type: 'Http'
    runAfter: {}
    inputs: {
      method: 'GET'
      uri: secretUrl
      authentication: {
        type: 'ManagedServiceIdentity'
        audience: vaultAudience
      }
    }
    // Keeps the secret out of the run history.
    runtimeConfiguration: {
      secureData: {
        properties: ['inputs', 'outputs']
      }
    }
  }
}

var postSecret = {
  Post_to_SentinelWebhook: {
    type: 'Http'
    runAfter: {
      Get_webhook_secret: ['Succeeded']
    }
    inputs: {
      method: 'POST'
      uri: webhookUrl
      queries: {
        code: '@parameters(\'functionKey\')'
      }
      headers: {
        'Content-Type': 'application/json'
        'X-Sync-Secret': '@{body(\'Get_webhook_secret\')?[\'value\']}'
      }
      body: '@triggerBody()'
      retryPolicy: {
        type: 'exponential'
        count: 6
        interval: 'PT10S'
      }
    }
    runtimeConfiguration: {
      secureData: {
        properties: ['inputs']
      }
    }
  }
}

var postToken = {
  Post_to_SentinelWebhook: {
    type: 'Http'
    runAfter: {}
    inputs: {
      method: 'POST'
      uri: webhookUrl
      queries: {
        code: '@parameters(\'functionKey\')'
      }
      headers: {
        'Content-Type': 'application/json'
      }
      authentication: {
        type: 'ManagedServiceIdentity'
        audience: webhookAudience
      }
      body: '@triggerBody()'
      retryPolicy: {
        type: 'exponential'
        count: 6
        interval: 'PT10S'
      }
    }
    runtimeConfiguration: {
      secureData: {
        properties: ['inputs']
      }
    }
  }
}

resource playbook 'Microsoft.Logic/workflows@2019-05-01' = {
  name: playbookName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    state: 'Enabled'
    definition: {
      '$schema': 'https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#'
      contentVersion: '1.0.0.0'
      parameters: {
        '$connections': {
          type: 'Object'
          defaultValue: {}
        }
        functionKey: {
          type: 'SecureString'
        }
      }
      triggers: {
        Microsoft_Sentinel_incident: {
          type: 'ApiConnectionWebhook'
          inputs: {
            host: {
              connection: {
                name: '@parameters(\'$connections\')[\'azuresentinel\'][\'connectionId\']'
              }
            }
            body: {
              callback_url: '@{listCallbackUrl()}'
            }
            path: '/incident-creation'
          }
        }
      }
      actions: authMode == 'secret' ? union(readSecret, postSecret) : postToken
      outputs: {}
    }
    parameters: {
      '$connections': {
        value: {
          azuresentinel: {
            connectionId: sentinelConnection.id
            connectionName: sentinelConnection.name
            id: subscriptionResourceId('Microsoft.Web/locations/managedApis', location, 'azuresentinel')
            connectionProperties: {
              authentication: {
                type: 'ManagedServiceIdentity'
              }
            }
          }
        }
      }
      functionKey: {
        value: functionHost.listKeys().functionKeys.default
      }
    }
  }
}

// The playbook reads the webhook secret.
resource playbookSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (authMode == 'secret') {
  scope: vault
  name: guid(vault.id, playbookName, roles['Key Vault Secrets User'])
  properties: {
    principalId: playbook.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Key Vault Secrets User'])
  }
}

// Sentinel runs playbooks as the "Azure Security Insights" app: it needs this role on the
// playbook's resource group.
resource automationContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(sentinelAutomationPrincipalId)) {
  name: guid(resourceGroup().id, sentinelAutomationPrincipalId, roles['Microsoft Sentinel Automation Contributor'])
  properties: {
    principalId: sentinelAutomationPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles['Microsoft Sentinel Automation Contributor'])
  }
}

var runPlaybook = [
  {
    order: 1
    actionType: 'RunPlaybook'
    actionConfiguration: {
      logicAppResourceId: playbook.id
      tenantId: tenant().tenantId
    }
  }
]

resource onCreated 'Microsoft.SecurityInsights/automationRules@2024-03-01' = {
  scope: workspace
  name: guid(workspace.id, playbookName, 'created')
  dependsOn: [automationContributor]
  properties: {
    displayName: 'defender-sentinel-sync: incident created → SentinelWebhook'
    order: 100
    triggeringLogic: {
      isEnabled: true
      triggersOn: 'Incidents'
      triggersWhen: 'Created'
    }
    actions: runPlaybook
  }
}

// Updates by an application are left out: the sync's own ARM writes are application updates
// (a rule cannot name one application; the handler also drops the echo of its own writes, and
// the timer's poll picks up other applications' changes).
resource onUpdated 'Microsoft.SecurityInsights/automationRules@2024-03-01' = {
  scope: workspace
  name: guid(workspace.id, playbookName, 'updated')
  dependsOn: [automationContributor]
  properties: {
    displayName: 'defender-sentinel-sync: incident updated (not by an application) → SentinelWebhook'
    order: 101
    triggeringLogic: {
      isEnabled: true
      triggersOn: 'Incidents'
      triggersWhen: 'Updated'
      conditions: [
        {
          conditionType: 'Property'
          conditionProperties: {
            propertyName: 'IncidentUpdatedBySource'
            operator: 'NotEquals'
            propertyValues: ['Application']
          }
        }
      ]
    }
    actions: runPlaybook
  }
}

output playbookId string = playbook.id
