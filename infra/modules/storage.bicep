// One storage account, reached only with Entra ID (shared keys off):
// - blob: the Functions host's storage (AzureWebJobsStorage: keys, timer locks) and the Flex
//   Consumption deployment package container;
// - table: devicemon's tables, created here: in Azure the app's identity holds a data role on each
//   table only (rbac.bicep), which does not allow creating one.

param name string
param location string
param tags object = {}

@description('Blob container Flex Consumption deploys the app package to.')
param deploymentContainerName string

@description('Tables devicemon reads and writes (already prefixed with TABLE_PREFIX).')
param tableNames array

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param skuName string = 'Standard_LRS'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    // checkov:skip=CKV_AZURE_35: Network default Allow: Flex Consumption without VNet integration reaches its host storage, deployment package and tables over the public endpoint. Shared keys are off, so every request needs an Entra token with a data role (rbac.bicep).
    // checkov:skip=CKV_AZURE_59: Public network access stays enabled for the same reason; anonymous blob access is off (allowBlobPublicAccess: false) and shared keys are off.
    // checkov:skip=CKV_AZURE_206: Replication is the storageSku parameter (Standard_LRS by default: three copies in one datacenter); choose Standard_ZRS or Standard_GRS where the device timeline must survive a zone or region loss. Current state is re-read from Graph by the delta sync.
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableEndpoint string = account.properties.primaryEndpoints.table
// The tables, once created: rbac.bicep scopes the table role to each of them.
output tableNames array = [for (tableName, i) in tableNames: tables[i].name]
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainer.name}'
