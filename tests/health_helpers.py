"""Reading /api/health in tests, with a sync and a subscription that say nothing against it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func

from handlers import health as health_route
from shared.runtime import Runtime


async def fresh_bookkeeping(rt: Runtime) -> None:
    """A fresh sync and a live subscription, so that health speaks only of delivery."""
    books = await rt.bookkeeping()
    now = datetime.now(UTC)
    await books.save_sync(replace(await books.sync_state(), last_success_at=now))
    await books.save_subscription(
        replace(
            await books.subscription(),
            subscription_id="sub-1",
            status="active",
            expires_at=now + timedelta(days=1),
        )
    )


async def health_report(rt: Runtime) -> tuple[int, dict[str, Any]]:
    health_route._dead_letters.clear()  # the test changed the queues just now: no cached peek
    response = await health_route.health(
        func.HttpRequest("GET", "/api/health", body=b""), runtime=rt
    )
    return response.status_code, json.loads(response.get_body())
