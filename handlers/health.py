"""GET /api/health: 200 healthy/degraded, 503 unhealthy — for Azure Monitor availability tests."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import azure.functions as func

from shared.health import assess
from shared.runtime import Runtime, current

# Counting devices scans DeviceState. When that scan is slow (a large fleet) the count is kept a
# minute, the pace at which monitors poll; small fleets are always counted afresh.
COUNT_TTL_SECONDS = 60.0
SLOW_SCAN_SECONDS = 0.5
_counts: dict[str, tuple[float, int, int]] = {}


async def _device_counts(rt: Runtime) -> tuple[int, int]:
    key = rt.settings.state_table
    cached = _counts.get(key)
    if cached and time.monotonic() - cached[0] < COUNT_TTL_SECONDS:
        return cached[1], cached[2]
    started = time.monotonic()
    total = ineligible = 0
    store = await rt.store()
    async for eligible in store.eligibility():
        total += 1
        ineligible += 0 if eligible else 1
    if time.monotonic() - started > SLOW_SCAN_SECONDS:
        _counts[key] = (time.monotonic(), total, ineligible)
    return total, ineligible


async def health(req: func.HttpRequest, runtime: Runtime | None = None) -> func.HttpResponse:
    rt = runtime or current()
    books = await rt.bookkeeping()
    total, ineligible = await _device_counts(rt)
    report = assess(
        await books.sync_state(),
        await books.subscription(),
        now=datetime.now(UTC),
        stale_after=timedelta(minutes=rt.settings.sync_stale_minutes),
        devices=total,
        ineligible=ineligible,
    )
    status = 503 if report["status"] == "unhealthy" else 200
    return func.HttpResponse(json.dumps(report), status_code=status, mimetype="application/json")
