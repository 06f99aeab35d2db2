"""`make chaos`: the 200-device mass event through the real path, once per fault.

Each row: a fresh tenant and fleet, a fresh dev host (child process, function_app's HTTP,
Service Bus and timer triggers), a baseline delta sync (first sightings, no alerts), then two
phases: every device loses eligibility (Graph change notifications posted to the webhook), then
every device regains it. The row's fault is applied in both phases; the mid-run ones start as
soon as the processor has evaluated the first device of the phase, so they land while the rest
are in flight. Then the runner counts, against the 2 x N transitions expected: the alerts drained
from the topic's `audit` subscription, duplicates (one CloudEvent id twice, or two ids for one
transition), lost transitions, dead letters (queue, `teams`, `remediation`), alerts left pending
(PendingAlerts index and DeviceState.PendingAlert) and the time each phase took to converge.

The sweep timer runs in the dev host with SWEEP_SCHEDULE every 10 s and
PENDING_ALERT_SWEEP_SECONDS=10, so an alert stranded by a fault is published within ~20 s.
Loopback only: everything is the local stack. Prints the table and writes .artifacts/chaos.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import machine
from bench.massevent import LOST, RESTORED, Mass, dumps, notification, tally
from local import stack as local_stack
from shared.sources.sync import DeltaSync

PHASE_WITHIN = 420.0  # seconds a phase may take to converge before the row is marked failed
Hook = Callable[[Mass], Awaitable[None]]


async def nothing(m: Mass) -> None:
    return None


async def send_once(m: Mass, kind: str) -> None:
    await m.post((notification(m.tenant, i) for i in m.ids), kind)


@dataclass(frozen=True)
class Fault:
    name: str
    what: str
    before: Hook = nothing  # before the phase's notifications are posted
    during: Hook = nothing  # once the first device of the phase has been evaluated
    after: Hook = nothing  # once the phase converged (or timed out)
    send: Callable[[Mass, str], Awaitable[None]] = send_once


def restart(name: str, down_seconds: float, graceful: bool) -> Hook:
    async def hook(m: Mass) -> None:
        if graceful:
            await asyncio.to_thread(m.stack.stop, name)
        else:
            await asyncio.to_thread(m.stack.kill, name)
        await asyncio.sleep(down_seconds)
        await asyncio.to_thread(m.stack.start_again, name)

    return hook


async def freeze_azurite(m: Mass) -> None:
    await asyncio.to_thread(m.stack.freeze, "azurite")
    await asyncio.sleep(10)
    await asyncio.to_thread(m.stack.thaw, "azurite")


async def kill_devhost(m: Mass) -> None:
    m.host.kill()
    await asyncio.to_thread(m.host.start)


def graph_faults(*rules: dict[str, Any]) -> Hook:
    async def hook(m: Mass) -> None:
        for rule in rules:
            await asyncio.to_thread(functools.partial(m.sim.add_fault, **rule))

    return hook


_outages: set[asyncio.Task[None]] = set()


def graph_outage(seconds: float) -> Hook:
    """Every device read fails with 503 from the start of the phase for `seconds`."""

    async def hook(m: Mass) -> None:
        await asyncio.to_thread(
            functools.partial(
                m.sim.add_fault, status=503, fraction=1.0, count=1_000_000, path=GRAPH_ROUTE
            )
        )

        async def end() -> None:
            await asyncio.sleep(seconds)
            await asyncio.to_thread(m.sim.clear_faults)

        task = asyncio.create_task(end())  # the phase goes on while Graph is down
        _outages.add(task)
        task.add_done_callback(_outages.discard)

    return hook


def freeze_azurite_for(seconds: float) -> Hook:
    async def hook(m: Mass) -> None:
        await asyncio.to_thread(m.stack.freeze, "azurite")
        await asyncio.sleep(seconds)
        await asyncio.to_thread(m.stack.thaw, "azurite")

    return hook


async def clear_graph_faults(m: Mass) -> None:
    await asyncio.to_thread(m.sim.clear_faults)


async def send_duplicated_shuffled(m: Mass, kind: str) -> None:
    # Graph redelivers a notification (same id), notifies one change twice (new id), and keeps
    # no order; the lost phase's hints also arrive again, late, during the restore phase.
    items = []
    for i in m.ids:
        first = notification(m.tenant, i)
        items += [first, dict(first), notification(m.tenant, i)]
    if kind == "restored":
        items += [notification(m.tenant, i) for i in m.ids]
    random.Random(kind).shuffle(items)
    await m.post(items, kind)


async def send_racing_delta(m: Mass, kind: str) -> None:
    # The same changes reach the queue twice: as hints from the webhook and as observations
    # from the delta sync, at the same time.
    async def sync() -> None:
        result = await (await m.runtime.delta_sync()).run(f"chaos-{kind}")
        if result.outcome != "completed":
            raise RuntimeError(f"delta sync failed: {result}")

    await asyncio.gather(send_once(m, kind), sync())


async def send_by_a_sync_that_dies(m: Mass, kind: str) -> None:
    """The phase's changes travel only by the delta sync, and the first sync run dies mid-run
    (its task is cancelled after its first pages: no release, no failure record, exactly what a
    killed process leaves). The runner then asks for a sync every 5 s, as the timer and
    `POST /api/ops/sync` would, until one completes: the dead run's lease must expire by itself
    (60 s, not renewed) and the next run resume from the saved cursor."""
    books = await m.runtime.bookkeeping()

    def sync(owner: str) -> DeltaSync:
        return DeltaSync(
            graph=m.runtime.graph_json(),
            books=books,
            sink=m.runtime.change_queue().with_timeout(None),
            page_size=10,
            owner=owner,
        )

    await asyncio.to_thread(m.sim.set_latency, 200)  # slow pages, so the run dies mid-way
    doomed = asyncio.create_task(sync(f"doomed-{kind}").run(f"chaos-{kind}"))
    for _ in range(200):
        if (await books.sync_state()).link and (await books.sync_state()).lease_owner:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    doomed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await doomed
    await asyncio.to_thread(m.sim.set_latency, 0)
    busy = 0
    while True:
        result = await sync(f"survivor-{kind}").run(f"chaos-{kind}-retry")
        if result.outcome == "completed":
            break
        busy += result.outcome == "busy"
        await asyncio.sleep(5)
    print(f"  {kind}: the dead run's lease turned away {busy} sync request(s)", flush=True)


GRAPH_ROUTE = "^/devices"  # device and managed-device reads by the processor
FAULTS = [
    Fault("none", "no fault (baseline)"),
    Fault(
        "broker-kill",
        "broker SIGKILLed mid-phase, restarted 5 s later (same port and journal)",
        during=restart("broker", 5, graceful=False),
    ),
    Fault(
        "azurite-stop",
        "Azurite stopped with SIGINT mid-phase (saves its tables), restarted 5 s later",
        during=restart("azurite", 5, graceful=True),
    ),
    Fault(
        "azurite-freeze",
        "Azurite SIGSTOPped mid-phase for 10 s, then SIGCONT",
        during=freeze_azurite,
    ),
    Fault(
        "devhost-kill",
        "dev host SIGKILLed mid-phase, a new one started at once (locks held by the dead one "
        "expire after the queue's 30 s lock duration)",
        during=kill_devhost,
    ),
    Fault(
        "graph-429-retry-after",
        "Graph answers 429 with Retry-After: 1 to half the device reads (up to 600)",
        before=graph_faults(
            {"status": 429, "fraction": 0.5, "count": 600, "retry_after": 1, "path": GRAPH_ROUTE}
        ),
        after=clear_graph_faults,
    ),
    Fault(
        "graph-429-no-retry-after",
        "Graph answers 429 without Retry-After to half the device reads (up to 600)",
        before=graph_faults({"status": 429, "fraction": 0.5, "count": 600, "path": GRAPH_ROUTE}),
        after=clear_graph_faults,
    ),
    Fault(
        "graph-5xx",
        "Graph answers 503 to 30 % and 500 to 10 % of device reads (up to 400 and 150)",
        before=graph_faults(
            {"status": 503, "fraction": 0.3, "count": 400, "path": GRAPH_ROUTE},
            {"status": 500, "fraction": 0.1, "count": 150, "path": GRAPH_ROUTE},
        ),
        after=clear_graph_faults,
    ),
    Fault(
        "graph-outage-90s",
        "every Graph device read answers 503 for 90 s from the start of the phase",
        before=graph_outage(90),
        after=clear_graph_faults,
    ),
    Fault(
        "azurite-outage-70s",
        "Azurite SIGSTOPped mid-phase for 70 s, then SIGCONT",
        during=freeze_azurite_for(70),
    ),
    Fault(
        "sync-crash",
        "changes travel only by the delta sync, and its first run dies mid-run holding the "
        "lease; a sync is requested every 5 s until one completes",
        send=send_by_a_sync_that_dies,
    ),
    Fault(
        "duplicate-out-of-order",
        "every notification delivered twice with one id and once more with a new id, shuffled; "
        "the lost phase's notifications delivered again, late, during the restore phase",
        send=send_duplicated_shuffled,
    ),
    Fault(
        "delta-sync-race",
        "the delta sync runs while the notifications for the same changes arrive",
        send=send_racing_delta,
    ),
]


async def phase(m: Mass, fault: Fault, kind: str, props: dict[str, Any]) -> dict[str, Any]:
    eligible = kind == "restored"
    await fault.before(m)
    await m.patch(props)
    started = time.perf_counter()
    await fault.send(m, kind)
    if fault.during is not nothing:
        # Mid-run: wait for the first device of the phase, then strike.
        await m.until(lambda: _any(m, eligible), within=PHASE_WITHIN)
        await fault.during(m)
    converged = await m.until(lambda: m.settled(eligible), within=PHASE_WITHIN)
    seconds = time.perf_counter() - started
    await fault.after(m)
    return {"converged": converged, "seconds": round(seconds, 1)}


async def _any(m: Mass, eligible: bool) -> bool:
    return await m.evaluated(eligible) >= 1


async def row(stack: local_stack.Stack, fault: Fault, devices: int, logs: Path) -> dict[str, Any]:
    async with Mass(stack, devices, log_path=logs / f"devhost-{fault.name}.log") as m:
        await m.baseline()
        lost = await phase(m, fault, "lost", LOST)
        restored = await phase(m, fault, "restored", RESTORED)
        # A sweep period more, so a straggler the sweep would still publish is counted.
        if not (lost["converged"] and restored["converged"]):
            await asyncio.sleep(20)
        counts = tally(await m.take_alerts(), m.ids)
        dead = await m.dead_letters()
        pending = await m.pending()
    return {
        "fault": fault.name,
        "what": fault.what,
        **counts,
        "dead_lettered": len(dead),
        "dead_letters": dead[:20],
        "pending": pending,
        "converge_lost_s": lost["seconds"],
        "converge_restored_s": restored["seconds"],
        "converged": lost["converged"] and restored["converged"],
        "ok": (
            counts["lost"] == 0
            and counts["duplicate_ids"] == 0
            and counts["duplicate_transitions"] == 0
            and counts["unexpected"] == 0
            and not dead
            and pending == 0
        ),
    }


HEADER = (
    "| fault | expected | alerts | duplicates | lost | dead-lettered | pending "
    "| converge lost / restored (s) | ok |"
)


def table_line(r: dict[str, Any]) -> str:
    dup = r["duplicate_ids"] + r["duplicate_transitions"]
    conv = f"{r['converge_lost_s']} / {r['converge_restored_s']}"
    if not r["converged"]:
        conv += " (not converged)"
    return (
        f"| {r['fault']} | {r['expected']} | {r['alerts']} | {dup} | {r['lost']} "
        f"| {r['dead_lettered']} | {r['pending']} | {conv} | {'yes' if r['ok'] else 'NO'} |"
    )


async def main_async(args: argparse.Namespace) -> int:
    artifacts = Path(os.environ.get("DEVICEMON_ARTIFACTS", ".artifacts"))
    logs = artifacts / "chaos"
    logs.mkdir(parents=True, exist_ok=True)
    chosen = [f for f in FAULTS if not args.only or f.name in args.only]
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "devices": args.devices,
        "command": "make chaos",
        "settings": {"SWEEP_SCHEDULE": "*/10 * * * * *", "PENDING_ALERT_SWEEP_SECONDS": 10},
        "rows": [],
    }
    print(HEADER)
    print("|---|---|---|---|---|---|---|---|---|")
    with local_stack.start(log_dir=logs / "stack") as stack:
        for fault in chosen:
            started = time.perf_counter()
            result = await row(stack, fault, args.devices, logs)
            result["row_seconds"] = round(time.perf_counter() - started, 1)
            report["rows"].append(result)
            print(table_line(result), flush=True)
            if result["dead_letters"]:
                print(f"    dead letters: {result['dead_letters']}", flush=True)
    out = artifacts / "chaos.json"
    out.write_text(dumps(report))
    print(f"raw figures: {out}")
    return 0 if all(r["ok"] for r in report["rows"]) else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument(
        "--only", nargs="*", choices=[f.name for f in FAULTS], help="run these rows only"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
