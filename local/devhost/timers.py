"""Timer triggers: fire on an NCRONTAB or TimeSpan schedule, one invocation at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from azure.functions.timer import TimerRequest

from local.devhost.functions import FunctionSpec
from local.devhost.invoke import Invoker, log_invocation
from local.devhost.ncrontab import IntervalSchedule, Schedule

log = logging.getLogger("devhost")

# An occurrence started this much after its due time is reported as past due.
PAST_DUE_AFTER = timedelta(seconds=1)


def schedule_timezone() -> tzinfo:
    """UTC unless WEBSITE_TIME_ZONE names an IANA zone (the Linux host's convention)."""
    name = os.environ.get("WEBSITE_TIME_ZONE") or os.environ.get("TZ")
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("time zone %r unknown; timer schedules use UTC", name)
        return UTC


def _iso(moment: datetime) -> str:
    return moment.isoformat()


class TimerRunner:
    """Runs one timer function on its schedule.

    The host runs each timer as a singleton: an occurrence that comes due while the previous
    invocation is still running is skipped, not queued, and the next one is computed from
    when that invocation finished.
    """

    def __init__(
        self,
        spec: FunctionSpec,
        schedule: Schedule,
        invoker: Invoker,
        *,
        run_on_startup: bool = False,
    ) -> None:
        self.spec = spec
        self.schedule = schedule
        self._invoker = invoker
        self._run_on_startup = run_on_startup
        self._tz = schedule_timezone()
        self._lock = asyncio.Lock()  # the singleton: one invocation at a time
        self._last: datetime | None = None
        self._next: datetime | None = None

    def _now(self) -> datetime:
        return datetime.now(self._tz)

    def _next_after(self, moment: datetime) -> datetime:
        if isinstance(self.schedule, IntervalSchedule):
            return self.schedule.next_after(moment)
        # NCRONTAB fields are wall-clock values in the schedule's zone.
        wall = self.schedule.next_after(moment.replace(tzinfo=None))
        return wall.replace(tzinfo=self._tz)

    async def fire(self, due: datetime | None, reason: str) -> None:
        """Invoke once (waiting for a running invocation first) and log the outcome."""
        async with self._lock:
            now = self._now()
            past_due = due is not None and now - due > PAST_DUE_AFTER
            request = TimerRequest(
                past_due=past_due,
                schedule_status={
                    "Last": _iso(self._last) if self._last else None,
                    "Next": _iso(self._next_after(max(due or now, now))),
                    "LastUpdated": _iso(now),
                },
                schedule={"AdjustForDST": True},
            )
            result = await self._invoker.invoke(self.spec, request)
            self._last = due or now
            log_invocation(
                self.spec,
                f"timer {self.schedule.expression} {reason}{' past-due' if past_due else ''}",
                result,
                "done" if result.succeeded else "error",
            )

    async def run(self, stopping: asyncio.Event) -> None:
        """Fire on schedule until `stopping` is set; an invocation in progress is finished."""
        if self._run_on_startup and not stopping.is_set():
            await self.fire(None, "startup")
        self._next = self._next_after(self._now())
        while not stopping.is_set():
            delay = (self._next - self._now()).total_seconds()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=delay)
                continue  # re-check: stopped, or woke slightly early
            due = self._next
            await self.fire(due, "schedule")
            # Occurrences that came due during the invocation are skipped, like the host.
            self._next = self._next_after(max(due, self._now()))
