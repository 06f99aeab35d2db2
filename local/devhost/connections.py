"""Service Bus `connection` resolution, following the Functions host's lookup rules."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import certifi
from azure.servicebus.aio import ServiceBusClient

log = logging.getLogger("devhost")

# What the host uses when a Service Bus trigger names no connection.
DEFAULT_CONNECTION = "AzureWebJobsServiceBus"


class MissingConnectionError(LookupError):
    """No app setting defines the named connection."""


@dataclass(frozen=True)
class ServiceBusConnection:
    """Either a connection string or an identity-based namespace, from app settings."""

    name: str
    connection_string: str | None = None
    fully_qualified_namespace: str | None = None
    client_id: str | None = None
    credential_kind: str | None = None

    def describe(self) -> str:
        if self.connection_string is not None:
            endpoint = next(
                (
                    p.split("=", 1)[1]
                    for p in self.connection_string.split(";")
                    if p.lower().startswith("endpoint=")
                ),
                "?",
            )
            return f"{self.name} (connection string, {endpoint})"
        return f"{self.name} (identity, {self.fully_qualified_namespace})"


def resolve_connection(
    name: str | None, environ: Mapping[str, str] | None = None
) -> ServiceBusConnection:
    """Find connection `name` the way the host does.

    A plain value under NAME (or ConnectionStrings__NAME, or AzureWebJobsNAME) is a
    connection string; otherwise NAME__fullyQualifiedNamespace selects an identity-based
    connection (DefaultAzureCredential; NAME__clientId with NAME__credential=managedidentity
    picks a user-assigned identity).
    """
    env = os.environ if environ is None else environ
    name = name or DEFAULT_CONNECTION
    for key in (f"ConnectionStrings__{name}", f"AzureWebJobs{name}", name):
        value = env.get(key)
        if value:
            return ServiceBusConnection(name=name, connection_string=value)
    for section in (name, f"AzureWebJobs{name}"):
        namespace = env.get(f"{section}__fullyQualifiedNamespace")
        if namespace:
            return ServiceBusConnection(
                name=name,
                fully_qualified_namespace=namespace,
                client_id=env.get(f"{section}__clientId"),
                credential_kind=env.get(f"{section}__credential"),
            )
    raise MissingConnectionError(
        f"Service Bus connection {name!r} is not configured: set app setting {name} to a "
        f"connection string or {name}__fullyQualifiedNamespace for an identity-based connection"
    )


class ClientPool:
    """One ServiceBusClient per connection, created on first use and closed together."""

    def __init__(self) -> None:
        self._clients: dict[str, ServiceBusClient] = {}
        self._credentials: list[Any] = []
        # The Python SDK opens one AMQP connection per receiver and, unless given a context,
        # builds a fresh SSL context (loading the CA bundle, ~20 ms of CPU) for each: with a
        # receiver per session that dominated the host's CPU. One shared context fixes it.
        self._ssl_context = ssl.create_default_context(cafile=certifi.where())

    def get(self, connection: ServiceBusConnection) -> ServiceBusClient:
        client = self._clients.get(connection.name)
        if client is not None:
            return client
        if connection.connection_string is not None:
            client = ServiceBusClient.from_connection_string(
                connection.connection_string, ssl_context=self._ssl_context
            )
        else:
            # Imported lazily: only identity-based connections need azure-identity.
            from azure.identity.aio import DefaultAzureCredential

            kwargs: dict[str, Any] = {}
            if connection.client_id and (connection.credential_kind or "").lower() in (
                "",
                "managedidentity",
            ):
                kwargs["managed_identity_client_id"] = connection.client_id
            credential = DefaultAzureCredential(**kwargs)
            self._credentials.append(credential)
            assert connection.fully_qualified_namespace is not None
            client = ServiceBusClient(
                connection.fully_qualified_namespace, credential, ssl_context=self._ssl_context
            )
        self._clients[connection.name] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            try:
                await client.close()
            except Exception:  # closing is best effort at shutdown
                log.debug("closing Service Bus client failed", exc_info=True)
        for credential in self._credentials:
            try:
                await credential.close()
            except Exception:
                log.debug("closing credential failed", exc_info=True)
        self._clients.clear()
        self._credentials.clear()
