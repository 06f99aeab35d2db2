"""The mass event through the real path, driven from outside: the scenario that `make chaos`
(bench/chaos.py) runs under faults and that the alert benchmark (bench/alerts.py) times.

function_app runs in a dev host *child process* (`python -m bench.devhost_child`, i.e.
`python -m local.devhost` that also reports its own peak RSS): HTTP and Service Bus triggers
with host.json as shipped, except sessions released after 0.2 s idle (see tests/test_mass_event.py:
the Python SDK opens a connection per session receiver), plus the sweep timer. The runner posts
Graph change notifications to the webhook, reads state from Azurite and drains the topic's
`audit` subscription through the real SDK, as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import CLIENT_STATE, bench_settings, settings_env
from local import stack as local_stack
from local.graphsim.admin import SimAdmin
from local.ports import free_port, wait_for_port
from shared.runtime import Runtime
from shared.settings import Settings
from tests.graph_helpers import hybrid_fleet
from tests.servicebus_helpers import (
    body_json,
    drain_dead_letters,
    drain_subscription,
)

LOST = {"trustType": "Workplace"}  # hybrid joined → registered: NOT_HYBRID_JOINED
RESTORED = {"trustType": "ServerAd"}
POST_BATCH = 50  # notifications per webhook POST

# The sweep runs during chaos (docs/reliability.md says so): every 10 s, for alerts pending 10 s.
SWEEP_ENV = {"SWEEP_SCHEDULE": "*/10 * * * * *", "PENDING_ALERT_SWEEP_SECONDS": "10"}


def notification(tenant: str, device_id: str, notification_id: str | None = None) -> dict[str, Any]:
    """One change notification as Graph sends it (change-notifications-delivery-webhooks.md)."""
    return {
        "id": notification_id or str(uuid.uuid4()),
        "subscriptionId": "e3bd2a5c-4b55-4a47-97cc-5ec1c8b1b4a1",
        "subscriptionExpirationDateTime": "2026-12-02T11:00:00.0000000Z",
        "clientState": CLIENT_STATE,
        "changeType": "updated",
        "resource": f"devices/{device_id}",
        "tenantId": tenant,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Device",
            "@odata.id": f"devices/{device_id}",
            "id": device_id,
        },
    }


class DevHostProcess:
    """The dev host as a child process, so it can be SIGKILLed and replaced like a crashed
    worker, and so its peak RSS is its own."""

    def __init__(self, env: dict[str, str], log_path: Path | None = None) -> None:
        self.env = env
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.rss_file = Path(tempfile.mkstemp(prefix="devhost-rss-")[1])

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        self.port = free_port()
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            out = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.devhost_child",
                str(self.rss_file),
                "--only",
                "http,servicebus,timer",
                "--port",
                str(self.port),
                "--session-idle-timeout",
                "0.2",
                "--quiet",
            ],
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
        wait_for_port(self.port, timeout=60)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> float | None:
        """Stop gracefully; returns the host's own peak RSS in MB (None if it was killed)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        text = self.rss_file.read_text().strip() if self.rss_file.exists() else ""
        self.rss_file.unlink(missing_ok=True)
        return int(text) / 1024 if text else None


@dataclass
class Mass:
    """One tenant, one fleet, one dev host: baseline, then lose and restore the whole fleet."""

    stack: local_stack.Stack
    devices: int
    senders: int = 4
    log_path: Path | None = None
    tenant: str = field(default_factory=lambda: str(uuid.uuid4()))
    settings: Settings = field(init=False)
    runtime: Runtime = field(init=False)
    sim: SimAdmin = field(init=False)
    host: DevHostProcess = field(init=False)
    ids: list[str] = field(default_factory=list)
    sent_at: dict[tuple[str, str], float] = field(default_factory=dict)
    host_peak_rss_mb: float | None = None  # the dev host's own, once it has stopped

    def __post_init__(self) -> None:
        from dataclasses import replace

        self.settings = replace(
            bench_settings(self.stack, self.tenant), service_bus_senders=self.senders
        )
        self.runtime = Runtime(self.settings)
        self.sim = SimAdmin(self.stack.graph_root, self.tenant)
        env = {
            **settings_env(self.settings),
            **SWEEP_ENV,
            "SERVICE_BUS_SENDERS": str(self.senders),
            # The delta sync and subscription upkeep are driven by the runner, not by timers.
            "AzureWebJobs.sync_devices.Disabled": "true",
            "AzureWebJobs.maintain_subscription.Disabled": "true",
            "SYNC_SCHEDULE": "0 0 0 1 1 *",
            "SUBSCRIPTION_SCHEDULE": "0 0 0 1 1 *",
        }
        self.host = DevHostProcess(env, self.log_path)

    async def __aenter__(self) -> Mass:
        await asyncio.to_thread(self.sim.ensure)
        await self.runtime.store()  # tables exist before the host starts
        self.host.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.host_peak_rss_mb = self.host.stop()
        await self.runtime.close()
        self.sim.close()

    async def baseline(self) -> float:
        """Create the fleet (all eligible) and sync it: first sightings, no alerts. Seconds."""
        devices = hybrid_fleet(self.devices)
        await asyncio.to_thread(self.sim.upsert_devices, devices, False)
        self.ids = [d["id"] for d in devices]
        started = time.perf_counter()
        result = await (await self.runtime.delta_sync()).run("baseline")
        if result.outcome != "completed":
            raise RuntimeError(f"baseline sync failed: {result}")
        await self.until(lambda: self.settled(True), within=300)
        elapsed = time.perf_counter() - started
        await self.take_alerts()  # first sightings publish nothing; start from an empty audit
        return elapsed

    async def patch(self, props: dict[str, Any]) -> None:
        patches = [{"id": i, **props} for i in self.ids]
        await asyncio.to_thread(self.sim.patch_devices, patches, False)

    async def post(self, items: Iterable[dict[str, Any]], kind: str | None = None) -> list[int]:
        """POST notifications to the webhook in batches; Graph redelivers on a non-2xx, so do
        the same (for up to a minute) and return the statuses seen."""
        batch = list(items)
        statuses: list[int] = []
        async with httpx.AsyncClient(timeout=30) as http:

            async def one(chunk: list[dict[str, Any]]) -> None:
                deadline = time.monotonic() + 60
                while True:
                    if kind is not None:
                        now = time.time()
                        for item in chunk:
                            self.sent_at.setdefault((item["resourceData"]["id"], kind), now)
                    try:
                        answer = await http.post(
                            f"{self.host.api_url}/graph/notifications", json={"value": chunk}
                        )
                        statuses.append(answer.status_code)
                        if answer.status_code < 300:
                            return
                    except httpx.HTTPError:
                        statuses.append(0)
                    if time.monotonic() > deadline:
                        return
                    await asyncio.sleep(1.0)

            await asyncio.gather(
                *(one(batch[n : n + POST_BATCH]) for n in range(0, len(batch), POST_BATCH))
            )
        return statuses

    async def evaluated(self, eligible: bool) -> int:
        wanted = set(self.ids)
        count = 0
        async for state in (await self.runtime.store()).states():
            if state.record.object_id in wanted and state.record.eligible is eligible:
                count += 1
        return count

    async def settled(self, eligible: bool) -> bool:
        """Every device evaluated to `eligible` with no alert left pending."""
        wanted = set(self.ids)
        done = 0
        async for state in (await self.runtime.store()).states():
            if state.record.object_id in wanted:
                if state.record.eligible is not eligible or state.pending_alert:
                    return False
                done += 1
        return done == len(wanted)

    async def until(self, check: Callable[[], Awaitable[bool]], within: float) -> bool:
        """Poll `check` (storage may be down meanwhile: that counts as not yet)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            # A fault row takes storage down on purpose: an error is "not yet".
            with contextlib.suppress(Exception):
                if await check():
                    return True
            await asyncio.sleep(0.5)
        return False

    async def take_alerts(self) -> list[Any]:
        return await asyncio.to_thread(
            drain_subscription,
            self.stack.service_bus_connection,
            self.settings.device_alerts_topic,
            "audit",
            2.0,
        )

    async def dead_letters(self) -> list[tuple[str, str | None, str | None]]:
        s = self.settings
        conn = self.stack.service_bus_connection
        found = [
            ("device-changes", d.message_id, d.dead_letter_reason)
            for d in await asyncio.to_thread(drain_dead_letters, conn, s.device_changes_queue, 0.5)
        ]
        for sub in ("teams", "remediation"):
            dead = await asyncio.to_thread(
                drain_subscription, conn, s.device_alerts_topic, sub, 0.5, True
            )
            found += [(sub, d.message_id, d.dead_letter_reason) for d in dead]
        return found

    async def pending(self) -> int:
        held = await (await self.runtime.pending_alerts()).held_before(
            datetime.now(UTC) + timedelta(days=1)
        )
        wanted = set(self.ids)
        states = 0
        async for state in (await self.runtime.store()).states():
            if state.record.object_id in wanted and state.pending_alert:
                states += 1
        return len(held) + states


def tally(messages: list[Any], ids: list[str]) -> dict[str, Any]:
    """Alerts drained from `audit` against the transitions expected (each device lost, then
    restored): duplicates are an event id seen twice or two ids for one transition."""
    alerts = [body_json(m) for m in messages]
    expected = {
        (f"devices/{i}", f"devicemon.eligibility.{k}") for i in ids for k in ("lost", "restored")
    }
    by_id = Counter(a["id"] for a in alerts)
    per_transition: dict[tuple[str, str], set[str]] = {}
    for a in alerts:
        per_transition.setdefault((a["subject"], a["type"]), set()).add(a["id"])
    unexpected = [k for k in per_transition if k not in expected]
    return {
        "expected": len(expected),
        "alerts": len(alerts),
        "duplicate_ids": sum(n - 1 for n in by_id.values() if n > 1),
        "duplicate_transitions": sum(len(v) - 1 for v in per_transition.values() if len(v) > 1),
        "lost": len(expected - set(per_transition)),
        "unexpected": len(unexpected),
    }


def enqueued_at(message: Any) -> float:
    return float(message.enqueued_time_utc.replace(tzinfo=UTC).timestamp())


def alert_key(message: Any) -> tuple[str, str]:
    alert = body_json(message)
    return alert["subject"].removeprefix("devices/"), alert["type"].rsplit(".", 1)[-1]


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
