"""Detection latency, change to alert, through the real path: by change notification, and by the
delta sync alone (Graph refusing the /devices subscription).

Each run is one tenant of hybrid joined devices and function_app in a dev host child process
(bench/massevent.py's Mass). After the baseline, every device loses its hybrid join once, at a
random instant within a spread (so changes do not line up with the sync's ticks); latency is from
the instant the simulator was told of the change to the alert's enqueued time on `device-alerts`
(the broker's clock, same machine).

- Notifications: the subscription is created through the keeper (its handshake reaches the dev
  host's webhook) and the simulator delivers each change as Graph would.
- Delta alone: no subscription; the dev host runs the sync timer on a shortened schedule (every
  `tick` seconds instead of every minute). The figure at the default cadence is derived, per
  change, by stretching its wait for the next tick to the minute: wait x 60/tick + the measured
  tick-to-alert time. That keeps each round's measured work: at the minute, the same rate of
  changes puts six times as many in one round, which the processor's evaluations/s (the mass
  event of bench/alerts.py) turn into the extra seconds docs/performance.md states.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace
from typing import Any

from bench.alerts import latency_summary
from bench.massevent import LOST, Mass, alert_key, enqueued_at
from local import stack as local_stack
from local.graphsim.admin import AsyncSimAdmin
from shared.runtime import Runtime
from tests.graph_helpers import hybrid_fleet

DEFAULT_CADENCE_S = 60.0  # SYNC_SCHEDULE "0 */1 * * * *"


async def _changes(m: Mass, spread_s: float, notify: bool, seed: int) -> dict[str, float]:
    """Every device loses its hybrid join at a random instant within `spread_s`; when each
    change was made (epoch seconds, taken just before the simulator's call returns)."""
    rng = random.Random(seed)
    changed_at: dict[str, float] = {}
    async with AsyncSimAdmin(m.stack.graph_root, m.tenant) as sim:

        async def one(device_id: str, delay: float) -> None:
            await asyncio.sleep(delay)
            changed_at[device_id] = time.time()
            await sim.patch_device(device_id, notify=notify, **LOST)

        await asyncio.gather(*(one(i, rng.uniform(0, spread_s)) for i in m.ids))
    return changed_at


async def _alert_times(m: Mass, within: float) -> dict[str, float]:
    if not await m.until(lambda: m.settled(False), within=within):
        raise RuntimeError("not every change reached an alert")
    return {
        alert_key(msg)[0]: enqueued_at(msg)
        for msg in await m.take_alerts()
        if alert_key(msg)[1] == "lost"
    }


async def by_notification(
    stack: local_stack.Stack, changes: int, spread_s: float
) -> dict[str, Any]:
    async with Mass(stack, changes) as m:
        await m.baseline()
        rt = Runtime(
            replace(
                m.settings,
                notification_url=f"{m.host.api_url}/graph/notifications",
                lifecycle_notification_url=f"{m.host.api_url}/graph/lifecycle",
            )
        )
        try:
            record = await (await rt.subscription_keeper()).ensure()
        finally:
            await rt.close()
        if record.status != "active":
            raise RuntimeError(f"subscription not created: {record}")
        m.sim.reset_requests()
        changed_at = await _changes(m, spread_s, notify=True, seed=41)
        alerted = await _alert_times(m, within=300)
        requests = m.sim.reset_requests()
    latencies = [alerted[i] - changed_at[i] for i in changed_at if i in alerted]
    return {
        "changes": changes,
        "alerts": len(alerted),
        "spread_s": spread_s,
        "latency_s": latency_summary(latencies),
        "graph_requests": requests["httpRequests"],
        "graph_requests_per_change": requests["httpRequests"] / changes,
        "routes": requests["routes"],
    }


def _next_tick(moment: float, tick_s: float) -> float:
    return (int(moment // tick_s) + 1) * tick_s


async def by_delta(
    stack: local_stack.Stack, changes: int, spread_s: float, tick_s: int
) -> dict[str, Any]:
    m = Mass(stack, changes)
    # The dev host's own sync timer is the only source (no subscription is ever created).
    m.host.env.pop("AzureWebJobs.sync_devices.Disabled")
    m.host.env["SYNC_SCHEDULE"] = f"*/{tick_s} * * * * *"
    async with m:
        fleet = hybrid_fleet(changes)
        await asyncio.to_thread(m.sim.upsert_devices, fleet, False)
        m.ids = [d["id"] for d in fleet]
        # The baseline is the timer's too: a sync from the runner would contend for its lease.
        if not await m.until(lambda: m.settled(True), within=300):
            raise RuntimeError("baseline did not complete")
        await m.take_alerts()
        changed_at = await _changes(m, spread_s, notify=False, seed=43)
        alerted = await _alert_times(m, within=300 + spread_s)
    measured, after_tick, stretched = [], [], []
    for device, at in changed_at.items():
        if device not in alerted:
            continue
        tick = _next_tick(at, tick_s)
        measured.append(alerted[device] - at)
        after_tick.append(alerted[device] - tick)
        stretched.append((tick - at) * DEFAULT_CADENCE_S / tick_s + alerted[device] - tick)
    return {
        "changes": changes,
        "alerts": len(alerted),
        "spread_s": spread_s,
        "tick_s": tick_s,
        "latency_s": latency_summary(measured),
        "tick_to_alert_s": latency_summary(after_tick),
        "at_default_cadence_s": latency_summary(stretched),
    }


async def run_async(
    stack: local_stack.Stack, changes: int, spread_s: float, tick_s: int
) -> dict[str, Any]:
    return {
        "notification": await by_notification(stack, changes, spread_s),
        "delta": await by_delta(stack, changes, spread_s, tick_s),
    }


def run(
    stack: local_stack.Stack, changes: int = 200, spread_s: float = 60.0, tick_s: int = 10
) -> dict[str, Any]:
    return asyncio.run(run_async(stack, changes, spread_s, tick_s))
