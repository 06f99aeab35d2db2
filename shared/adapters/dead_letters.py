"""Dead-letter queues of devicemon's entities: count them (health), list and redrive them (CLI).

What the app's identity can do: it already holds Azure Service Bus Data Receiver on the
`device-changes` queue and the topic's subscriptions (its triggers need it), and receiving rights
include peeking a dead-letter sub-queue. So health counts dead letters by peeking, with no extra
role and without the management plane (which would need Manage rights or an ARM role). Redrive
receives from the dead-letter queue and sends to the queue or topic: it needs Data Receiver on
the entity and Data Sender on the queue/topic (docs/cli.md).

A redriven message gets a new message id (the original is kept in the `redrivenFrom` property):
the queue and topic drop a repeated id for their duplicate-detection window, which would turn a
redrive soon after the failure into a silent no-op. Consumers stay exactly-once because they
key their effects on what the body says (the device's state version, the alert's CloudEvent id).
A redrive to the topic reaches every subscription of it; devicemon's own consumers skip an alert
they already handled, and other subscribers should deduplicate by CloudEvent `id` + `source`,
as the CloudEvents spec advises.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver

from shared.settings import Settings

ALERT_SUBSCRIPTIONS = ("teams", "remediation")
# Peeking past this many is not worth the time: health says "at least this many".
PEEK_CAP = 100


@dataclass(frozen=True, slots=True)
class Entity:
    """A queue, or a topic subscription, whose dead-letter sub-queue devicemon watches."""

    name: str  # what operators call it: the queue name, or "topic/subscription"
    queue: str | None = None
    topic: str | None = None
    subscription: str | None = None

    @property
    def send_to(self) -> str:
        return self.queue or self.topic or ""


def entities(settings: Settings) -> list[Entity]:
    topic = settings.device_alerts_topic
    return [
        Entity(settings.device_changes_queue, queue=settings.device_changes_queue),
        *(Entity(f"{topic}/{sub}", topic=topic, subscription=sub) for sub in ALERT_SUBSCRIPTIONS),
    ]


def find_entity(settings: Settings, name: str) -> Entity:
    known = entities(settings)
    for entity in known:
        if name in (entity.name, entity.subscription):
            return entity
    names = ", ".join(e.name for e in known)
    raise ValueError(f"unknown entity {name!r}: one of {names}")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entity: str
    sequence_number: int | None
    message_id: str | None
    session_id: str | None
    subject: str | None
    enqueued_at: datetime | None
    delivery_count: int | None
    reason: str | None
    description: str | None
    body: bytes

    def summary(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "sequenceNumber": self.sequence_number,
            "messageId": self.message_id,
            "sessionId": self.session_id,
            "subject": self.subject,
            "enqueuedAt": self.enqueued_at.isoformat() if self.enqueued_at else None,
            "deliveryCount": self.delivery_count,
            "reason": self.reason,
            "description": self.description,
            "body": self.body[:2000].decode("utf-8", "replace"),
        }


def _dead_letter(entity: Entity, message: ServiceBusReceivedMessage) -> DeadLetter:
    return DeadLetter(
        entity=entity.name,
        sequence_number=message.sequence_number,
        message_id=message.message_id,
        session_id=message.session_id,
        subject=message.subject,
        enqueued_at=message.enqueued_time_utc,
        delivery_count=message.delivery_count,
        reason=message.dead_letter_reason,
        description=message.dead_letter_error_description,
        body=b"".join(message.body),
    )


def _receiver(client: ServiceBusClient, entity: Entity, wait: float) -> ServiceBusReceiver:
    if entity.queue:
        return client.get_queue_receiver(
            entity.queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=wait
        )
    assert entity.topic and entity.subscription
    return client.get_subscription_receiver(
        entity.topic,
        entity.subscription,
        sub_queue=ServiceBusSubQueue.DEAD_LETTER,
        max_wait_time=wait,
    )


async def peek(client: ServiceBusClient, entity: Entity, limit: int = PEEK_CAP) -> list[DeadLetter]:
    """Up to `limit` dead letters, oldest first, without locking or removing any."""
    found: list[DeadLetter] = []
    async with _receiver(client, entity, wait=1.0) as receiver:
        sequence = 0
        while len(found) < limit:
            batch = await receiver.peek_messages(
                max_message_count=min(100, limit - len(found)), sequence_number=sequence
            )
            if not batch:
                break
            found.extend(_dead_letter(entity, m) for m in batch)
            sequence = (batch[-1].sequence_number or 0) + 1
    return found


async def counts(client: ServiceBusClient, settings: Settings) -> dict[str, int]:
    """Dead letters per entity, each capped at PEEK_CAP, peeked concurrently."""
    known = entities(settings)
    found = await asyncio.gather(*(peek(client, e) for e in known))
    return {e.name: len(letters) for e, letters in zip(known, found, strict=True)}


def _resend(message: ServiceBusReceivedMessage) -> ServiceBusMessage:
    properties: dict[str | bytes, Any] = {
        (k.decode() if isinstance(k, bytes) else str(k)): v
        for k, v in (message.application_properties or {}).items()
    }
    properties["redrivenFrom"] = message.message_id or ""
    return ServiceBusMessage(
        b"".join(message.body),
        message_id=f"redrive-{uuid.uuid4().hex}",
        session_id=message.session_id,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        subject=message.subject,
        application_properties=properties,
    )


async def redrive(
    client: ServiceBusClient,
    entity: Entity,
    *,
    limit: int,
    message_ids: frozenset[str] | None = None,
) -> list[DeadLetter]:
    """Move up to `limit` dead letters (only `message_ids`, when given) back to where they came
    from. Each is sent first and completed in the DLQ after: a crash in between leaves a copy
    in both places, never in neither (the consumers are idempotent)."""
    moved: list[DeadLetter] = []
    async with (
        _receiver(client, entity, wait=2.0) as receiver,
        client.get_queue_sender(entity.send_to)
        if entity.queue
        else client.get_topic_sender(entity.send_to) as sender,
    ):
        skipped: list[ServiceBusReceivedMessage] = []
        while len(moved) < limit:
            batch = await receiver.receive_messages(
                max_message_count=min(100, limit - len(moved)), max_wait_time=2.0
            )
            if not batch:
                break
            for message in batch:
                wanted = message_ids is None or message.message_id in message_ids
                if not wanted or len(moved) >= limit:
                    skipped.append(message)  # given back below, not left locked
                    continue
                await sender.send_messages(_resend(message))
                await receiver.complete_message(message)
                moved.append(_dead_letter(entity, message))
        for message in skipped:
            await receiver.abandon_message(message)
    return moved
