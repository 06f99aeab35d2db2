"""The mass event through the real path while a component of the stack goes down mid-run.

Same path as tests/test_mass_event.py (function_app in the dev host, the local broker through
the real azure-servicebus SDK, Azurite, the Graph simulator), with a smaller fleet so `make test`
stays quick: the devices lose eligibility (found by the delta sync), then regain it, and each
time, as soon as the processor has handled the first device, the broker is SIGKILLed (its
journal keeps what it acknowledged) or Azurite is stopped with SIGINT (the only signal that keeps
its acknowledged writes, docs/local-stack.md), then started again on the same port. Nothing in
devicemon is told: the dev host's receivers, the runtime's senders and the Table clients must
reconnect by themselves. After recovery every transition has exactly one alert and one history
row, nothing is dead-lettered and nothing is left pending.

The `stack` fixture is shared by the whole session: every outage here ends with the component
running again (the outage's exit waits for its port), so the tests after these find it as usual.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from local.devhost import DevHost
from local.graphsim.admin import SimAdmin
from local.stack import Stack
from shared.runtime import Runtime
from tests.test_mass_event import (
    baseline,
    eventually,
    nothing_lost,
    settled,
    take_alerts,
)
from tests.test_mass_event import host as host
from tests.test_mass_event import mass_runtime as mass_runtime
from tests.test_mass_event import sink as sink

pytestmark = pytest.mark.timeout(420)
FLEET = 40
OUTAGE_SECONDS = 3.0


async def evaluated(rt: Runtime, ids: list[str], eligible: bool) -> int:
    """How many of `ids` the processor has already evaluated to `eligible`."""
    wanted = set(ids)
    count = 0
    async for state in (await rt.store()).states():
        if state.record.object_id in wanted and state.record.eligible is eligible:
            count += 1
    return count


async def started_processing(rt: Runtime, ids: list[str], eligible: bool) -> bool:
    # Poll until the first device is done: the fault then lands while the rest are in flight.
    return await evaluated(rt, ids, eligible) >= 1


async def transition_with_outage(
    stack: Stack,
    rt: Runtime,
    sim: SimAdmin,
    ids: list[str],
    component: str,
    patch: dict[str, Any],
    eligible: bool,
) -> None:
    await asyncio.to_thread(sim.patch_devices, [{"id": i, **patch} for i in ids], False)
    result = await (await rt.delta_sync()).run(f"faults-{component}")
    assert result.outcome == "completed" and result.changes >= len(ids), result
    await eventually(lambda: started_processing(rt, ids, eligible))
    # The broker is SIGKILLed, Azurite gets SIGINT (stack.outage's "restart" mode picks each
    # one's hardest safe way down); `async with` keeps the event loop, and so the dev host,
    # running through the outage.
    async with stack.outage(component, OUTAGE_SECONDS, mode="restart"):
        pass
    await eventually(lambda: settled(rt, ids, eligible), within=300)


async def exactly_once(stack: Stack, rt: Runtime, ids: list[str]) -> None:
    alerts = await take_alerts(stack, rt)
    per_device = Counter((a["subject"], a["type"]) for a in alerts)
    expected = {
        (f"devices/{i}", f"devicemon.eligibility.{kind}"): 1
        for i in ids
        for kind in ("lost", "restored")
    }
    assert dict(per_device) == expected
    assert len({a["id"] for a in alerts}) == len(alerts)
    store = await rt.store()
    for object_id in ids:
        transitions = Counter([row.transition async for row in store.history(object_id)])
        assert transitions == {"first_seen": 1, "lost": 1, "restored": 1}, (object_id, transitions)
    await nothing_lost(stack, rt)


# Azurite stopped mid-run is the `azurite-stop` row of `make chaos` (200 devices, docs/
# reliability.md); Table storage faults in the suite: tests/handlers/test_frozen_storage.py.
@pytest.mark.parametrize("component", ["broker"])
async def test_mass_event_survives_a_component_restart_mid_run(
    host: DevHost,
    mass_runtime: Runtime,
    sim: SimAdmin,
    stack: Stack,
    component: str,
) -> None:
    rt = mass_runtime
    ids = await baseline(host, rt, sim, FLEET)
    assert await take_alerts(stack, rt) == []  # first sightings publish nothing
    await transition_with_outage(
        stack, rt, sim, ids, component, {"trustType": "Workplace"}, eligible=False
    )
    await transition_with_outage(
        stack, rt, sim, ids, component, {"trustType": "ServerAd"}, eligible=True
    )
    await exactly_once(stack, rt, ids)
