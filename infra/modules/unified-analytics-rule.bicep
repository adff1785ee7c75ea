// Analytics rule for SENTINEL_TARGET=unified: the platform (the unified Defender portal) creates one
// incident per source Defender incident from the alert rows the sync ingests into DefenderAlerts_CL.
// The sync then finds that incident through Graph (alerts_v2 in the workspace's tenant, by the custom
// details below) and keeps it in sync; it never creates one itself.
//
// Grouping settings chosen, and why:
// - kind NRT (near-real-time: runs about every minute over what arrived since its last run), so an
//   incident appears as soon as the platform lets it; a Scheduled rule (queryFrequency >= 5 minutes)
//   would add its own period to the platform's documented 5-10 minute batching.
// - eventGroupingSettings.aggregationKind = AlertPerResult: one platform alert per source alert
//   (the query returns one row per source alert), so the incident lists the same alerts as Defender.
// - incidentConfiguration.groupingConfiguration: enabled, matchingMethod = Selected,
//   groupByCustomDetails = [SourceTenantId, SourceIncidentId]: all alerts of one source incident,
//   and only those, go into one incident. Grouping by entities or "AnyAlert" would merge two
//   customers' incidents that share an IP or a host name; grouping by the two custom details never
//   does (the tenant id is part of the key).
// - lookbackDuration = P7D (the longest the portal offers, "limit the group to alerts created within
//   the selected time frame", up to 7 days): an alert of a source incident that arrives later than
//   that starts a second platform incident (a split): the sync keeps the first one as the pair and
//   closes the extra one with a comment pointing to it.
// - reopenClosedIncident = false: a platform incident an analyst closed stays closed; a reopen flows
//   from Defender through the sync, not by the rule.
// - description starts with #DONT_CORR#: Defender XDR's "exclude analytics rules from correlation"
//   keeps this rule's alerts out of the correlation engine, so the platform never merges incidents of
//   two customers (or of one customer's two incidents) on shared entities.
// Deploy into the resource group of the Log Analytics workspace that has Microsoft Sentinel enabled.

@description('Name of the Log Analytics workspace with Microsoft Sentinel (and the DefenderAlerts_CL table).')
param workspaceName string

@description('Stable id (GUID) of the rule: keep it across deployments so the rule is updated, not duplicated.')
param ruleId string = guid(resourceGroup().id, workspaceName, 'defender-sentinel-sync-unified-rule')

@description('Display name of the rule; the sync finds the rule\'s alerts by their custom details, not by this name.')
param displayName string = 'Defender XDR incidents (defender-sentinel-sync)'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource rule 'Microsoft.SecurityInsights/alertRules@2024-03-01' = {
  scope: workspace
  name: ruleId
  kind: 'NRT'
  properties: {
    displayName: displayName
    description: '#DONT_CORR# One alert per Defender XDR alert shipped by defender-sentinel-sync; grouped by source tenant and source incident, excluded from correlation so customers are never merged.'
    enabled: true
    severity: 'Medium'
    // Latest row per source alert (the sync re-ships an alert when it changes); evidence rows of the
    // same alert give the entities.
    query: '''
let alerts = DefenderAlerts_CL
  | where RowKind == "alert"
  | summarize arg_max(TimeGenerated, *) by SourceTenantId, AlertId;
let evidence = DefenderAlerts_CL
  | where RowKind == "evidence"
  | summarize arg_max(TimeGenerated, *) by SourceTenantId, AlertId, EvidenceIndex
  | summarize
      HostName = take_anyif(EvidenceKey, EvidenceType == "deviceEvidence"),
      AccountUpn = take_anyif(EvidenceKey, EvidenceType == "userEvidence"),
      IpAddress = take_anyif(EvidenceKey, EvidenceType == "ipEvidence"),
      FileHash = take_anyif(EvidenceKey, EvidenceType == "fileEvidence"),
      Url = take_anyif(EvidenceKey, EvidenceType == "urlEvidence")
      by SourceTenantId, AlertId;
alerts
| join kind=leftouter evidence on SourceTenantId, AlertId
| project TimeGenerated, SourceTenantId, SourceIncidentId = DefenderIncidentId, SourceAlertId = AlertId,
    AlertTitle, AlertSeverity, Category, MitreTechniques, HostName, AccountUpn, IpAddress, FileHash, Url
'''
    suppressionEnabled: false
    suppressionDuration: 'PT5H'
    tactics: []
    techniques: []
    eventGroupingSettings: {
      aggregationKind: 'AlertPerResult'
    }
    alertDetailsOverride: {
      alertDisplayNameFormat: '{{AlertTitle}}'
      alertSeverityColumnName: 'AlertSeverity'
    }
    customDetails: {
      SourceTenantId: 'SourceTenantId'
      SourceIncidentId: 'SourceIncidentId'
      SourceAlertId: 'SourceAlertId'
    }
    entityMappings: [
      {
        entityType: 'Host'
        fieldMappings: [ { identifier: 'HostName', columnName: 'HostName' } ]
      }
      {
        entityType: 'Account'
        fieldMappings: [ { identifier: 'FullName', columnName: 'AccountUpn' } ]
      }
      {
        entityType: 'IP'
        fieldMappings: [ { identifier: 'Address', columnName: 'IpAddress' } ]
      }
      {
        entityType: 'FileHash'
        fieldMappings: [ { identifier: 'Value', columnName: 'FileHash' } ]
      }
      {
        entityType: 'URL'
        fieldMappings: [ { identifier: 'Url', columnName: 'Url' } ]
      }
    ]
    incidentConfiguration: {
      createIncident: true
      groupingConfiguration: {
        enabled: true
        matchingMethod: 'Selected'
        groupByCustomDetails: [
          'SourceTenantId'
          'SourceIncidentId'
        ]
        groupByEntities: []
        groupByAlertDetails: []
        lookbackDuration: 'P7D'
        reopenClosedIncident: false
      }
    }
  }
}

output ruleId string = rule.name
