"""`make run`'s deadline story (issue 12): a device whose Intune grace period runs out is warned at
the lead time and reported lost at its deadline, though nothing in Entra changes until then.

The Graph simulator plays Intune's timeline on its tenant clock (local/graphsim/intune_timeline.py)
and devicemon's runtime judges by the same clock (`CLOCK`, installed by local/demo.py), so the demo
jumps days ahead in a second. The demo's dev host runs no timers (the story's steps are not
interleaved with timer runs): the deadline timer's work is run here at the occurrence of
DEADLINE_SCHEDULE (`0 */1 * * * *`, second 0 of every minute) that first reaches each instant, as
demo_modes fires the sync; the processor in the dev host takes the changes it queues.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from local.graphsim.admin import AsyncSimAdmin

GRACE = timedelta(days=4)


class Alerts(Protocol):
    seen: list[dict[str, Any]]

    async def expect(self, count: int, within: float = 30.0) -> None: ...


class TenantClock:
    """The demo tenant's clock in the simulator: real time plus how far the demo moved it."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    async def jump_to(self, sim: AsyncSimAdmin, moment: datetime) -> None:
        ahead = (moment - self()).total_seconds()
        if ahead > 0:
            moved = await sim.advance_clock(seconds=ahead)
            self.offset = timedelta(seconds=moved["offsetSeconds"])


CLOCK = TenantClock()


async def _until(check: Any, within: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the demo waited too long for the pipeline")
        await asyncio.sleep(0.1)


async def deadline_story(sim: AsyncSimAdmin, watcher: Alerts) -> None:
    from handlers.deadlines import run_deadlines
    from handlers.intune_watch import run_intune_watch
    from local.demo import bold, dim, say
    from shared.adapters.deadlines import first_minute
    from shared.runtime import current

    rt = current()
    store = await rt.store()
    name = "LAPTOP-GRACE-7"
    say(bold(f"▶ Deadlines: {name}, compliant, enters Intune's grace period ({GRACE.days} days)"))
    device = await sim.upsert_device(
        id=str(uuid.uuid4()),
        deviceId=str(uuid.uuid4()),
        displayName=name,
        trustType="AzureAd",
        isCompliant=True,
        isManaged=True,
        accountEnabled=True,
        operatingSystem="Windows",
        operatingSystemVersion="10.0.22631.4460",
        mdmAppId="0000000a-0000-0000-c000-000000000000",
    )
    managed = await sim.upsert_managed_device(
        azureADDeviceId=device["deviceId"],
        deviceName=name,
        complianceState="compliant",
        userPrincipalName="megan.bowen@contoso.example",
    )
    await sim.flush_notifications()
    await _until(lambda: store.get_state(device["id"]))  # first sighting: recorded, no alert
    await run_intune_watch(rt)  # the Intune watch's first run: a baseline, nothing queued
    view = await sim.enter_grace(managed["id"], expires=(CLOCK() + GRACE).isoformat())
    expires = datetime.fromisoformat(view["deadlines"]["grace"].replace("Z", "+00:00"))
    # Entra still says compliant: only the Intune watch sees the grace period begin.
    watched = await run_intune_watch(rt)
    say(
        dim(
            f"  Intune watch (INTUNE_WATCH_SCHEDULE): {watched.changed} device's Intune facts moved,"
            f" {watched.queued} observation queued, {watched.graph_requests} Graph request(s)"
        )
    )

    async def scheduled() -> datetime | None:
        # The first sighting scheduled the check-in warning weeks ahead; the grace period's
        # warning comes before its expiry.
        state = await store.get_state(device["id"])
        check = state.record.next_check if state else None
        return check if check is not None and check < expires else None

    warning = await _until(scheduled)
    say(
        f"  Intune: inGracePeriod until {bold(f'{expires:%a %d %b %H:%M:%S} UTC')}; Entra unchanged."
        f" devicemon keeps its next look at {warning:%a %d %b %H:%M:%S} in DeviceDeadlines"
        f" ({(expires - warning).total_seconds() / 3600:.0f} h before the end)"
    )

    for label, due in (("the warning time", warning), ("the deadline", expires)):
        run_at = first_minute(due)
        await CLOCK.jump_to(sim, run_at)
        say(
            dim(
                f"  ⏩ tenant clock moved to {run_at:%a %d %b %H:%M:%S} UTC: the first run of"
                f" DEADLINE_SCHEDULE at or after {label}"
            )
        )
        await sim.flush_notifications()
        run = await run_deadlines(rt)
        await watcher.expect(1)
        alert = watcher.seen[-1]
        detected = datetime.fromisoformat(
            alert["data"]["detection"]["detectedAt"].replace("Z", "+00:00")
        )
        say(
            dim(
                f"  {alert['type'].rsplit('.', 1)[-1]} detected {detected:%H:%M:%S}, "
                f"{(detected - due).total_seconds():.0f} s after {label}, by"
                f" {alert['data']['detection']['source']} ({run.queued} device(s) queued by the run)"
            )
        )
    say()
