"""Service Bus adapter: the change queue and the alert topic, through the azure-servicebus SDK.

Clients are long-lived (connecting and the CBS handshake cost ~0.5 s); build one per process with
`make_client` and inject it. Light enough for the webhook's cold path: no msgraph here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusSender
from azure.servicebus.exceptions import MessageSizeExceededError

from shared.changes import DeviceChange
from shared.commands import Command
from shared.events import CONTENT_TYPE, application_properties
from shared.settings import Settings, SettingsError

# Graph gives the webhook 3 s: fail fast and let Graph (or the queue) redeliver, rather than
# spend the budget on the SDK's default back-off (about 1.7 s per attempt on a refused connect).
_RETRY: dict[str, Any] = {"retry_total": 1, "retry_backoff_factor": 0.2, "retry_backoff_max": 1.0}


def make_client(settings: Settings) -> ServiceBusClient:
    if settings.service_bus_connection_string:
        return ServiceBusClient.from_connection_string(
            settings.service_bus_connection_string, **_RETRY
        )
    if settings.service_bus_namespace:
        from shared.identity import credential

        return ServiceBusClient(
            settings.service_bus_namespace, credential(settings, aio=True), **_RETRY
        )
    raise SettingsError(
        "Service Bus is not configured: set ServiceBusConnection (connection string, local) or "
        "ServiceBusConnection__fullyQualifiedNamespace (managed identity, Azure)"
    )


def change_message(change: DeviceChange) -> ServiceBusMessage:
    return ServiceBusMessage(
        change.to_json(),
        message_id=change.message_id,
        session_id=change.device_id,
        correlation_id=change.correlation_id,
        content_type="application/json",
        subject=change.change_type,
        application_properties={"source": change.source.value},
    )


async def send_batched(sender: ServiceBusSender, messages: Iterable[ServiceBusMessage]) -> int:
    """Send everything in as few batches as the entity's size limit allows; returns the count.

    Returns only after the broker accepted every batch: a caller may then acknowledge upstream.
    """
    sent = 0
    batch = await sender.create_message_batch()
    for message in messages:
        try:
            batch.add_message(message)
        except MessageSizeExceededError:
            if len(batch) == 0:
                raise
            await sender.send_messages(batch)
            sent += len(batch)
            batch = await sender.create_message_batch()
            batch.add_message(message)
    if len(batch):
        await sender.send_messages(batch)
        sent += len(batch)
    return sent


class ChangeQueue:
    """Sends device changes to `device-changes`, one session per device."""

    def __init__(self, client: ServiceBusClient, queue_name: str) -> None:
        self._sender = client.get_queue_sender(queue_name)

    async def send(self, changes: Iterable[DeviceChange]) -> int:
        return await send_batched(self._sender, (change_message(c) for c in changes))

    async def send_commands(self, commands: Iterable[Command]) -> int:
        return await send_batched(self._sender, (c.to_message() for c in commands))

    async def close(self) -> None:
        await self._sender.close()


class AlertPublisher:
    """Publishes alert CloudEvents to `device-alerts`; the event id is the message id, so the
    topic's duplicate detection turns a republished alert into a no-op."""

    def __init__(self, client: ServiceBusClient, topic_name: str) -> None:
        self._sender = client.get_topic_sender(topic_name)

    async def publish(self, alert: dict[str, Any]) -> None:
        await self._sender.send_messages(
            ServiceBusMessage(
                json.dumps(alert, separators=(",", ":")),
                message_id=alert["id"],
                correlation_id=alert["data"]["detection"]["correlationId"] or None,
                content_type=CONTENT_TYPE,
                subject=alert["subject"],
                application_properties=application_properties(alert),  # type: ignore[arg-type]
            )
        )

    async def close(self) -> None:
        await self._sender.close()
