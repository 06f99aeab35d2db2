// The function app on the Flex Consumption plan (Linux, Python 3.11), running as the
// user-assigned managed identity. Flex Consumption takes its runtime and deployment source from
// functionAppConfig, not from app settings: FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION and WEBSITE_RUN_FROM_PACKAGE must not be set.

param name string
param planName string
param location string
param tags object = {}

@description('azd service name (azure.yaml) this app is deployed as.')
param serviceName string = 'api'

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

param storageBlobEndpoint string

@description('Blob container URL the deployment package goes to (reached as the managed identity).')
param deploymentContainerUrl string

param applicationInsightsConnectionString string

@description('devicemon\'s own settings (names the code reads); host settings are added here.')
param appSettings object

@description('Python version (Flex Consumption supports 3.10 to 3.12).')
@allowed([
  '3.10'
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Instances kept warm for the HTTP functions: Graph allows 10 s for the validation handshake and 3 s for a notification, less than a cold start.')
@minValue(0)
@maxValue(10)
param alwaysReadyHttpInstances int = 1

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// Flex Consumption's scale limits (azure-functions docs, flex-consumption-plan.md, Considerations):
// at most 1000. The lowest maximum was 40 while the plan was in preview and is 1 in the current
// text; 40 deploys under either rule.
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Spread instances across availability zones (region must support it; needs alwaysReadyHttpInstances of at least 2).')
param zoneRedundant bool = false

// With zone redundancy no fewer than two always-ready instances can be configured per function
// group (azure-functions docs, flex-consumption-plan.md, "Always ready instances"; reliability docs,
// reliability-functions.md: always-ready instances are spread over at least two zones). Azure
// would refuse the plan halfway through `azd up`; fail() stops the deployment first, naming the fix.
var httpAlwaysReadyInstances = (zoneRedundant && alwaysReadyHttpInstances < 2) ? fail('ZONE_REDUNDANT=true needs at least 2 always-ready HTTP instances on Flex Consumption: azd env set ALWAYS_READY_HTTP_INSTANCES 2') : alwaysReadyHttpInstances

// Per-function scaling puts every HTTP function in the 'http' group.
var alwaysReady = (httpAlwaysReadyInstances > 0) ? [{ name: 'http', instanceCount: httpAlwaysReadyInstances }] : []

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    // checkov:skip=CKV_AZURE_225: Zone redundancy is the zoneRedundant parameter (off by default): on Flex Consumption it needs a region that supports it and keeps at least two always-ready instances per group, doubling the baseline cost. Graph redelivers for 4 hours and the delta sync catches up after an outage.
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    // checkov:skip=CKV_AZURE_222: The app must be public: Graph delivers change and lifecycle notifications from the internet to /api/graph/*. Those two routes check clientState; the others require a function key (the app's default auth level).
    // checkov:skip=CKV_AZURE_17: No client certificates: Graph cannot present one when it posts notifications; they are authenticated by clientState (and the tenant allow-list).
    // checkov:skip=CKV_AZURE_212: Flex Consumption has no instance count to fix: alwaysReady keeps alwaysReadyHttpInstances warm for the HTTP group and the platform scales out on demand (and across zones with zoneRedundant).
    // checkov:skip=CKV_AZURE_213: The App Service health check (siteConfig.healthCheckPath) is not supported on Flex Consumption; GET /api/health reports devicemon's health to operators instead.
    // checkov:skip=CKV_AZURE_67: HTTP/2 (siteConfig.http20Enabled) is left at the platform default: it brings nothing to webhook POSTs and API calls, and the Flex Consumption site sets only the siteConfig properties its reference templates use.
    // checkov:skip=CKV_AZURE_18: Same check as CKV_AZURE_67 for web apps: HTTP/2 is left at the platform default on this Flex Consumption function app.
    // checkov:skip=CKV_AZURE_78: siteConfig.ftpsState is not supported on Flex Consumption (a deprecated property there); FTP deployment is turned off by the 'ftp' basicPublishingCredentialsPolicies resource (allow: false) and azd deploys to the blob container with Entra ID.
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    // Key Vault references in app settings resolve as this identity.
    keyVaultReferenceIdentity: identityId
    // No ftpsState: Flex Consumption does not support FTPS and lists the property as deprecated
    // (azure-functions docs, functions-app-settings.md, "Flex Consumption plan deprecations");
    // FTP publishing is off through the 'ftp' basic publishing credentials policy below.
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        alwaysReady: alwaysReady
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Basic (user name and password) publishing off: azd deploys with Entra ID.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

// The Functions host's own connections, identity-based (no AzureWebJobsStorage connection string).
var hostSettings = {
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  // Local auth is off on the component: send telemetry with an Entra token for the identity.
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // With host.json's telemetryMode OpenTelemetry: the Python worker configures the Azure Monitor
  // distro itself and tells the host, which then stops relaying the worker's logs, so each record
  // reaches Application Insights once (azure-functions docs, opentelemetry-howto.md; shared/telemetry.py).
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  // The host's request body limit (bytes, default 100 MB) set to what the webhook accepts: the
  // host buffers a body whole before the worker sees it, so without this an anonymous caller
  // makes each instance hold up to 100 MB per request before devicemon can answer 413.
  FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: appSettings.MAX_NOTIFICATION_BYTES
}

// Graph's callback URLs need the app's host name, known only once the site exists.
var urlSettings = {
  NOTIFICATION_URL: 'https://${site.properties.defaultHostName}/api/graph/notifications'
  LIFECYCLE_NOTIFICATION_URL: 'https://${site.properties.defaultHostName}/api/graph/lifecycle'
}

// The whole collection: a setting missing here is removed at the next provision.
// checkov 3.3 reads every Microsoft.Web/sites/config as the 'web' configuration; this one is the
// app settings collection, which has none of the properties the skipped checks look for.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: App Service Authentication (EasyAuth) would block Graph, which cannot sign in: notifications are checked by clientState and the other routes require a function key (the app's default auth level).
  // checkov:skip=CKV_AZURE_222: Public network access is a site property, set and justified on the site above (Graph must reach the webhook).
  // checkov:skip=CKV_AZURE_63: HTTP logging is an App Service log-to-file feature; the function app logs every request and decision to Application Insights (APPLICATIONINSIGHTS_CONNECTION_STRING).
  // checkov:skip=CKV_AZURE_65: Detailed error pages are an App Service (IIS) feature that does not apply to a Linux function app; errors go to Application Insights.
  // checkov:skip=CKV_AZURE_66: Failed request tracing is an App Service (IIS) feature that does not apply to a Linux function app; requests are traced in Application Insights.
  // checkov:skip=CKV_AZURE_80: .NET Framework version: not used, the app runs on Python (functionAppConfig.runtime).
  // checkov:skip=CKV_AZURE_88: Azure Files content share: Flex Consumption deploys from the blob container in functionAppConfig.deployment, not from Azure Files.
  parent: site
  name: 'appsettings'
  properties: union(appSettings, hostSettings, urlSettings)
}

output name string = site.name
output id string = site.id
output hostName string = site.properties.defaultHostName
output url string = 'https://${site.properties.defaultHostName}'
output notificationUrl string = urlSettings.NOTIFICATION_URL
output lifecycleNotificationUrl string = urlSettings.LIFECYCLE_NOTIFICATION_URL
