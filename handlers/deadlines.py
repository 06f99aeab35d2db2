"""The deadline timer (DEADLINE_SCHEDULE, every minute): queue a re-evaluation of each device whose
warning time or deadline has come (shared/adapters/deadlines.py), then forget its row.

Each change is a bare hint: at a deadline the facts must be fresh, so the processor re-reads Graph
rather than trust what was seen when the deadline was set. Its message id derives from the device
and the instant it was due, so a run that queued a row and failed before deleting it queues it
again under the same id and the queue's duplicate detection drops the copy. A page is deleted only
after the queue accepted it: a failure leaves the rows for the next run.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import azure.functions as func

from shared import logs
from shared.adapters.deadlines import PAGE_SIZE, DueRow
from shared.core.changes import DeviceChange
from shared.core.models import Source
from shared.runtime import Runtime, current

log = logging.getLogger("devicemon.deadlines")
# A run stops taking pages after this long and leaves the rest to the next minute's run, so runs
# do not overlap (the host skips a tick while the previous run holds the timer's lock).
RUN_BUDGET_SECONDS = 45.0


def deadline_change(row: DueRow, now: datetime) -> DeviceChange:
    message_id = hashlib.sha256(
        f"deadline|{row.object_id}|{row.due.isoformat()}".encode()
    ).hexdigest()[:32]
    return DeviceChange(
        device_id=row.object_id,
        change_type="updated",
        source=Source.DEADLINE,
        message_id=message_id,
        correlation_id=message_id,
        received_at=now.isoformat(),
    )


@dataclass(frozen=True, slots=True)
class DeadlineRun:
    queued: int = 0
    deleted: int = 0
    # Oldest due instant among the rows queued: how late the run was for it.
    oldest_due: datetime | None = None
    finished: bool = True  # False: the budget ran out with rows left for the next run


async def run_deadlines(
    runtime: Runtime, *, budget_seconds: float = RUN_BUDGET_SECONDS, page_size: int = PAGE_SIZE
) -> DeadlineRun:
    """Queue every row due by the runtime's clock, page by page; raises when the queue or the
    table fails (rows not deleted stay due)."""
    now = runtime.now()
    index = await runtime.deadlines()
    queue = runtime.change_queue().with_timeout(None)
    started = time.monotonic()
    queued = deleted = 0
    oldest: datetime | None = None
    async for page in index.due(now, page_size=page_size):
        await queue.send(deadline_change(row, now) for row in page)
        queued += len(page)
        deleted += await index.done(page)
        first = min(row.due for row in page)
        oldest = first if oldest is None else min(oldest, first)
        if time.monotonic() - started > budget_seconds:
            return DeadlineRun(queued, deleted, oldest, finished=False)
    return DeadlineRun(queued, deleted, oldest)


async def deadline_timer(timer: func.TimerRequest, runtime: Runtime | None = None) -> DeadlineRun:
    rt = runtime or current()
    now = rt.now()
    run = await run_deadlines(rt)
    if run.queued or not run.finished:
        logs.event(
            log,
            "deadlines_queued",
            level=logging.INFO if run.finished else logging.WARNING,
            queued=run.queued,
            deleted=run.deleted,
            finished=run.finished,
            late_seconds=round((now - run.oldest_due).total_seconds()) if run.oldest_due else None,
            past_due=timer.past_due,
        )
    return run
