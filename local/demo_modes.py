"""`make run`'s two worlds (issue 11 item 4): Graph accepts the /devices subscription, or refuses it.

Graph does not list `device` among the resources that support change notifications, so a tenant
may refuse the subscription. The demo shows the same kind of change (a device disabled in Entra)
caught by a notification within seconds while the subscription is live, then by the delta sync
alone within the minute while Graph refuses it, and prints what /api/health says in each mode.

The demo's dev host runs no timers (so the story's steps are not interleaved with timer runs);
while the subscription is refused, the delta sync is fired here on SYNC_SCHEDULE's occurrences,
as the Functions host's timer would, through the same command the timer's work goes by.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from local.devhost.ncrontab import parse_schedule
from local.graphsim.admin import AsyncSimAdmin


class Alerts(Protocol):
    """The demo's alert watcher: prints each alert from the topic as it arrives."""

    seen: list[dict[str, Any]]

    async def expect(self, count: int, within: float = 30.0) -> None: ...


async def _health(http: httpx.AsyncClient, api_url: str) -> dict[str, Any]:
    report: dict[str, Any] = (await http.get(f"{api_url}/health")).json()
    return report


async def _until_mode(http: httpx.AsyncClient, api_url: str, mode: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        report = await _health(http, api_url)
        if report["detection"]["mode"] == mode:
            return report
        if time.monotonic() > deadline:
            raise TimeoutError(f"/api/health never reported {mode}")
        await asyncio.sleep(0.2)


def _print_health(report: dict[str, Any]) -> None:
    from local.demo import bold, dim, say

    detection = report["detection"]
    say(
        f"  {bold('GET /api/health')}: {report['status']}, detection mode {bold(detection['mode'])}"
    )
    say(f"    {detection['explanation']}")
    if detection["subscriptionError"]:
        say(dim(f"    subscriptionError: {detection['subscriptionError']}"))
        say(dim(f"    lastTriedAt: {detection['lastTriedAt']}"))


async def _sync_timer(http: httpx.AsyncClient, api_url: str, fired: list[datetime]) -> None:
    """The sync timer's occurrences (default `0 */1 * * * *`: second 0 of every minute)."""
    schedule = parse_schedule(os.environ.get("SYNC_SCHEDULE", "0 */1 * * * *"))
    while True:
        due = schedule.next_after(datetime.now(UTC))
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        response = await http.post(f"{api_url}/ops/sync", params={"reason": "timer"})
        if response.status_code == 202:
            fired.append(due)


async def both_modes(
    sim: AsyncSimAdmin, api_url: str, watcher: Alerts, devices: dict[str, dict[str, Any]]
) -> None:
    from local.demo import bold, dim, say

    cad, surface = devices["CAD-WS-11"], devices["SURFACE-SALES-3"]
    async with httpx.AsyncClient(timeout=30) as http:
        say(bold("▶ Mode 1: Graph accepted the /devices subscription"))
        _print_health(await _until_mode(http, api_url, "notifications+delta"))
        say(bold("  An admin disables CAD-WS-11 in Entra ID"))
        started = time.monotonic()
        await sim.patch_device(cad["id"], accountEnabled=False)
        await sim.flush_notifications()
        await watcher.expect(1)
        say(
            dim(
                f"  caught by a change notification {time.monotonic() - started:.1f} s after the change\n"
            )
        )

        say(bold("▶ Mode 2: Graph refuses the /devices subscription"))
        for live in (await sim.subscriptions())["subscriptions"]:
            await sim.remove_subscription(live["id"])
        await sim.refuse_device_subscriptions(status=400)
        (await http.post(f"{api_url}/ops/subscription")).raise_for_status()
        _print_health(await _until_mode(http, api_url, "delta-only"))
        fired: list[datetime] = []
        timer = asyncio.create_task(_sync_timer(http, api_url, fired))
        try:
            say(bold("  An admin disables SURFACE-SALES-3 in Entra ID (no notification comes)"))
            changed_at = datetime.now(UTC)
            started = time.monotonic()
            await sim.patch_device(surface["id"], accountEnabled=False)
            await watcher.expect(1, within=120)
            caught = time.monotonic() - started
        finally:
            timer.cancel()
        when = f" (timer fired {fired[-1]:%H:%M:%S})" if fired else ""
        say(
            dim(
                f"  changed {changed_at:%H:%M:%S}, caught by the delta sync {caught:.1f} s later"
                f"{when}: within the minute of SYNC_SCHEDULE\n"
            )
        )

        say(bold("▶ Back to mode 1: Graph accepts the subscription again; both devices re-enabled"))
        await sim.accept_device_subscriptions()
        (await http.post(f"{api_url}/ops/subscription")).raise_for_status()
        _print_health(await _until_mode(http, api_url, "notifications+delta"))
        started = time.monotonic()
        await sim.patch_device(cad["id"], accountEnabled=True)
        await sim.patch_device(surface["id"], accountEnabled=True)
        await sim.flush_notifications()
        await watcher.expect(2)
        say(dim(f"  both caught by notifications within {time.monotonic() - started:.1f} s\n"))
