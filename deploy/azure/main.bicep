// dualwrite on Azure: N replicas of the bridge in Container Apps, on a Service Bus session queue and
// Azure Database for PostgreSQL (flexible server), every secret in Key Vault (docs/deploy.md, "Azure").
//   az deployment group create -g RG -f deploy/azure/main.bicep -p image=… cdsUrl=… scmUrl=… \
//     entraTenantId=… clientId=… clientSecret=… cdsWebhookKey=… scmWebhookKey=… adminToken=… \
//     postgresAdminPassword=…
// The queue's settings equal the bridge's defaults (bridge/settings.py, bridge/queue/sqlite.py):
// tests/deploy/test_azure.py reads both and fails when one changes without the other.

@description('Region of every resource')
param location string = resourceGroup().location

@description('Prefix of the resource names (3 to 12 lower-case letters and digits, starting with a letter)')
@minLength(3)
@maxLength(12)
param namePrefix string = 'dualwrite'

@description('The bridge image (deploy/Dockerfile, target runtime), e.g. myregistry.azurecr.io/dualwrite:0.1.0')
param image string

@description('Bridge replicas; all of them run all the time (no scale to zero: webhooks must be answered)')
@minValue(1)
@maxValue(30)
param replicas int = 3

@description('vCPU per replica (Container Apps consumption sizes, 2 GiB per vCPU; docs/deploy.md sizes them)')
@allowed([
  '0.5'
  '1.0'
  '1.5'
  '2.0'
])
param replicaCpu string = '0.5'

@description('Dataverse Web API base, e.g. https://contoso.crm.dynamics.com/api/data/v9.2')
param cdsUrl string

@description('Token scope of Dataverse, e.g. https://contoso.crm.dynamics.com/.default')
param cdsScope string

@description('F&O OData base, e.g. https://contoso.operations.dynamics.com/data')
param scmUrl string

@description('Token scope of F&O, e.g. https://contoso.operations.dynamics.com/.default')
param scmScope string

@description('Entra ID tenant of the bridge app registration')
param entraTenantId string = subscription().tenantId

@description('Client id of the bridge app registration')
param clientId string

@secure()
@description('Client secret of the bridge app registration (stored in Key Vault)')
param clientSecret string

@secure()
@description('Webhook key(s) Dataverse sends; comma-separated while one is rotated out')
param cdsWebhookKey string

@secure()
@description('Webhook key(s) the F&O data event endpoint sends')
param scmWebhookKey string

@secure()
@description('Token of the operations API and dashboard')
param adminToken string

@description('Administrator login of the PostgreSQL server')
param postgresAdminLogin string = 'dualwrite'

@secure()
@description('Administrator password of the PostgreSQL server')
param postgresAdminPassword string

@description('PostgreSQL compute (docs/deploy.md sizes it)')
param postgresSkuName string = 'Standard_B1ms'

@allowed([
  'Burstable'
  'GeneralPurpose'
  'MemoryOptimized'
])
param postgresSkuTier string = 'Burstable'

@description('Zone-redundant standby of the database (needs GeneralPurpose or MemoryOptimized)')
param postgresHighAvailability bool = false

@description('Service Bus tier: sessions and duplicate detection need Standard or Premium')
@allowed([
  'Standard'
  'Premium'
])
param serviceBusSku string = 'Standard'

var suffix = uniqueString(resourceGroup().id, namePrefix)
var queueName = 'dualwrite-changes'
var databaseName = 'dualwrite'
var appName = '${namePrefix}-bridge'
var memoryOfCpu = {
  '0.5': '1Gi'
  '1.0': '2Gi'
  '1.5': '3Gi'
  '2.0': '4Gi'
}

// The bridge's queue defaults in Service Bus terms (the queue below):
//   lockDuration                         = [sync] lease_s (60 s): a dead replica's change is handed on after it
//   maxDeliveryCount                     = [sync] max_attempts (8): then the change is a dead letter
//   duplicateDetectionHistoryTimeWindow  = the queue's dedupe retention (7 days, SqliteQueue); also Service Bus's maximum
//   requiresSession                      = per-record order: the session id is the record's ordering key
//   deadLetteringOnMessageExpiration     = an expired change is kept as a dead letter, never dropped

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-id'
  location: location
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs-${suffix}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: '${namePrefix}-sb-${suffix}'
  location: location
  sku: {
    name: serviceBusSku
    tier: serviceBusSku
  }
  properties: {
    minimumTlsVersion: '1.2'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: serviceBus
  name: queueName
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 8
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'P7D'
    requiresSession: true
    deadLetteringOnMessageExpiration: true
    enablePartitioning: false
    maxSizeInMegabytes: 5120
  }
}

// Send and listen only: the bridge never manages the namespace.
resource bridgeRule 'Microsoft.ServiceBus/namespaces/authorizationRules@2024-01-01' = {
  parent: serviceBus
  name: 'dualwrite-bridge'
  properties: {
    rights: [
      'Send'
      'Listen'
    ]
  }
}

resource postgres 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: '${namePrefix}-pg-${suffix}'
  location: location
  sku: {
    name: postgresSkuName
    tier: postgresSkuTier
  }
  properties: {
    version: '16'
    administratorLogin: postgresAdminLogin
    administratorLoginPassword: postgresAdminPassword
    storage: {
      storageSizeGB: 32
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: 7
      geoRedundantBackup: 'Disabled'
    }
    highAvailability: {
      mode: postgresHighAvailability ? 'ZoneRedundant' : 'Disabled'
    }
    network: {
      publicNetworkAccess: 'Enabled'
    }
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: postgres
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
}

// Azure services only (0.0.0.0 is that rule's documented marker); put both in a virtual network
// for a private endpoint instead (docs/deploy.md).
resource postgresFromAzure 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = {
  parent: postgres
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: take('${namePrefix}-kv-${suffix}', 24) // a vault name has at most 24 characters
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
  }
}

resource clientSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'client-secret'
  properties: {
    value: clientSecret
  }
}

resource cdsWebhookKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'cds-webhook-key'
  properties: {
    value: cdsWebhookKey
  }
}

resource scmWebhookKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'scm-webhook-key'
  properties: {
    value: scmWebhookKey
  }
}

resource adminTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'admin-token'
  properties: {
    value: adminToken
  }
}

resource databaseUrlSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'database-url'
  properties: {
    value: 'postgresql://${postgresAdminLogin}:${uriComponent(postgresAdminPassword)}@${postgres.properties.fullyQualifiedDomainName}:5432/${databaseName}?sslmode=require'
  }
}

resource serviceBusSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'servicebus-connection-string'
  properties: {
    value: bridgeRule.listKeys().primaryConnectionString
  }
}

// Key Vault Secrets User (a built-in role): the replicas' identity reads the secrets, nothing more.
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, identity.id, '4633458b-17de-408a-b874-0445c86b69e6')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4633458b-17de-408a-b874-0445c86b69e6')
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appEnvironment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${namePrefix}-env'
  location: location
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
  }
}

resource bridge 'Microsoft.App/containerApps@2024-03-01' = {
  name: appName
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  dependsOn: [
    secretsUser
    database
    postgresFromAzure
    queue
  ]
  properties: {
    managedEnvironmentId: appEnvironment.id
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: 8080
        transport: 'http'
        allowInsecure: false
      }
      // Key Vault references: the platform reads each value with the identity; none is in the template.
      secrets: [
        {
          name: 'client-secret'
          keyVaultUrl: clientSecretSecret.properties.secretUri
          identity: identity.id
        }
        {
          name: 'cds-webhook-key'
          keyVaultUrl: cdsWebhookKeySecret.properties.secretUri
          identity: identity.id
        }
        {
          name: 'scm-webhook-key'
          keyVaultUrl: scmWebhookKeySecret.properties.secretUri
          identity: identity.id
        }
        {
          name: 'admin-token'
          keyVaultUrl: adminTokenSecret.properties.secretUri
          identity: identity.id
        }
        {
          name: 'database-url'
          keyVaultUrl: databaseUrlSecret.properties.secretUri
          identity: identity.id
        }
        {
          name: 'servicebus-connection-string'
          keyVaultUrl: serviceBusSecret.properties.secretUri
          identity: identity.id
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'dualwrite'
          image: image
          resources: {
            cpu: json(replicaCpu)
            memory: memoryOfCpu[replicaCpu]
          }
          env: [
            {
              name: 'DUALWRITE_CDS__URL'
              value: cdsUrl
            }
            {
              name: 'DUALWRITE_CDS__SCOPE'
              value: cdsScope
            }
            {
              name: 'DUALWRITE_SCM__URL'
              value: scmUrl
            }
            {
              name: 'DUALWRITE_SCM__SCOPE'
              value: scmScope
            }
            {
              name: 'DUALWRITE_AUTH__AUTHORITY'
              value: '${environment().authentication.loginEndpoint}${entraTenantId}'
            }
            {
              name: 'DUALWRITE_AUTH__CLIENT_ID'
              value: clientId
            }
            {
              name: 'DUALWRITE_LISTEN__PUBLIC_URL'
              value: 'https://${appName}.${appEnvironment.properties.defaultDomain}'
            }
            {
              name: 'DUALWRITE_QUEUE__BACKEND'
              value: 'servicebus'
            }
            {
              name: 'DUALWRITE_QUEUE__SERVICEBUS_QUEUE'
              value: queueName
            }
            {
              name: 'DUALWRITE_STATE__BACKEND'
              value: 'postgres'
            }
            {
              name: 'DUALWRITE_CLIENT_SECRET'
              secretRef: 'client-secret'
            }
            {
              name: 'DUALWRITE_CDS_WEBHOOK_KEY'
              secretRef: 'cds-webhook-key'
            }
            {
              name: 'DUALWRITE_SCM_WEBHOOK_KEY'
              secretRef: 'scm-webhook-key'
            }
            {
              name: 'DUALWRITE_ADMIN_TOKEN'
              secretRef: 'admin-token'
            }
            {
              name: 'DUALWRITE_DATABASE_URL'
              secretRef: 'database-url'
            }
            {
              name: 'DUALWRITE_SERVICEBUS_CONNECTION_STRING'
              secretRef: 'servicebus-connection-string'
            }
          ]
          probes: [
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: 8080
              }
              periodSeconds: 15
              failureThreshold: 3
            }
            {
              // Not /readyz: it answers 503 while Dataverse or F&O is unreachable, which would take every
              // replica out of rotation and refuse the other system's changes instead of queueing them.
              type: 'Readiness'
              httpGet: {
                path: '/healthz'
                port: 8080
              }
              periodSeconds: 10
              failureThreshold: 3
            }
            {
              type: 'Startup'
              httpGet: {
                path: '/healthz'
                port: 8080
              }
              periodSeconds: 5
              failureThreshold: 24
            }
          ]
        }
      ]
      scale: {
        minReplicas: replicas
        maxReplicas: replicas
      }
    }
  }
}

output bridgeUrl string = 'https://${bridge.properties.configuration.ingress.fqdn}'
output cdsWebhookUrl string = 'https://${bridge.properties.configuration.ingress.fqdn}/webhooks/cds'
output scmWebhookUrl string = 'https://${bridge.properties.configuration.ingress.fqdn}/webhooks/scm'
output serviceBusNamespace string = serviceBus.name
output queueName string = queue.name
output keyVaultName string = vault.name
