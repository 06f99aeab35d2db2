"""Adapters: one module per Azure service or table, thin, over the Azure SDKs (Microsoft Graph,
Table storage, Service Bus, identity). They may use the core and the support modules at the top
of `shared` (settings, logs, retry), never a source, consumer, view or the processing."""
