"""A frozen Table storage (SIGSTOP: connections accepted, nothing answered): health and the read
API answer 503 with a JSON error within their bound instead of hanging, and answer normally
again once storage is back."""

from __future__ import annotations

import json
import uuid

import azure.functions as func
import pytest

from handlers import health as health_route
from handlers import read_api
from shared.runtime import Runtime


def get(url: str, **route: str) -> func.HttpRequest:
    return func.HttpRequest("GET", url, body=b"", route_params=route)


async def test_health_and_read_api_answer_503_while_storage_is_frozen(
    runtime: Runtime, stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_api, "STORAGE_BOUND_SECONDS", 1.0)
    monkeypatch.setattr(health_route, "STORAGE_BOUND_SECONDS", 1.0)
    monkeypatch.setattr(health_route, "SERVICE_BUS_BOUND_SECONDS", 1.0)
    device = str(uuid.uuid4())
    before = await read_api.get_device(get(f"/api/devices/{device}", id=device), runtime)
    assert before.status_code == 404  # tables exist and answer: the clients are warm

    stack.freeze("azurite")
    try:
        answers = [
            await health_route.health(get("/api/health"), runtime),
            await read_api.get_device(get(f"/api/devices/{device}", id=device), runtime),
            await read_api.list_devices(get("/api/devices"), runtime),
        ]
    finally:
        stack.thaw("azurite")
    assert [a.status_code for a in answers] == [503, 503, 503]
    assert all(json.loads(a.get_body())["error"]["code"] == "storageUnavailable" for a in answers)

    after = await read_api.list_devices(get("/api/devices"), runtime)
    assert after.status_code == 200
