from __future__ import annotations

import json
import logging
import uuid

import azure.functions as func
import pytest

from handlers import lifecycle
from handlers.responses import MAX_VALIDATION_TOKEN_CHARS
from shared.runtime import Runtime
from tests.conftest import CLIENT_STATE
from tests.servicebus_helpers import body_json, drain_sessions


def post(items: list[dict[str, object]], params: dict[str, str] | None = None) -> func.HttpRequest:
    body = json.dumps({"value": items}).encode()
    return func.HttpRequest(
        "POST", "http://localhost/api/graph/lifecycle", params=params or {}, body=body
    )


def event(name: str, tenant: str, client_state: str = CLIENT_STATE) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "subscriptionId": "sub-9",
        "subscriptionExpirationDateTime": "2026-12-01T00:00:00Z",
        "tenantId": tenant,
        "clientState": client_state,
        "lifecycleEvent": name,
    }


async def test_handshake(runtime: Runtime) -> None:
    response = await lifecycle.lifecycle(post([], {"validationToken": "abc+d e"}), runtime)
    assert (response.status_code, response.get_body()) == (200, b"abc+d e")


async def test_each_event_becomes_its_command_on_the_control_session(
    runtime: Runtime, tenant: str, stack
) -> None:
    items = [
        event("reauthorizationRequired", tenant),
        event("subscriptionRemoved", tenant),
        event("missed", tenant),
    ]
    items += [
        event("missed", tenant, client_state="forged"),
        event("somethingNew", tenant),
        event("missed", "other-tenant"),
    ]
    response = await lifecycle.lifecycle(post(items), runtime)

    assert response.status_code == 202
    messages = drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    assert {m.session_id for m in messages} == {"devicemon-control"}
    assert sorted(body_json(m)["name"] for m in messages) == ["reauthorize", "recreate", "sync"]
    assert all(body_json(m)["subscription_id"] == "sub-9" for m in messages)


async def test_malformed_is_400(runtime: Runtime) -> None:
    request = func.HttpRequest("POST", "http://localhost/api/graph/lifecycle", body=b"nope")
    assert (await lifecycle.lifecycle(request, runtime)).status_code == 400


async def test_handshake_echo_is_not_sniffable_and_capped(runtime: Runtime) -> None:
    response = await lifecycle.lifecycle(post([], {"validationToken": "abc"}), runtime)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    too_long = post([], {"validationToken": "a" * (MAX_VALIDATION_TOKEN_CHARS + 1)})
    assert (await lifecycle.lifecycle(too_long, runtime)).status_code == 400


async def test_odd_items_are_dropped_and_counted_and_never_block_the_others(
    runtime: Runtime, tenant: str, stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Fuzzing found a lone-surrogate clientState answering 500; ids of any length or shape
    must not reach the queue (message ids) or the Graph URL the processor builds."""
    good = event("missed", tenant)
    good["id"] = "n" * 500  # any notification id: it is hashed into the dedupe key
    items: list[dict[str, object]] = [
        event("missed", tenant, client_state="\ud800"),
        event("missed", tenant, client_state="\u00e9\u00e9"),
        {**event("reauthorizationRequired", tenant), "subscriptionId": "../../me/messages"},
        {**event("reauthorizationRequired", tenant), "subscriptionId": "s" * 200},
        {**event("missed", tenant), "tenantId": ["nested", [[]]]},
        {**event("missed", tenant), "lifecycleEvent": {"not": "a string"}},
        good,
    ]
    with caplog.at_level(logging.INFO, logger="devicemon.lifecycle"):
        response = await lifecycle.lifecycle(post(items), runtime)

    assert response.status_code == 202
    messages = drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    assert [body_json(m)["name"] for m in messages] == ["sync"]
    assert len(str(messages[0].message_id)) <= 128
    for expected in ("client_state_mismatch:2", "invalid_id:3", "unknown_lifecycle_event:1"):
        assert expected in caplog.text


async def test_enqueue_failure_is_a_5xx_so_graph_retries(
    unreachable_broker: Runtime, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    items = [event("reauthorizationRequired", tenant), event("missed", tenant)]
    with caplog.at_level(logging.ERROR, logger="devicemon.lifecycle"):
        response = await lifecycle.lifecycle(post(items), unreachable_broker)
    assert response.status_code == 503
    error = json.loads(response.get_body())["error"]
    assert (error["code"], error["message"]) == (
        "enqueueFailed",
        "could not queue the lifecycle work; retry later",
    )
    (failed,) = [r for r in caplog.records if r.name == "devicemon.lifecycle"]
    assert (getattr(failed, "devicemon.event"), getattr(failed, "devicemon.count")) == (
        "enqueue_failed",
        2,
    )
