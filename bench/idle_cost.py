"""Graph requests an idle tenant costs per hour, counted by the simulator: the delta sync's idle
rounds (SYNC_SCHEDULE, every minute by default) plus the subscription upkeep (SUBSCRIPTION_SCHEDULE,
every 6 hours: a check, a renewal when the subscription expires within a day).

The upkeep is run over two simulated days: the keeper's clock and the simulator's tenant clock move
6 hours per run together, so renewals (and lapses, were there any) happen as they would, and the
subscription's validation handshake reaches function_app's webhook in a dev host.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from local.devhost import DevHost
from local.graphsim.admin import SimAdmin
from shared.core.models import utc_now
from shared.runtime import Runtime, use_runtime
from shared.sources.subscription import SubscriptionKeeper

SYNC_ROUNDS_PER_HOUR = 60  # "0 */1 * * * *"
UPKEEP_EVERY = timedelta(hours=6)  # "0 0 */6 * * *"
UPKEEP_SPAN = timedelta(hours=48)


async def idle_rounds(runtime: Runtime, sim: SimAdmin, rounds: int) -> dict[str, Any]:
    sync = await runtime.delta_sync()
    sim.reset_requests()
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = await sync.run("bench idle")
        seconds.append(time.perf_counter() - started)
        if result.outcome != "completed" or result.changes:
            raise RuntimeError(f"an idle round found work: {result}")
    counts = sim.reset_requests()
    return {
        "rounds": rounds,
        "requests": counts["httpRequests"],
        "routes": counts["routes"],
        "seconds_max": round(max(seconds), 3),
    }


async def upkeep(runtime: Runtime, sim: SimAdmin) -> dict[str, Any]:
    offset = timedelta()
    use_runtime(runtime)
    try:
        async with DevHost("function_app:app", port=0, only={"http"}) as host:
            settings = replace(
                runtime.settings,
                notification_url=f"{host.api_url}/graph/notifications",
                lifecycle_notification_url=f"{host.api_url}/graph/lifecycle",
            )
            keeper = SubscriptionKeeper(
                graph=runtime.graph_json(),
                books=await runtime.bookkeeping(),
                settings=settings,
                clock=lambda: utc_now() + offset,
            )
            created = await keeper.ensure()  # the first run creates it: not upkeep
            if created.status != "active":
                raise RuntimeError(f"subscription not created: {created}")
            sim.reset_requests()
            statuses = []
            for _ in range(int(UPKEEP_SPAN / UPKEEP_EVERY)):
                offset += UPKEEP_EVERY
                sim.advance_clock(hours=UPKEEP_EVERY.total_seconds() / 3600)
                statuses.append((await keeper.ensure()).status)
            counts = sim.reset_requests()
    finally:
        use_runtime(None)
    if set(statuses) != {"active"}:
        raise RuntimeError(f"upkeep lost the subscription: {statuses}")
    return {
        "runs": len(statuses),
        "hours": UPKEEP_SPAN.total_seconds() / 3600,
        "requests": counts["httpRequests"],
        "routes": counts["routes"],
    }


async def measure(runtime: Runtime, sim: SimAdmin, rounds: int = 10) -> dict[str, Any]:
    """Run on a tenant whose baseline is done and that nothing changes meanwhile."""
    idle = await idle_rounds(runtime, sim, rounds)
    kept = await upkeep(runtime, sim)
    sync_per_hour = idle["requests"] / idle["rounds"] * SYNC_ROUNDS_PER_HOUR
    upkeep_per_hour = kept["requests"] / kept["hours"]
    return {
        "idle_rounds": idle,
        "upkeep": kept,
        "sync_requests_per_hour": sync_per_hour,
        "upkeep_requests_per_hour": round(upkeep_per_hour, 3),
        "requests_per_hour": round(sync_per_hour + upkeep_per_hour, 2),
    }
