"""`devicemon`: the operators' command line over the same Table storage, Service Bus and Graph
as the function app (docs/cli.md)."""
