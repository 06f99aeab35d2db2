"""A frozen broker (SIGSTOP: connections accepted, nothing answered) must not hold Graph's
request: the webhook, lifecycle and ops routes answer 503 within ENQUEUE_TIMEOUT_MS, and the
first request after the broker thaws is queued again (the stuck sender was replaced)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import azure.functions as func
import pytest

from handlers import lifecycle, upkeep, webhook
from shared.runtime import Runtime
from shared.settings import Settings
from tests.conftest import CLIENT_STATE
from tests.handlers.test_webhook import notification, payload, post


@pytest.fixture
async def bounded(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime(replace(settings, enqueue_timeout_ms=500))
    yield rt
    await rt.close()


def lifecycle_post(tenant: str) -> func.HttpRequest:
    body = {
        "value": [
            {
                "subscriptionId": str(uuid.uuid4()),
                "subscriptionExpirationDateTime": "2026-12-20T00:00:00Z",
                "tenantId": tenant,
                "clientState": CLIENT_STATE,
                "lifecycleEvent": "missed",
            }
        ]
    }
    return func.HttpRequest(
        "POST", "http://localhost/api/graph/lifecycle", body=json.dumps(body).encode()
    )


async def test_routes_answer_503_while_the_broker_is_frozen_and_recover_after(
    bounded: Runtime, tenant: str, stack
) -> None:
    # Open the sender first, as a running app has (opening is not what this test bounds).
    await bounded.change_queue().with_timeout(None).send_commands([])
    warm = await webhook.notifications(
        post(payload(notification(str(uuid.uuid4()), tenant))), bounded
    )
    assert warm.status_code == 202

    stack.freeze("broker")
    try:
        frozen = await webhook.notifications(
            post(payload(notification(str(uuid.uuid4()), tenant))), bounded
        )
        assert frozen.status_code == 503
        assert json.loads(frozen.get_body())["error"]["code"] == "enqueueFailed"
        life = await lifecycle.lifecycle(lifecycle_post(tenant), bounded)
        assert life.status_code == 503
        ops = await upkeep.queue_command(
            func.HttpRequest("POST", "http://localhost/api/ops/sync", body=b""), "sync", bounded
        )
        assert ops.status_code == 503
    finally:
        stack.thaw("broker")

    await bounded.change_queue().with_timeout(None).send_commands([])  # reopen, unbounded
    after = await webhook.notifications(
        post(payload(notification(str(uuid.uuid4()), tenant))), bounded
    )
    assert after.status_code == 202
