"""A local stand-in for the Azure Functions host: runs a FunctionApp's HTTP, Service Bus and
timer functions with the host's semantics (see host.DevHost and `python -m local.devhost`)."""

from local.devhost.host import DevHost
from local.devhost.settings import HostConfig, ServiceBusOptions, load_local_settings

__all__ = ["DevHost", "HostConfig", "ServiceBusOptions", "load_local_settings"]
