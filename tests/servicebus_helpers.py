"""Reading what landed on the broker, through the real azure-servicebus SDK."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    ServiceBusClient,
    ServiceBusReceivedMessage,
    ServiceBusSubQueue,
)
from azure.servicebus.exceptions import OperationTimeoutError


def drain_sessions(
    connection: str, queue: str, wait: float = 1.0, workers: int = 8
) -> list[ServiceBusReceivedMessage]:
    """Complete and return every message of a session-enabled queue.

    Opening a session receiver costs the Python SDK about half a second, so several workers
    take sessions in parallel until none is left.
    """

    def worker() -> list[ServiceBusReceivedMessage]:
        found: list[ServiceBusReceivedMessage] = []
        with ServiceBusClient.from_connection_string(connection, retry_total=0) as client:
            while True:
                try:
                    with client.get_queue_receiver(
                        queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=wait
                    ) as receiver:
                        batch = receiver.receive_messages(max_message_count=500, max_wait_time=wait)
                        while batch:
                            for message in batch:
                                receiver.complete_message(message)
                            found.extend(batch)
                            batch = receiver.receive_messages(
                                max_message_count=500, max_wait_time=0.05
                            )
                except OperationTimeoutError:
                    return found

    with ThreadPoolExecutor(workers) as pool:
        return [m for part in pool.map(lambda _: worker(), range(workers)) for m in part]


def drain_subscription(
    connection: str, topic: str, subscription: str, wait: float = 1.0, dead_letter: bool = False
) -> list[ServiceBusReceivedMessage]:
    found: list[ServiceBusReceivedMessage] = []
    sub_queue = ServiceBusSubQueue.DEAD_LETTER if dead_letter else None
    with (
        ServiceBusClient.from_connection_string(connection) as client,
        client.get_subscription_receiver(
            topic, subscription, sub_queue=sub_queue, max_wait_time=wait
        ) as receiver,
    ):
        batch = receiver.receive_messages(max_message_count=500, max_wait_time=wait)
        while batch:
            for message in batch:
                receiver.complete_message(message)
            found.extend(batch)
            batch = receiver.receive_messages(max_message_count=500, max_wait_time=0.05)
    return found


def drain_dead_letters(
    connection: str, queue: str, wait: float = 1.0
) -> list[ServiceBusReceivedMessage]:
    found: list[ServiceBusReceivedMessage] = []
    with (
        ServiceBusClient.from_connection_string(connection) as client,
        client.get_queue_receiver(
            queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=wait
        ) as receiver,
    ):
        batch = receiver.receive_messages(max_message_count=500, max_wait_time=wait)
        while batch:
            for message in batch:
                receiver.complete_message(message)
            found.extend(batch)
            batch = receiver.receive_messages(max_message_count=500, max_wait_time=0.05)
    return found


def body_json(message: ServiceBusReceivedMessage) -> Any:
    return json.loads(b"".join(message.body))


def send_raw(connection: str, queue: str, body: str, session_id: str, message_id: str) -> None:
    from azure.servicebus import ServiceBusMessage

    with (
        ServiceBusClient.from_connection_string(connection) as client,
        client.get_queue_sender(queue) as sender,
    ):
        sender.send_messages(ServiceBusMessage(body, session_id=session_id, message_id=message_id))
