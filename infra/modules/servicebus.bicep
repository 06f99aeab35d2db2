// Service Bus (Standard): the session-enabled change queue and the alert topic with its two
// built-in subscriptions. SAS keys are off (disableLocalAuth): only Entra ID identities with data
// roles on the entities (rbac.bicep) can send or receive.

param name string
param location string
param tags object = {}

@description('DEVICE_CHANGES_QUEUE')
param queueName string = 'device-changes'

@description('DEVICE_ALERTS_TOPIC')
param topicName string = 'device-alerts'

@description('Built-in subscriptions on the alert topic.')
param subscriptionNames array = [
  'teams'
  'remediation'
]

@description('Log Analytics workspace that receives the namespace\'s operational (management) log.')
param logAnalyticsWorkspaceId string

@description('Deliveries before a message is dead-lettered (docs/reliability.md).')
@minValue(1)
@maxValue(2000)
param maxDeliveryCount int = 10

@description('Queue duplicate detection window: Graph redelivers a notification for up to 4 hours, and message ids derive from the notification.')
param queueDuplicateWindow string = 'PT4H'

@description('Topic duplicate detection window: a re-published alert (same event id) is dropped within it.')
param topicDuplicateWindow string = 'P1D'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: queueName
  properties: {
    requiresSession: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: queueDuplicateWindow
    maxDeliveryCount: maxDeliveryCount
    lockDuration: 'PT1M'
    defaultMessageTimeToLive: 'P14D'
    deadLetteringOnMessageExpiration: true
    enablePartitioning: false
  }
}

resource topic 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' = {
  parent: namespace
  name: topicName
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: topicDuplicateWindow
    defaultMessageTimeToLive: 'P14D'
    enablePartitioning: false
  }
}

resource subscriptions 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2024-01-01' = [
  for subscriptionName in subscriptionNames: {
    parent: topic
    name: subscriptionName
    properties: {
      maxDeliveryCount: maxDeliveryCount
      lockDuration: 'PT1M'
      deadLetteringOnMessageExpiration: true
      deadLetteringOnFilterEvaluationExceptions: true
    }
  }
]

// Who created, changed or deleted the namespace or an entity (queue, topic, subscription, rule):
// OperationalLogs, a few rows a month. Not the per-message runtime audit log (RuntimeAuditLogs), which
// Service Bus offers on the Premium tier only. Categories and tables:
// https://learn.microsoft.com/azure/azure-monitor/reference/supported-logs/microsoft-servicebus-namespaces-logs
resource operationalLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'operations-to-log-analytics'
  scope: namespace
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'OperationalLogs'
        enabled: true
      }
    ]
  }
}

output name string = namespace.name
// Host name only (<name>.servicebus.windows.net in the public cloud), as the SDK and the
// Functions extension expect in ServiceBusConnection__fullyQualifiedNamespace.
output fullyQualifiedNamespace string = split(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]
output queueName string = queue.name
output topicName string = topic.name
