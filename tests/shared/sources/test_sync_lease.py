"""The sync's lease: short and renewed while a run lives, so a run whose process died blocks the
next one for about a minute, not ten; operators are told "busy"; health reports the dead run.
Against the Graph simulator, Azurite and the broker."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import azure.functions as func

from handlers import upkeep
from local.graphsim.admin import SimAdmin
from shared.runtime import Runtime
from shared.sources.sync import DeltaSync
from shared.views.health import abandoned_run
from tests.graph_helpers import add_device


def ops_sync() -> func.HttpRequest:
    return func.HttpRequest("POST", "http://localhost/api/ops/sync", body=b"")


async def runner(runtime: Runtime, lease: timedelta, owner: str, page_size: int = 0) -> DeltaSync:
    return DeltaSync(
        graph=runtime.graph_json(),
        books=await runtime.bookkeeping(),
        sink=runtime.change_queue().with_timeout(None),
        page_size=page_size or None,
        owner=owner,
        lease=lease,
    )


async def test_a_live_lease_of_a_dead_run_says_busy_and_an_expired_one_is_taken_over(
    runtime: Runtime, sim: SimAdmin
) -> None:
    add_device(sim)
    books = await runtime.bookkeeping()
    now = datetime.now(UTC)
    # A run took the lease and its process died: nobody renews or releases it.
    await books.acquire_sync("dead-host:1", "run-dead", now, timedelta(seconds=60))

    busy = await upkeep.queue_command(ops_sync(), "sync", runtime)
    assert busy.status_code == 409
    assert json.loads(busy.get_body())["error"]["code"] == "syncBusy"
    assert (await (await runner(runtime, timedelta(seconds=60), "me")).run("t")).outcome == "busy"
    assert abandoned_run(await books.sync_state(), now) is None  # alive, as far as anyone knows

    # A minute later the dead run's lease has run out (not renewed): it is reported and taken over.
    later = now + timedelta(seconds=61)
    assert "stopped without finishing" in (abandoned_run(await books.sync_state(), later) or "")
    # Let it run out for real (the row as the dead run left it, its lease now past).
    await books.save_sync(replace(await books.sync_state(), lease_until=now - timedelta(seconds=1)))
    queued = await upkeep.queue_command(ops_sync(), "sync", runtime)
    assert queued.status_code == 202
    result = await (await runner(runtime, timedelta(seconds=60), "me")).run("t")
    assert result.outcome == "completed"
    assert abandoned_run(await books.sync_state(), datetime.now(UTC)) is None


async def test_a_live_run_keeps_its_short_lease_by_renewing_it(
    runtime: Runtime, sim: SimAdmin
) -> None:
    for i in range(3):
        add_device(sim, name=f"L{i}")
    # Each Graph page takes longer than the whole lease: only the heartbeat can keep it alive
    # (the page loop's own writes come too late).
    sim.set_latency(1000)
    lease = timedelta(seconds=0.6)
    long_run = asyncio.create_task((await runner(runtime, lease, "alive", page_size=1)).run("a"))
    books = await runtime.bookkeeping()
    for _ in range(400):  # until the run holds the lease
        if (await books.sync_state()).lease_owner == "alive":
            break
        await asyncio.sleep(0.05)
    seen_leases: set[datetime | None] = set()
    while not long_run.done() and len(seen_leases) < 4:
        # Another run, at any moment while the first lives, is turned away: the lease is kept
        # alive by renewal, though the run outlasts its length several times over.
        intruder = await (await runner(runtime, lease, "intruder")).run("b")
        assert intruder.outcome == "busy"
        seen_leases.add((await books.sync_state()).lease_until)
        await asyncio.sleep(0.3)
    assert len(seen_leases) >= 2  # the lease moved forward while the run went on
    assert (await long_run).outcome == "completed"
    sim.set_latency(0)
