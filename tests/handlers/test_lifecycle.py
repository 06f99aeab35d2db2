from __future__ import annotations

import json
import uuid

import azure.functions as func

from handlers import lifecycle
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
