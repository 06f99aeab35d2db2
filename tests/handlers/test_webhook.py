from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import azure.functions as func
import pytest

from handlers import webhook
from handlers.responses import MAX_VALIDATION_TOKEN_CHARS
from shared.runtime import Runtime
from tests.conftest import CLIENT_STATE
from tests.servicebus_helpers import body_json, drain_sessions

ROOT = Path(__file__).resolve().parents[2]


def post(body: bytes, params: dict[str, str] | None = None) -> func.HttpRequest:
    return func.HttpRequest(
        "POST",
        "http://localhost/api/graph/notifications",
        headers={"content-type": "application/json", "content-length": str(len(body))},
        params=params or {},
        body=body,
    )


def notification(
    device_id: str, tenant: str, client_state: str = CLIENT_STATE, **extra: object
) -> dict[str, object]:
    item: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "subscriptionId": "sub-1",
        "subscriptionExpirationDateTime": "2026-12-20T00:00:00Z",
        "clientState": client_state,
        "changeType": "updated",
        "resource": f"Devices/{device_id}",
        "tenantId": tenant,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Device",
            "@odata.id": f"Devices/{device_id}",
            "id": device_id,
        },
    }
    item.update(extra)
    return item


def payload(*items: dict[str, object]) -> bytes:
    return json.dumps({"value": list(items)}).encode()


async def test_validation_handshake_echoes_the_token_as_plain_text(runtime: Runtime) -> None:
    token = (
        "Validation: Testing client application reachability for subscription Request-Id: a+b&c=d é"
    )
    response = await webhook.notifications(post(b"", {"validationToken": token}), runtime)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_body().decode() == token


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty body"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "'value' array"),
        (b'{"value": {"id": 1}}', "'value' array"),
    ],
)
async def test_malformed_body_is_answered_400_with_a_clear_json_error(
    runtime: Runtime, body: bytes, fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="devicemon.webhook"):
        response = await webhook.notifications(post(body), runtime)
    assert response.status_code == 400
    error = json.loads(response.get_body())["error"]
    assert error["code"] == "malformedNotification"
    assert fragment in error["message"]
    assert "notification_rejected" in caplog.text


async def test_oversized_body_is_refused_before_parsing(runtime: Runtime, tenant: str) -> None:
    rt = Runtime(replace(runtime.settings, max_notification_bytes=2048))
    big = payload(*[notification(str(uuid.uuid4()), tenant) for _ in range(20)])
    response = await webhook.notifications(post(big), rt)
    assert response.status_code == 413
    await rt.close()


async def test_accepted_notification_is_queued_per_device_session(
    runtime: Runtime, tenant: str, stack
) -> None:
    device = str(uuid.uuid4())
    response = await webhook.notifications(post(payload(notification(device, tenant))), runtime)
    assert response.status_code == 202

    messages = drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    assert len(messages) == 1
    message = messages[0]
    assert message.session_id == device
    body = body_json(message)
    assert body["device_id"] == device
    assert body["source"] == "notification"
    assert body["correlation_id"] == message.message_id


async def test_graph_redelivering_the_same_post_queues_it_once(
    runtime: Runtime, tenant: str, stack
) -> None:
    same = payload(notification(str(uuid.uuid4()), tenant))
    for _ in range(3):
        assert (await webhook.notifications(post(same), runtime)).status_code == 202
    assert (
        len(drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue))
        == 1
    )


async def test_lifecycle_events_sent_to_the_notification_url_become_commands(
    runtime: Runtime, tenant: str, stack
) -> None:
    # microsoft-graph-docs-contrib concepts/webhooks-lifecycle.md: "you can use the existing
    # notificationUrl endpoint that already receives change notifications, or you can register a
    # separate lifecycleNotificationUrl". The payload shape is that page's `missed` example.
    device = str(uuid.uuid4())
    missed: dict[str, object] = {
        "subscriptionId": "7c6d8ba3-6b52-4bd9-a7a3-6b4c2e1e4f3a",
        "subscriptionExpirationDateTime": "2026-12-20T00:00:00Z",
        "tenantId": tenant,
        "clientState": CLIENT_STATE,
        "lifecycleEvent": "missed",
    }
    forged = {**missed, "clientState": "forged", "lifecycleEvent": "subscriptionRemoved"}
    response = await webhook.notifications(
        post(payload(missed, forged, notification(device, tenant))), runtime
    )

    assert response.status_code == 202
    messages = drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    by_session = {m.session_id: body_json(m) for m in messages}
    assert set(by_session) == {"devicemon-control", device}
    command = by_session["devicemon-control"]
    assert (command["name"], command["reason"]) == ("sync", "lifecycle:missed")
    assert command["subscription_id"] == missed["subscriptionId"]


async def test_foreign_client_state_and_tenant_are_dropped_and_counted(
    runtime: Runtime, tenant: str, stack, caplog: pytest.LogCaptureFixture
) -> None:
    good = str(uuid.uuid4())
    body = payload(
        notification(str(uuid.uuid4()), tenant, client_state="wrong"),
        notification(str(uuid.uuid4()), tenant, client_state=CLIENT_STATE[:-1]),
        notification(str(uuid.uuid4()), str(uuid.uuid4())),
        {k: v for k, v in notification(str(uuid.uuid4()), tenant).items() if k != "clientState"},
        notification(
            str(uuid.uuid4()),
            tenant,
            resourceData={"@odata.type": "#Microsoft.Graph.User", "id": "u"},
        ),
        "not an object",  # type: ignore[arg-type]
        notification(good, tenant),
    )
    with caplog.at_level(logging.INFO, logger="devicemon.webhook"):
        response = await webhook.notifications(post(body), runtime)
    assert response.status_code == 202
    messages = drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    assert [m.session_id for m in messages] == [good]
    assert "client_state_mismatch:3" in caplog.text
    assert "tenant_not_allowed:1" in caplog.text
    assert "not_a_device:1" in caplog.text
    assert CLIENT_STATE not in caplog.text


async def test_many_notifications_in_one_post_all_reach_the_queue(
    runtime: Runtime, tenant: str, stack
) -> None:
    devices = [str(uuid.uuid4()) for _ in range(60)]
    response = await webhook.notifications(
        post(payload(*[notification(d, tenant) for d in devices])), runtime
    )
    assert response.status_code == 202
    # A session each: more readers than the helper's default take them in fewer rounds.
    messages = drain_sessions(
        stack.service_bus_connection, runtime.settings.device_changes_queue, workers=20
    )
    assert sorted(str(m.session_id) for m in messages) == sorted(devices)


async def test_enqueue_failure_is_a_5xx_so_graph_retries(
    unreachable_broker: Runtime, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="devicemon.webhook"):
        response = await webhook.notifications(
            post(payload(notification(str(uuid.uuid4()), tenant))), unreachable_broker
        )
    assert response.status_code == 503
    assert json.loads(response.get_body())["error"]["code"] == "enqueueFailed"
    (failed,) = [r for r in caplog.records if r.name == "devicemon.webhook"]
    assert (getattr(failed, "devicemon.event"), getattr(failed, "devicemon.count")) == (
        "enqueue_failed",
        1,
    )


def test_webhook_path_never_imports_msgraph() -> None:
    script = """
import sys, asyncio, json
import azure.functions as func
import function_app
from handlers import webhook
req = func.HttpRequest("POST", "http://x/api/graph/notifications", params={"validationToken": "t"}, body=b"")
asyncio.run(webhook.notifications(req))
req = func.HttpRequest("POST", "http://x/api/graph/notifications", body=b"{bad")
asyncio.run(webhook.notifications(req))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"msgraph", "msgraph_core", "kiota_abstractions"})
print(json.dumps(heavy))
"""
    env = {"GRAPH_CLIENT_STATE": "x", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


async def test_handshake_is_not_sniffable_and_has_a_length_cap(runtime: Runtime) -> None:
    at_cap = "v" * MAX_VALIDATION_TOKEN_CHARS
    response = await webhook.notifications(post(b"", {"validationToken": at_cap}), runtime)
    assert (response.status_code, response.get_body().decode()) == (200, at_cap)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    for token in (at_cap + "v", "<html>\ud800"):
        refused = await webhook.notifications(post(b"", {"validationToken": token}), runtime)
        assert refused.status_code == 400
        assert json.loads(refused.get_body())["error"]["code"] == "invalidValidationToken"
        assert refused.headers["X-Content-Type-Options"] == "nosniff"


class UnreadableBody(func.HttpRequest):
    """A request whose body must not be read: a declared length over the limit suffices."""

    def get_body(self) -> bytes:
        raise AssertionError("the body was read although Content-Length is over the limit")


async def test_declared_length_over_the_limit_is_refused_before_reading(runtime: Runtime) -> None:
    rt = Runtime(replace(runtime.settings, max_notification_bytes=2048))
    for declared in ("2049", "94371840", "9" * 5000):
        request = UnreadableBody(
            "POST",
            "http://localhost/api/graph/notifications",
            headers={"content-length": declared},
            body=b"",
        )
        response = await webhook.notifications(request, rt)
        assert response.status_code == 413
        assert json.loads(response.get_body())["error"]["code"] == "payloadTooLarge"
    await rt.close()


@pytest.mark.parametrize("declared", ["\u00b2", "-1", "", "1e9", "12 34"])
async def test_a_content_length_that_is_not_a_number_is_measured_instead(
    runtime: Runtime, declared: str
) -> None:
    request = func.HttpRequest(
        "POST",
        "http://localhost/api/graph/notifications",
        headers={"content-length": declared},
        body=b'{"value": []}',
    )
    assert (await webhook.notifications(request, runtime)).status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        b'{"value": [' + b"1" * 4301 + b"]}",
        b'{"value": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    ],
)
async def test_parser_limits_are_a_400_not_a_500(runtime: Runtime, body: bytes) -> None:
    response = await webhook.notifications(post(body), runtime)
    assert response.status_code == 400
    assert json.loads(response.get_body())["error"]["code"] == "malformedNotification"


async def test_one_unqueueable_item_does_not_fail_the_post(
    runtime: Runtime, tenant: str, stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by fuzzing: a 200-character resource id became a session id Service Bus refuses,
    which failed the whole send (503, redelivered by Graph for hours). Now it is dropped and
    counted, and the good notifications of the same POST are queued."""
    good = [str(uuid.uuid4()) for _ in range(2)]
    long_id = "d" * 200
    body = payload(
        notification(good[0], tenant),
        notification(long_id, tenant),
        notification(str(uuid.uuid4()), tenant, id="n" * 200, clientState="\ud800"),
        notification(str(uuid.uuid4()), tenant, clientState="s\u00e9cret-\u2603"),
        notification(str(uuid.uuid4()), tenant, subscriptionId="s" * 200),
        notification(str(uuid.uuid4()), tenant, changeType="x" * 300),
        notification(good[1], tenant, id="n" * 200),
    )
    with caplog.at_level(logging.INFO, logger="devicemon.webhook"):
        response = await webhook.notifications(post(body), runtime)
    assert response.status_code == 202
    messages = drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    assert sorted(str(m.session_id) for m in messages) == sorted(good)
    for expected in (
        "invalid_device_id:1",
        "client_state_mismatch:2",
        "invalid_id:1",
        "unknown_change_type:1",
    ):
        assert expected in caplog.text
    assert long_id not in caplog.text
