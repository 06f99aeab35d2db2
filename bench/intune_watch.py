"""What one Intune watch run costs for a large tenant: Graph requests (counted by the simulator) and
Table storage requests (counted on the Table client, against Azurite), per run.

`python -m bench.intune_watch [--devices 100000] [--changes 100]`

A seeded fleet (about 78% of the devices Intune-managed) in the Graph simulator, then the real
IntuneWatch (shared/sources/intune_watch.py) run by run on the simulator's tenant clock:

1. the first run: records every device's digest, queues nothing;
2. an idle run: nothing moved;
3. `--changes` devices enter a 72-hour grace period (Entra unchanged): each queued once, its
   Entra object id looked up (20 to a `$batch`);
4. the same devices fixed: queued again, their object ids already kept (no lookup);
5. a day of the tenant's clock passes: every device checks in about every 8 hours (no change for
   the watch), and what the clock ends in the fleet (grace periods that expire) is queued.

The queue is a counting sink: Service Bus is not what is measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

from azure.data.tables.aio import TableServiceClient

from bench.common import bench_settings
from local import stack as local_stack
from local.graphsim.admin import SimAdmin, SimClock
from shared.adapters.intune_digests import DigestBook, table_name
from shared.adapters.tenant_settings import TenantSettingsBook
from shared.core.changes import DeviceChange
from shared.core.tenant_settings import TenantSettings
from shared.runtime import Runtime
from shared.sources.intune_watch import IntuneWatch, WatchResult


class TableRequests:
    """Table storage requests as the client sends them (its response hook), by kind."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    def __call__(self, response: Any) -> None:
        request = response.http_request
        self.kinds["transaction" if "$batch" in request.url else request.method] += 1

    def take(self) -> dict[str, int]:
        taken = dict(self.kinds)
        self.kinds.clear()
        return taken


class CountingSink:
    def __init__(self) -> None:
        self.sent = 0

    async def send(self, changes: Iterable[DeviceChange]) -> int:
        count = len(list(changes))
        self.sent += count
        return count


async def one_run(
    label: str, watch: IntuneWatch, sim: SimAdmin, requests: TableRequests
) -> dict[str, Any]:
    sim.reset_requests()
    requests.take()
    started = time.perf_counter()
    result: WatchResult = await watch.run()
    seconds = time.perf_counter() - started
    graph = sim.reset_requests()
    tables = requests.take()
    return {
        "run": label,
        "outcome": result.outcome,
        "devices": result.devices,
        "changed": result.changed,
        "queued": result.queued,
        "graph_requests": graph["httpRequests"],
        "graph_routes": graph["routes"],
        "table_requests": sum(tables.values()),
        "table_kinds": tables,
        "rows_written": result.rows_written,
        "seconds": round(seconds, 2),
    }


async def measure(stack: local_stack.Stack, devices: int, changes: int) -> dict[str, Any]:
    tenant = str(uuid.uuid4())
    settings = bench_settings(stack, tenant)
    requests = TableRequests()
    assert settings.tables_connection_string is not None
    service = TableServiceClient.from_connection_string(
        settings.tables_connection_string, raw_response_hook=requests
    )
    runtime = Runtime(settings)
    book = DigestBook(service, table_name(settings.table_prefix))
    tenant_book = TenantSettingsBook(service, settings.sync_table)
    with SimAdmin(stack.graph_root, tenant) as sim:
        sim.ensure()
        started = time.perf_counter()
        fleet = sim.generate(devices, seed=12)
        generated = time.perf_counter() - started
        clock = SimClock(sim)
        await book.ensure_table()
        await tenant_book.ensure_table()

        async def tenant_settings() -> TenantSettings:
            return (await tenant_book.load()).settings

        watch = IntuneWatch(
            graph=runtime.graph_json(),
            book=book,
            sink=CountingSink(),
            tenant=tenant_settings,
            warning_days=settings.intune_checkin_warn_days,
            clock=clock,
        )
        runs = [await one_run("first (records digests)", watch, sim, requests)]
        runs.append(await one_run("idle", watch, sim, requests))
        managed = [
            m["id"]
            for m in sim.managed_devices(limit=changes * 3)["managedDevices"]
            if m["complianceState"] == "compliant" and m["azureADDeviceId"]
        ][:changes]
        for managed_id in managed:
            sim.enter_grace(managed_id, hours=72)
        runs.append(await one_run(f"{len(managed)} devices enter grace", watch, sim, requests))
        for managed_id in managed:
            sim.comply(managed_id)
        runs.append(await one_run(f"the {len(managed)} fixed", watch, sim, requests))
        clock.advance(days=1)
        runs.append(await one_run("a day later (check-ins, expiries)", watch, sim, requests))
    await book.close()
    await tenant_book.close()
    await service.close()
    await runtime.close()
    steady = runs[2]
    return {
        "devices": devices,
        "managed_devices": fleet["managedCreated"],
        "generated_seconds": round(generated, 1),
        "runs": runs,
        "graph_per_1000_devices": round(runs[1]["graph_requests"] * 1000 / devices, 3),
        "graph_per_1000_devices_with_changes": round(steady["graph_requests"] * 1000 / devices, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def report(result: dict[str, Any]) -> None:
    print(
        f"Intune watch, {result['devices']} devices ({result['managed_devices']} Intune-managed),"
        f" per run:"
    )
    for r in result["runs"]:
        print(
            f"  {r['run']}: {r['graph_requests']} Graph requests, {r['table_requests']} Table"
            f" requests {r['table_kinds']}, {r['changed']} changed, {r['queued']} queued,"
            f" {r['rows_written']} rows written, {r['seconds']} s"
        )
    print(
        f"  Graph requests per 1,000 devices: {result['graph_per_1000_devices']} idle,"
        f" {result['graph_per_1000_devices_with_changes']} with the changes above;"
        f" peak RSS {result['peak_rss_mb']} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.intune_watch")
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    with local_stack.start() as stack:
        result = asyncio.run(measure(stack, args.devices, args.changes))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)


if __name__ == "__main__":
    main()
