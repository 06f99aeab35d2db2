"""Graph requests of a baseline, counted by the simulator: a delta sync over a simulated tenant
with every device evaluated and stored by the processor's pipeline; then idle incremental rounds,
a change caught by the delta alone, and a notified change.

Each page's changes go through their JSON message form (as on `device-changes`) to the pipeline
as the sync queues them, one device's changes in order and 32 devices at a time, so memory holds
about one page and the count is every Graph request the baseline costs, processing included.
Run in a process of its own: `.venv/bin/python -m bench.baseline --devices 2000`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import uuid
from collections.abc import Iterable
from typing import Any

from bench.common import bench_settings
from local import stack as local_stack
from local.graphsim.admin import SimAdmin
from shared.core.changes import DeviceChange
from shared.core.models import Source
from shared.processing.pipeline import Pipeline
from shared.runtime import Runtime
from shared.sources.sync import DeltaSync


class ProcessingSink:
    """Stands in for the queue: every change is serialised as its message and processed."""

    def __init__(self, pipeline: Pipeline, concurrency: int = 32) -> None:
        self._pipeline = pipeline
        self._slots = asyncio.Semaphore(concurrency)
        self.processed = 0

    async def send(self, changes: Iterable[DeviceChange]) -> int:
        by_device: dict[str, list[DeviceChange]] = {}
        for change in changes:
            by_device.setdefault(change.device_id, []).append(
                DeviceChange.from_json(change.to_json())
            )

        async def one_device(queue: list[DeviceChange]) -> None:
            async with self._slots:
                for change in queue:  # one session: in order
                    await self._pipeline.process(change)
                    self.processed += 1

        await asyncio.gather(*(one_device(q) for q in by_device.values()))
        return sum(len(q) for q in by_device.values())


def counted(sim: SimAdmin) -> dict[str, Any]:
    counts = sim.reset_requests()
    return {"requests": counts["httpRequests"], "routes": counts["routes"]}


async def measure(stack: local_stack.Stack, devices: int, page_size: int | None) -> dict[str, Any]:
    tenant = str(uuid.uuid4())
    settings = bench_settings(stack, tenant)
    runtime = Runtime(settings)
    with SimAdmin(stack.graph_root, tenant) as sim:
        sim.ensure()
        sim.generate(devices, seed=21)
        pipeline = await runtime.pipeline()
        sink = ProcessingSink(pipeline)
        sync = DeltaSync(
            graph=runtime.graph_json(),
            books=await runtime.bookkeeping(),
            sink=sink,
            page_size=page_size,
        )
        sim.reset_requests()
        started = time.perf_counter()
        result = await sync.run("bench baseline")
        seconds = time.perf_counter() - started
        baseline = {
            "outcome": result.outcome,
            "pages": result.pages,
            "evaluated": sink.processed,
            "seconds": round(seconds, 2),
            **counted(sim),
        }
        baseline["per_device"] = baseline["requests"] / devices

        idle_rounds = 5
        idle_seconds = []
        for _ in range(idle_rounds):
            started = time.perf_counter()
            await sync.run("bench idle")
            idle_seconds.append(time.perf_counter() - started)
        idle = {
            **counted(sim),
            "rounds": idle_rounds,
            "seconds_each": [round(s, 3) for s in idle_seconds],
        }

        ids = sim.device_ids()
        ids = ids["ids"] if isinstance(ids, dict) else ids
        # A change caught by the delta alone: compliance lost on an Intune-managed device.
        managed = sim.managed_devices(limit=1)["managedDevices"][0]
        sim.patch_managed_device(managed["id"], complianceState="noncompliant")
        await sync.run("bench delta change")
        by_delta = counted(sim)

        # A notified change of a known device: the hint is re-read, then the next round
        # brings the same change as an observation.
        target = ids[len(ids) // 2]
        sim.patch_device(target, notify=False, accountEnabled=False)
        message_id = uuid.uuid4().hex
        await pipeline.process(
            DeviceChange(target, "updated", Source.NOTIFICATION, message_id, message_id, "")
        )
        by_notification = counted(sim)
        await sync.run("bench after notification")
        next_round = counted(sim)
    await runtime.close()
    return {
        "devices": devices,
        "page_size": page_size,
        "baseline": baseline,
        "idle": idle,
        "change_by_delta": by_delta,
        "notified_change": by_notification,
        "round_after_notification": next_round,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--page-size", type=int, default=0, help="Prefer: odata.maxpagesize")
    args = parser.parse_args()
    with local_stack.start() as stack:
        report = asyncio.run(measure(stack, args.devices, args.page_size or None))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
