"""A change of what judges devices re-evaluates the fleet through the normal pipeline.

When the Conditional Access policies in force change (a policy edited, added or removed in a way
that changes its device view, or the mode switching between the policies and the CA_POLICY
setting), no device changes in Entra: nothing else would look at the devices again. The policy
timer (handlers/policies.py) then queues every known device, so each is judged under the new
policies and a policy that blocks 3,000 devices raises 3,000 `lost` alerts, which the Teams
consumer summarises as one mass event (shared/consumers/noise.py).

Each device is queued as a bare hint with source REPLAY. Why a hint rather than the stored facts
as an observation: a hint is never stale, so every device is judged, by the worker that takes
it, under the policies in force and with its current facts. A stored observation read when the
fleet is queued would be dropped as stale if a newer change of the device were processed first,
and that change may have been judged by a worker still holding the old policies: the device would
then keep the old verdict until it next changed. The price is one device read from Graph per
device (Intune is not read again while nothing Intune writes on the device moved), on a rare
event; docs/ca-policies.md gives the figures.

Why scheduled: every worker reloads the policies at most once per cache period
(shared/adapters/policy_source.py); the hints become visible when that period has passed since
the new policies were stored, so no worker judges a queued device with the old ones.

Queued in pages of PAGE devices (one scheduling request each); message ids are derived from the
device and the new digest, so a timer that is run again after a failure queues nothing twice
within the queue's duplicate detection window, and a re-evaluation twice is harmless anyway
(nothing changed: no alert). The digest is marked done only after the last page is queued: a
failure midway is retried by the next timer run.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from shared import logs
from shared.core.changes import DeviceChange
from shared.core.models import Source

log = logging.getLogger("devicemon.policy_change")
PAGE = 200  # bare hints are ~0.5 KB: a page stays far below a request's 256 KB


class ScheduledSink(Protocol):
    async def send(self, changes: Iterable[DeviceChange]) -> int: ...
    async def schedule_all(self, changes: Sequence[DeviceChange], at: datetime) -> int: ...


def reevaluation(device_id: str, digest: str, at: datetime) -> DeviceChange:
    """The bare hint that has one device judged again under the policies `digest` names."""
    message_id = hashlib.sha256(f"policies|{digest}|{device_id}".encode()).hexdigest()[:32]
    return DeviceChange(
        device_id=device_id,
        change_type="updated",
        source=Source.REPLAY,
        message_id=message_id,
        correlation_id=f"policies-{digest[:16]}",
        received_at=at.isoformat(),
    )


async def reevaluate_fleet(
    devices: AsyncIterator[str],
    sink: ScheduledSink,
    *,
    digest: str,
    now: datetime,
    delay: timedelta,
    page: int = PAGE,
) -> int:
    """Queue every device of `devices` for re-evaluation, visible after `delay`; returns how
    many were queued."""
    due = now + delay
    queued = 0
    batch: list[DeviceChange] = []

    async def flush() -> None:
        nonlocal queued
        if not batch:
            return
        if delay > timedelta(0):
            queued += await sink.schedule_all(batch, due)
        else:
            queued += await sink.send(batch)
        batch.clear()

    async for device_id in devices:
        batch.append(reevaluation(device_id, digest, now))
        if len(batch) >= page:
            await flush()
    await flush()
    logs.event(
        log,
        "fleet_reevaluation_queued",
        devices=queued,
        digest=digest,
        visible_at=due.isoformat(),
    )
    return queued
