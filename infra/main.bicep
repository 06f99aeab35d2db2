// devicemon: everything `azd up` provisions (docs/deploy.md).
// Graph change notifications -> webhook -> Service Bus queue (sessions) -> processor -> Table
// storage -> Service Bus topic -> Teams / remediation, on Azure Functions Flex Consumption, with
// identity-based connections only: no account key, SAS key or connection string anywhere.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds the resource names.')
param environmentName string

@minLength(1)
@description('Region for every resource; it must offer the Flex Consumption plan.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the user running azd (AZURE_PRINCIPAL_ID), for grantDeveloperAccess.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Give principalId the data roles a local run needs (tables, queue, topic, secrets).')
param grantDeveloperAccess bool = false

@secure()
@minLength(32)
@maxLength(128)
@description('GRAPH_CLIENT_STATE, generated once per azd environment by the preprovision hook.')
param graphClientState string

@secure()
@description('TEAMS_WEBHOOK_URL: the Teams Workflows webhook URL; empty leaves Teams cards off.')
param teamsWebhookUrl string = ''

@description('CA_POLICY: which device controls your Conditional Access policy requires.')
@allowed([
  'compliant_or_hybrid'
  'compliant'
  'hybrid'
  'compliant_and_hybrid'
])
param caPolicy string = 'compliant_or_hybrid'

@description('ELIGIBILITY_SOURCE: auto judges by the tenant\'s Conditional Access policies when they can be read (Policy.Read.All) and one asks something of devices, else by CA_POLICY.')
@allowed([
  'auto'
  'ca_policies'
  'ca_policy_setting'
])
param eligibilitySource string = 'auto'

@description('AT_RISK_LEAD_HOURS: how long before a known deadline an eligible device is reported at_risk (1 to 720).')
param atRiskLeadHours string = '72'

@description('INTUNE_ENABLED: also read the Intune managed device and its failing compliance settings (needs DeviceManagementManagedDevices.Read.All and DeviceManagementConfiguration.Read.All).')
param intuneEnabled bool = true

@description('REMEDIATION_MODE: on needs DeviceManagementManagedDevices.PrivilegedOperations.All.')
@allowed([
  'off'
  'dry-run'
  'on'
])
param remediationMode string = 'off'

@description('REMEDIATION_MAX_ACTIONS_PER_HOUR')
param remediationMaxActionsPerHour string = '30'

@description('SYNC_SCHEDULE: delta sync timer (NCRONTAB, six fields); every minute, the detection cadence.')
param syncSchedule string = '0 */1 * * * *'

@description('SUBSCRIPTION_SCHEDULE: Graph subscription upkeep timer (NCRONTAB, six fields).')
param subscriptionSchedule string = '0 0 */6 * * *'

@description('SWEEP_SCHEDULE: timer that republishes alerts left pending (NCRONTAB, six fields).')
param sweepSchedule string = '15 */1 * * * *'

@description('PENDING_ALERT_SWEEP_SECONDS: age at which a pending alert is swept and health turns degraded.')
param pendingAlertSweepSeconds string = '120'

@description('HEALTH_MAX_FAILURES within HEALTH_FAILURE_WINDOW_MINUTES turn health degraded.')
param healthMaxFailures string = '10'

@description('HEALTH_FAILURE_WINDOW_MINUTES')
param healthFailureWindowMinutes string = '15'

@description('SUBSCRIPTION_EXPIRY_MINUTES: lifetime requested for the Graph subscription.')
param subscriptionExpiryMinutes string = '4320'

@description('SUBSCRIPTION_RENEW_BEFORE_MINUTES: renew when the subscription expires within this many minutes.')
param subscriptionRenewBeforeMinutes string = '1440'

@description('SYNC_STALE_MINUTES: after this long without a completed sync, health reports it stale.')
param syncStaleMinutes string = '30'

@description('SYNC_PAGE_SIZE: page size asked of /devices/delta; 0 lets Graph choose.')
param syncPageSize string = '0'

@description('TEAMS_FLAP_WINDOW_MINUTES')
param teamsFlapWindowMinutes string = '60'

@description('TEAMS_FLAP_THRESHOLD')
param teamsFlapThreshold string = '4'

@description('TEAMS_MASS_WINDOW_MINUTES')
param teamsMassWindowMinutes string = '10'

@description('TEAMS_MASS_THRESHOLD')
param teamsMassThreshold string = '25'

@description('STALE_SIGN_IN_DAYS')
param staleSignInDays string = '90'

@description('INTUNE_CHECKIN_STALE_DAYS')
param intuneCheckinStaleDays string = '30'

@description('GRAPH_BASE_URL: change only for a national cloud.')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('TABLE_PREFIX: letters and digits prefixed to every table name (empty by default).')
param tablePrefix string = ''

@description('Always-ready instances for the HTTP functions (0 saves the baseline cost, at the price of cold starts Graph may time out on).')
@minValue(0)
param alwaysReadyHttpInstances int = 1

@description('Spread the function app across availability zones (where the region supports it on Flex Consumption).')
param zoneRedundant bool = false

@description('Storage replication: the device timeline (DeviceHistory) lives only here.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param storageSku string = 'Standard_LRS'

@description('Key Vault purge protection (on by default): a deleted vault or secret cannot be purged, by anyone, before keyVaultSoftDeleteRetentionDays; the vault name stays reserved that long after `azd down` (docs/deploy.md, Tear down). Off only for throwaway environments.')
param keyVaultPurgeProtection bool = true

@description('Days a deleted Key Vault or secret stays recoverable (soft delete, always on): with purge protection, also how long the vault name stays reserved after `azd down`.')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteRetentionDays int = 7

var abbrs = {
  resourceGroup: 'rg-'
  identity: 'id-'
  logAnalytics: 'log-'
  applicationInsights: 'appi-'
  storage: 'st'
  serviceBus: 'sb-'
  keyVault: 'kv-'
  plan: 'plan-'
  functionApp: 'func-'
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'devicemon'
}

var queueName = 'device-changes'
var topicName = 'device-alerts'
var topicSubscriptionNames = [
  'teams'
  'remediation'
]
var tableNames = [
  '${tablePrefix}DeviceState'
  '${tablePrefix}DeviceHistory'
  '${tablePrefix}DevicemonSync'
  '${tablePrefix}RemediationLog'
  '${tablePrefix}TeamsNoise'
  '${tablePrefix}PendingAlerts'
  '${tablePrefix}ProcessingFailures'
  '${tablePrefix}CaPolicies'
  '${tablePrefix}DeviceDeadlines'
  '${tablePrefix}IntuneWatch'
]

// Least privilege in Graph too: Intune and remediation permissions only when those features are on.
// Not granted here: an Entra administrator assigns them to the identity with
// `python infra/hooks/devicemon_hooks.py grant-graph`, which reads the GRAPH_APP_ROLES output
// (docs/deploy.md, step 3).
// DeviceManagementConfiguration.Read.All: the failing compliance policies and settings a lost
// alert carries (docs/compliance-details.md); without it alerts say permission_missing instead.
var intuneAppRoles = intuneEnabled ? ['DeviceManagementManagedDevices.Read.All', 'DeviceManagementConfiguration.Read.All'] : []
var remediationAppRoles = (remediationMode == 'on') ? ['DeviceManagementManagedDevices.PrivilegedOperations.All'] : []
var graphAppRoles = concat(['Device.Read.All', 'Policy.Read.All'], intuneAppRoles, remediationAppRoles)

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: '${abbrs.resourceGroup}${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.identity}devicemon-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.logAnalytics}devicemon-${resourceToken}'
    applicationInsightsName: '${abbrs.applicationInsights}devicemon-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storage}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package'
    tableNames: tableNames
    skuName: storageSku
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: '${abbrs.serviceBus}devicemon-${resourceToken}'
    location: location
    tags: tags
    queueName: queueName
    topicName: topicName
    subscriptionNames: topicSubscriptionNames
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVault}${resourceToken}'
    location: location
    tags: tags
    graphClientState: graphClientState
    teamsWebhookUrl: teamsWebhookUrl
    enablePurgeProtection: keyVaultPurgeProtection
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionDays
    logAnalyticsWorkspaceId: monitoring.outputs.workspaceId
  }
}

// After the identity's roles exist: the host starts with its storage reachable and the Key Vault
// references resolvable (a reference that fails is retried only on restart or after 24 h).
module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  dependsOn: [
    appRoles
  ]
  params: {
    name: '${abbrs.functionApp}devicemon-${resourceToken}'
    planName: '${abbrs.plan}devicemon-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    zoneRedundant: zoneRedundant
    // Every setting the code reads (local.settings.sample.json), identity-based; the host's own
    // settings and the Graph callback URLs are added in the module.
    appSettings: {
      GRAPH_CLIENT_STATE: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.graphClientStateUri})'
      ALLOWED_TENANT_IDS: subscription().tenantId
      DEVICE_CHANGES_QUEUE: serviceBus.outputs.queueName
      DEVICE_ALERTS_TOPIC: serviceBus.outputs.topicName
      ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
      ServiceBusConnection__credential: 'managedidentity'
      ServiceBusConnection__clientId: identity.outputs.clientId
      TablesConnection__tableServiceUri: storage.outputs.tableEndpoint
      TablesConnection__credential: 'managedidentity'
      TablesConnection__clientId: identity.outputs.clientId
      AZURE_CLIENT_ID: identity.outputs.clientId
      TABLE_PREFIX: tablePrefix
      CA_POLICY: caPolicy
      ELIGIBILITY_SOURCE: eligibilitySource
      POLICY_CACHE_SECONDS: '300'
      AT_RISK_LEAD_HOURS: atRiskLeadHours
      INTUNE_ENABLED: intuneEnabled ? 'true' : 'false'
      STALE_SIGN_IN_DAYS: staleSignInDays
      INTUNE_CHECKIN_STALE_DAYS: intuneCheckinStaleDays
      INTUNE_CHECKIN_WARN_DAYS: '7'
      GRAPH_BASE_URL: graphBaseUrl
      GRAPH_CREDENTIAL: 'default'
      GRAPH_MAX_RETRIES: '3'
      MAX_NOTIFICATION_BYTES: '1048576'
      EVENT_SOURCE: 'urn:devicemon'
      SYNC_SCHEDULE: syncSchedule
      SUBSCRIPTION_SCHEDULE: subscriptionSchedule
      SWEEP_SCHEDULE: sweepSchedule
      POLICY_SCHEDULE: '0 5 * * * *'
      TENANT_SETTINGS_SCHEDULE: '0 30 3 * * *'
      DEADLINE_SCHEDULE: '0 */1 * * * *'
      INTUNE_WATCH_SCHEDULE: '20 */15 * * * *'
      PENDING_ALERT_SWEEP_SECONDS: pendingAlertSweepSeconds
      HEALTH_FAILURE_WINDOW_MINUTES: healthFailureWindowMinutes
      HEALTH_MAX_FAILURES: healthMaxFailures
      SERVICE_BUS_SENDERS: '4'
      ENQUEUE_TIMEOUT_MS: '2000'
      SERVICE_BUS_SEND_TIMEOUT_SECONDS: '30'
      SUBSCRIPTION_EXPIRY_MINUTES: subscriptionExpiryMinutes
      SUBSCRIPTION_RENEW_BEFORE_MINUTES: subscriptionRenewBeforeMinutes
      SYNC_STALE_MINUTES: syncStaleMinutes
      INTUNE_WATCH_STALE_MINUTES: '60'
      SYNC_PAGE_SIZE: syncPageSize
      TEAMS_WEBHOOK_URL: empty(teamsWebhookUrl) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.teamsWebhookUri})'
      TEAMS_FLAP_WINDOW_MINUTES: teamsFlapWindowMinutes
      TEAMS_FLAP_THRESHOLD: teamsFlapThreshold
      TEAMS_MASS_WINDOW_MINUTES: teamsMassWindowMinutes
      TEAMS_MASS_THRESHOLD: teamsMassThreshold
      REMEDIATION_MODE: remediationMode
      REMEDIATION_MAX_ACTIONS_PER_HOUR: remediationMaxActionsPerHour
    }
  }
}

module appRoles 'modules/rbac.bicep' = {
  name: 'rbac-app'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    storageAccountName: storage.outputs.name
    tableNames: storage.outputs.tableNames
    serviceBusNamespaceName: serviceBus.outputs.name
    queueName: serviceBus.outputs.queueName
    topicName: serviceBus.outputs.topicName
    subscriptionNames: topicSubscriptionNames
    keyVaultName: keyVault.outputs.name
    vaultItemNames: keyVault.outputs.referencedItemNames
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    hostRoles: true
  }
}

module developerRoles 'modules/rbac.bicep' = if (grantDeveloperAccess && !empty(principalId)) {
  name: 'rbac-developer'
  scope: rg
  params: {
    principalId: principalId
    principalType: principalType
    storageAccountName: storage.outputs.name
    tableNames: storage.outputs.tableNames
    serviceBusNamespaceName: serviceBus.outputs.name
    queueName: serviceBus.outputs.queueName
    topicName: serviceBus.outputs.topicName
    subscriptionNames: topicSubscriptionNames
    keyVaultName: keyVault.outputs.name
    vaultItemNames: keyVault.outputs.referencedItemNames
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    hostRoles: false
  }
}

// azd stores these in the environment (.azure/<env>/.env); the hooks and docs/deploy.md use them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = subscription().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = functionApp.outputs.url
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output SERVICEBUS_FULLY_QUALIFIED_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output TABLES_SERVICE_URI string = storage.outputs.tableEndpoint
output GRAPH_NOTIFICATION_URL string = functionApp.outputs.notificationUrl
output GRAPH_LIFECYCLE_NOTIFICATION_URL string = functionApp.outputs.lifecycleNotificationUrl
output GRAPH_APP_ROLES string = join(graphAppRoles, ',')
