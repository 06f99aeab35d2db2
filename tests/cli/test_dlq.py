"""`devicemon dlq show|redrive` and health's view of dead letters, against the local broker
through the real azure-servicebus SDK."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from shared.runtime import Runtime
from shared.settings import Settings
from tests.alert_helpers import make_alert
from tests.cli.conftest import devicemon
from tests.health_helpers import fresh_bookkeeping, health_report
from tests.servicebus_helpers import drain_sessions, drain_subscription


def dead_letter_a_change(connection: str, queue: str, device_id: str, message_id: str) -> None:
    with ServiceBusClient.from_connection_string(connection) as client:
        with client.get_queue_sender(queue) as sender:
            body = json.dumps({"device_id": device_id, "message_id": message_id})
            sender.send_messages(
                ServiceBusMessage(body, session_id=device_id, message_id=message_id)
            )
        with client.get_queue_receiver(queue, session_id=device_id, max_wait_time=5) as receiver:
            (message,) = receiver.receive_messages(max_message_count=1, max_wait_time=5)
            receiver.dead_letter_message(
                message, reason="ProcessingFailed", error_description="Graph answered 500"
            )


def dead_letter_an_alert(connection: str, topic: str, alert: dict[str, object]) -> None:
    with ServiceBusClient.from_connection_string(connection) as client:
        with client.get_topic_sender(topic) as sender:
            sender.send_messages(ServiceBusMessage(json.dumps(alert), message_id=str(alert["id"])))
        with client.get_subscription_receiver(topic, "teams", max_wait_time=5) as receiver:
            (message,) = receiver.receive_messages(max_message_count=1, max_wait_time=5)
            receiver.dead_letter_message(message, reason="TeamsRejected", error_description="403")
    drain_subscription(connection, topic, "audit", wait=0.5)  # the topic's other copies


async def test_show_health_and_redrive(
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    settings: Settings,
    runtime: Runtime,
    stack,
) -> None:
    connection = stack.service_bus_connection
    queue, topic = settings.device_changes_queue, settings.device_alerts_topic
    await fresh_bookkeeping(runtime)
    status, report = await health_report(runtime)
    assert (status, report["status"]) == (200, "healthy"), report["problems"]

    device_id = str(uuid.uuid4())
    alert = make_alert(alert_id=str(uuid.uuid4()))
    await asyncio.gather(
        asyncio.to_thread(dead_letter_a_change, connection, queue, device_id, "change-1"),
        asyncio.to_thread(dead_letter_an_alert, connection, topic, alert),
    )

    status, report = await health_report(runtime)
    assert (status, report["status"]) == (503, "unhealthy")
    assert report["deadLetters"] == {queue: 1, f"{topic}/teams": 1, f"{topic}/remediation": 0}
    assert "devicemon dlq show" in json.dumps(report["problems"])

    shown = await devicemon(capsys, env, "dlq", "show", "--json")
    assert shown.code == 0, shown.err
    letters = {item["messageId"]: item for item in json.loads(shown.out)}
    assert letters["change-1"]["reason"] == "ProcessingFailed"
    assert letters["change-1"]["description"] == "Graph answered 500"
    assert letters["change-1"]["sessionId"] == device_id
    assert letters[alert["id"]]["entity"] == f"{topic}/teams"
    text = await devicemon(capsys, env, "dlq", "show", "--exit-code")
    assert text.code == 1 and "TeamsRejected: 403" in text.out

    moved = await devicemon(capsys, env, "dlq", "redrive", queue)
    assert moved.code == 0, moved.err
    # Read back while the topic's letter is redriven: each read ends by waiting for nothing.
    requeued_read = asyncio.ensure_future(asyncio.to_thread(drain_sessions, connection, queue))

    missing = await devicemon(capsys, env, "dlq", "redrive", "teams", "--message-id", "nope")
    assert missing.code == 1 and "nope" in missing.err
    moved = await devicemon(capsys, env, "dlq", "redrive", "teams", "--message-id", alert["id"])
    assert moved.code == 0, moved.err
    audit, empty = await asyncio.gather(
        asyncio.to_thread(drain_subscription, connection, topic, "audit"),
        devicemon(capsys, env, "dlq", "show", "--exit-code"),
    )
    assert [json.loads(b"".join(m.body))["id"] for m in audit] == [alert["id"]]
    assert empty.code == 0, empty.out

    requeued = await requeued_read
    assert [m.session_id for m in requeued] == [device_id]
    (again,) = requeued
    assert again.message_id != "change-1"  # a new id: duplicate detection would drop the old
    assert (again.application_properties or {})[b"redrivenFrom"] == b"change-1"
    status, report = await health_report(runtime)
    assert (status, report["status"]) == (200, "healthy"), report["problems"]


async def test_unknown_entity_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    result = await devicemon(capsys, env, "dlq", "show", "no-such-queue")
    assert result.code == 2 and "one of" in result.err
