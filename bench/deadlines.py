"""What the deadline index costs in Table storage requests (the unit Table storage bills), counted
on the Table client against Azurite: per scheduler run and per day for a 100,000-device tenant.

`python -m bench.deadlines [--devices 100000] [--cycle-days 27] [--moves-per-day 10000]
[--written-days 6] [--mass 20000]`

The day is simulated with the real DeadlineIndex (shared/adapters/deadlines.py) and the
timer's loop (handlers/deadlines.py without the queue, which is Service Bus, not Tables):

- every device has one row, its next checks spread evenly over `--cycle-days` (a healthy
  Intune-managed device is next looked at when its check-in warning would start: the validity
  period minus the warning lead, 30 - 3 = 27 days by default; a 10-day tenant: 7). Only the rows
  due within `--written-days` are written (the day's and a backlog after it that every run has
  to leave unread): a key-range query never reads a row past its range, and writing all
  100,000 takes Azurite on a shared 2-core machine longer than the whole day's simulation;
- the timer runs every minute of one day; each row it hands over is re-evaluated and scheduled
  again one cycle later (the pipeline's schedule(): an upsert, and the delete of the row the timer
  already removed);
- `--moves-per-day` other evaluations move a device's next check (an Entra or Intune change with a
  fresh check-in): an upsert and a delete each;
- then `--mass` devices due in the same minute (a whole fleet's grace periods set by one policy
  change) are handed over by one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables.aio import TableServiceClient

from local import stack as local_stack
from shared.adapters.deadlines import DeadlineIndex

T0 = datetime(2026, 12, 1, tzinfo=UTC)
CONCURRENCY = 64


class Requests:
    """Every REST request the Table client sends, by kind."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    def __call__(self, response: Any) -> None:
        request = response.http_request
        batch = "$batch" in request.url
        self.kinds["transaction" if batch else request.method] += 1

    def take(self) -> dict[str, int]:
        taken = dict(self.kinds)
        self.kinds.clear()
        return taken


def total(kinds: dict[str, int]) -> int:
    return sum(kinds.values())


async def gather_bounded(calls: list[Any]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Any) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(c) for c in calls))


async def timer_run(index: DeadlineIndex, now: datetime) -> tuple[list[tuple[str, datetime]], int]:
    """One scheduler run as the timer does it, the queue aside: (rows handed over, pages)."""
    handed: list[tuple[str, datetime]] = []
    pages = 0
    async for page in index.due(now):
        pages += 1
        handed += [(row.object_id, row.due) for row in page]
        await index.done(page)
    return handed, pages


async def simulate_day(
    index: DeadlineIndex,
    requests: Requests,
    devices: int,
    cycle: timedelta,
    moves: int,
    written: timedelta,
) -> dict[str, Any]:
    rng = random.Random(12)
    ids = [str(uuid.uuid4()) for _ in range(devices)]
    due = {i: T0 + timedelta(seconds=rng.uniform(0, cycle.total_seconds())) for i in ids}
    started = time.perf_counter()
    horizon = T0 + written
    await gather_bounded([index.schedule(i, at, None) for i, at in due.items() if at < horizon])
    load = requests.take()
    load_seconds = time.perf_counter() - started
    print(f"{total(load)} rows scheduled in {load_seconds:.0f} s", file=sys.stderr, flush=True)

    runs: list[int] = []
    handed_total = 0
    idle_runs = 0
    idle_requests: set[int] = set()
    rescheduled: Counter[str] = Counter()
    moved: Counter[str] = Counter()
    movers = rng.sample(ids, min(moves, devices))
    for minute in range(1, 24 * 60 + 1):
        now = T0 + timedelta(minutes=minute)
        handed, _ = await timer_run(index, now)
        run_requests = total(requests.take())
        runs.append(run_requests)
        if not handed:
            idle_runs += 1
            idle_requests.add(run_requests)
        handed_total += len(handed)
        # The processor re-evaluates each one: its next check one cycle on.
        await gather_bounded([index.schedule(i, at + cycle, at) for i, at in handed])
        for i, at in handed:
            due[i] = at + cycle
        rescheduled.update(requests.take())
        # Evaluations for other reasons that move a device's next check, spread over the day.
        for i in movers[(minute - 1) * len(movers) // 1440 : minute * len(movers) // 1440]:
            new = due[i] + timedelta(hours=rng.uniform(1, 48))
            await index.schedule(i, new, due[i])
            due[i] = new
        moved.update(requests.take())
    return {
        "devices": devices,
        "cycle_days": cycle.total_seconds() / 86400,
        "load": {
            "rows_written": total(load),
            "written_days": written.total_seconds() / 86400,
            "seconds": round(load_seconds, 1),
        },
        "runs": {
            "count": len(runs),
            "idle": idle_runs,
            "idle_requests": sorted(idle_requests),
            "requests": sum(runs),
            "max_requests": max(runs),
            "rows_handed_over": handed_total,
        },
        "rescheduled": {"requests": total(dict(rescheduled)), "kinds": dict(rescheduled)},
        "moved": {"devices": len(movers), "requests": total(dict(moved)), "kinds": dict(moved)},
    }


async def mass_run(index: DeadlineIndex, requests: Requests, devices: int) -> dict[str, Any]:
    at = T0 + timedelta(days=400, seconds=30)
    await gather_bounded([index.schedule(str(uuid.uuid4()), at, None) for _ in range(devices)])
    requests.take()
    started = time.perf_counter()
    handed, pages = await timer_run(index, at + timedelta(minutes=1))
    seconds = time.perf_counter() - started
    kinds = requests.take()
    return {
        "devices": devices,
        "handed_over": len(handed),
        "query_pages": pages,
        "requests": total(kinds),
        "kinds": kinds,
        "seconds": round(seconds, 1),
    }


async def measure(
    tables_connection: str,
    devices: int,
    cycle: timedelta,
    moves: int,
    written: timedelta,
    mass: int,
) -> dict[str, Any]:
    requests = Requests()
    service = TableServiceClient.from_connection_string(
        tables_connection, raw_response_hook=requests
    )
    suffix = uuid.uuid4().hex[:8]
    day_index = DeadlineIndex(service, f"b{suffix}DeviceDeadlines")
    mass_index = DeadlineIndex(service, f"b{suffix}MassDeadlines")
    try:
        for index in (day_index, mass_index):
            await index.ensure_table()
        requests.take()
        day = await simulate_day(day_index, requests, devices, cycle, moves, written)
        burst = await mass_run(mass_index, requests, mass) if mass else None
    finally:
        for index in (day_index, mass_index):
            await index.close()
        await service.close()
    per_day = day["runs"]["requests"] + day["rescheduled"]["requests"] + day["moved"]["requests"]
    return {
        "day": day,
        "mass": burst,
        "requests_per_day": per_day,
        "requests_per_device_per_day": round(per_day / devices, 4),
    }


def report(result: dict[str, Any]) -> None:
    day, runs = result["day"], result["day"]["runs"]
    print(
        f"deadline index, {day['devices']} devices, next checks spread over "
        f"{day['cycle_days']:g} days, one simulated day of minute runs:"
    )
    print(
        f"  scheduler runs: {runs['count']} ({runs['idle']} with nothing due, {runs['idle_requests']} request(s) each),"
        f" {runs['requests']} requests, at most {runs['max_requests']} in one run;"
        f" {runs['rows_handed_over']} rows handed over"
    )
    print(f"  re-scheduling what was handed over: {day['rescheduled']['requests']} requests")
    print(
        f"  {day['moved']['devices']} next checks moved by other evaluations:"
        f" {day['moved']['requests']} requests"
    )
    print(
        f"  per day: {result['requests_per_day']} requests"
        f" ({result['requests_per_device_per_day']} per device)"
    )
    load = day["load"]
    print(
        f"  rows in the table: {load['rows_written']} (due within {load['written_days']:g} days;"
        f" one upsert each, {load['seconds']} s)"
    )
    mass = result["mass"]
    if mass:
        print(
            f"  one run handing over {mass['handed_over']} rows due in the same minute:"
            f" {mass['requests']} requests ({mass['kinds']}), {mass['seconds']} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--cycle-days", type=float, default=27.0)
    parser.add_argument("--moves-per-day", type=int, default=10_000)
    parser.add_argument("--written-days", type=float, default=6.0)
    parser.add_argument("--mass", type=int, default=20_000)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    with local_stack.start() as running:
        result = asyncio.run(
            measure(
                running.tables_connection,
                args.devices,
                timedelta(days=args.cycle_days),
                args.moves_per_day,
                timedelta(days=args.written_days),
                args.mass,
            )
        )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)


if __name__ == "__main__":
    main()
