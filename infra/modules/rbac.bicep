// Data-plane roles for one principal, each on the narrowest scope the code needs:
// - Storage Blob Data Owner, storage account: the Functions host creates its containers
//   (azure-webjobs-hosts, -secrets) and the platform reads the deployment package;
// - Storage Table Data Contributor, each of devicemon's tables (tableNames), not the account: the
//   tables are created by storage.bicep, so the app only reads and writes entities, and an
//   identity-connected app never calls Create Table (shared/adapters/table_adapter.py), which a
//   table-scoped role would refuse. A role can be scoped to a table
//   (.../storageAccounts/<account>/tableServices/default/tables/<table>), by ARM though not in the
//   portal: https://learn.microsoft.com/azure/storage/tables/assign-azure-role-data-access ;
// - Azure Service Bus Data Sender: the queue (webhook, delta sync) and the topic (alerts);
// - Azure Service Bus Data Receiver: the queue and each topic subscription (the triggers), not
//   the topic or the namespace;
// - Key Vault Secrets User: each referenced secret, not the vault;
// - Monitoring Metrics Publisher: the Application Insights component (Entra-authenticated
//   telemetry).
// Nothing at resource group or subscription scope, and no Owner/Contributor-style role.

@description('Object id of the principal that gets the roles.')
param principalId string

@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param principalType string = 'ServicePrincipal'

param storageAccountName string
@description('devicemon\'s tables (created by storage.bicep): Storage Table Data Contributor on each.')
param tableNames array
param serviceBusNamespaceName string
param queueName string
param topicName string
param subscriptionNames array
param keyVaultName string
@description('Key Vault items (secrets) the principal reads.')
param vaultItemNames array
param applicationInsightsName string

@description('Also the roles only the Functions host needs (its blob storage, telemetry); off for a developer running the code locally.')
param hostRoles bool = true

// Built-in role definition ids, the same in every tenant:
// https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage (Storage Table
// Data Contributor: 0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3) and the other categories' pages.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = {
  parent: namespace
  name: queueName
}

resource topic 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' existing = {
  parent: namespace
  name: topicName
}

resource topicSubscriptions 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2024-01-01' existing = [
  for subscriptionName in subscriptionNames: {
    parent: topic
    name: subscriptionName
  }
]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = [
  for itemName in vaultItemNames: {
    parent: vault
    name: itemName
  }
]

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hostRoles) {
  name: guid(storage.id, principalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: principalId
    principalType: principalType
  }
}

resource tableDataContributors 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (tableName, i) in tableNames: {
    name: guid(tables[i].id, principalId, roles.storageTableDataContributor)
    scope: tables[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
      principalId: principalId
      principalType: principalType
    }
  }
]

resource queueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, principalId, roles.serviceBusDataSender)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)
    principalId: principalId
    principalType: principalType
  }
}

resource queueReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, principalId, roles.serviceBusDataReceiver)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
    principalId: principalId
    principalType: principalType
  }
}

resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, principalId, roles.serviceBusDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)
    principalId: principalId
    principalType: principalType
  }
}

resource subscriptionReceivers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (subscriptionName, i) in subscriptionNames: {
    name: guid(topicSubscriptions[i].id, principalId, roles.serviceBusDataReceiver)
    scope: topicSubscriptions[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
      principalId: principalId
      principalType: principalType
    }
  }
]

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (itemName, i) in vaultItemNames: {
    name: guid(secrets[i].id, principalId, roles.keyVaultSecretsUser)
    scope: secrets[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
      principalId: principalId
      principalType: principalType
    }
  }
]

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hostRoles) {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: principalId
    principalType: principalType
  }
}
