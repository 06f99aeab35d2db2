// Key Vault for devicemon's two secrets, referenced from app settings
// (@Microsoft.KeyVault(SecretUri=...), resolved by the platform as the app's managed identity).
// Azure RBAC only (no access policies); the identity gets Key Vault Secrets User on each secret,
// not on the vault (rbac.bicep). Every request to the vault (each secret read by the platform or
// anyone else, each denied attempt) is logged to Log Analytics (AuditEvent, below).

param name string
param location string
param tags object = {}

@secure()
@description('GRAPH_CLIENT_STATE: the secret Graph echoes in every notification.')
param graphClientState string

@secure()
@description('TEAMS_WEBHOOK_URL: the Teams Workflows URL. Empty: no secret (Teams cards off).')
param teamsWebhookUrl string = ''

@description('Days a deleted vault or secret can be recovered (and, with purge protection, cannot be purged).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 7

@description('Purge protection: nobody, not even an Owner, can purge the vault or a secret before softDeleteRetentionInDays have passed; it also keeps the vault name taken that long after `azd down`.')
param enablePurgeProtection bool = true

@description('Log Analytics workspace that receives the vault\'s audit log.')
param logAnalyticsWorkspaceId string

var hasTeamsWebhook = !empty(teamsWebhookUrl)

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109: No firewall: Flex Consumption without VNet integration has no fixed outbound addresses, and the platform resolves the app's Key Vault references over the public endpoint. Access is Entra ID + Azure RBAC only, per secret (rbac.bicep).
    // checkov:skip=CKV_AZURE_189: Public network access stays on for the same reason (no VNet or private endpoint in this deployment); every request needs an Entra token with a role on the secret.
    // checkov:skip=CKV_AZURE_110: False positive: purge protection is on by default (enablePurgeProtection = true, main.bicep keyVaultPurgeProtection = true); checkov cannot evaluate `enablePurgeProtection ? true : null`, written so because ARM rejects an explicit false. tests/infra checks the default.
    // checkov:skip=CKV_AZURE_42: False positive for the same reason: the vault is recoverable (soft delete always on, softDeleteRetentionInDays; purge protection on by default), see CKV_AZURE_110.
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // ARM rejects false here; omitting it leaves purge protection off.
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// The audit trail: AuditEvent records every data-plane request (secret get/list/set, with the
// caller's identity, IP and result) and management change to the vault; AzurePolicyEvaluationDetails
// is left out (no Azure Policy on this vault). Resource-specific tables (AZKVAuditLogs) rather than
// AzureDiagnostics. Categories:
// https://learn.microsoft.com/azure/azure-monitor/reference/supported-logs/microsoft-keyvault-vaults-logs
resource auditLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

resource clientStateSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'graph-client-state'
  properties: {
    // checkov:skip=CKV_AZURE_41: No expiry: an expired clientState would silently drop every Graph notification. It is rotated by hand (docs/deploy.md) and the versionless Key Vault reference follows the new version.
    value: graphClientState
    contentType: 'text/plain'
  }
}

resource teamsWebhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (hasTeamsWebhook) {
  parent: vault
  name: 'teams-webhook-url'
  properties: {
    // checkov:skip=CKV_AZURE_41: No expiry: the Teams Workflows URL lives as long as the flow; an expiry would silently stop the Teams cards. Replaced by hand when the flow changes (docs/deploy.md).
    // checkov:skip=CKV_AZURE_114: False positive: contentType is set just below; checkov 3.3 does not read the body of a conditional (`if`) resource.
    value: teamsWebhookUrl
    contentType: 'text/uri-list'
  }
}

output name string = vault.name
output id string = vault.id
// Versionless URIs: the app follows the latest version of each item.
output graphClientStateUri string = clientStateSecret.properties.secretUri
output teamsWebhookUri string = hasTeamsWebhook ? teamsWebhookSecret.properties.secretUri : ''
// The items the app reads, for its Key Vault Secrets User assignments (rbac.bicep).
output referencedItemNames array = hasTeamsWebhook ? [clientStateSecret.name, teamsWebhookSecret.name] : [clientStateSecret.name]
