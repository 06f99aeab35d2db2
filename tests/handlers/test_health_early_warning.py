"""/api/health turns degraded when a timer that sees deadlines coming has stopped: the deadline
timer (rows left in the index past their due time) and the Intune watch (its last finished run),
read from Azurite as the timers leave them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.functions.timer import TimerRequest

from handlers.deadlines import deadline_timer
from shared.adapters.intune_digests import DigestBook, table_name
from shared.runtime import Runtime
from shared.settings import Settings
from tests.health_helpers import fresh_bookkeeping, health_report


@pytest.fixture
async def rt(runtime: Runtime) -> AsyncIterator[Runtime]:
    await fresh_bookkeeping(runtime)
    yield runtime


def early_problems(report: dict[str, object]) -> list[str]:
    problems = report["problems"]
    assert isinstance(problems, list)
    return [p for p in problems if "deadline" in p or "Intune watch" in p]


async def test_a_deadline_left_waiting_is_degraded_until_the_timer_hands_it_over(
    rt: Runtime,
) -> None:
    index = await rt.deadlines()
    now = datetime.now(UTC)
    await index.schedule("0b4c-due-soon", now + timedelta(hours=1), None)
    await index.schedule("0b4c-just-due", now - timedelta(minutes=2), None)
    _, report = await health_report(rt)
    assert early_problems(report) == []  # due 2 minutes ago: the timer's next run takes it

    await index.schedule("0b4c-stuck", now - timedelta(minutes=12), None)
    status, report = await health_report(rt)
    assert (status, report["status"]) == (200, "degraded")
    [problem] = early_problems(report)
    assert "came due 12 min ago" in problem or "came due 11 min ago" in problem
    assert report["earlyWarning"]["deadlines"]["oldestOverdueAt"] is not None

    await deadline_timer(TimerRequest(past_due=True), rt)  # the timer runs again
    _, report = await health_report(rt)
    assert early_problems(report) == []
    assert report["earlyWarning"]["deadlines"]["oldestOverdueAt"] is None


@pytest.mark.parametrize(("finished_ago", "late"), [(None, False), (20, False), (75, True)])
async def test_an_intune_watch_that_stopped_finishing_runs_is_degraded(
    rt: Runtime, settings: Settings, finished_ago: int | None, late: bool
) -> None:
    book = DigestBook(await rt.table_service(), table_name(settings.table_prefix))
    await book.ensure_table()
    if finished_ago is not None:
        finished = datetime.now(UTC) - timedelta(minutes=finished_ago)
        await book.record_run(finished, {"devices": 3})
    await book.close()

    _, report = await health_report(rt)

    problems = early_problems(report)
    assert bool(problems) is late
    if late:
        assert report["status"] == "degraded"
        assert "Intune watch last finished a run 75 min ago" in problems[0]
    watch = report["earlyWarning"]["intuneWatch"]
    assert (watch["lastFinishedAt"] is None) is (finished_ago is None)
    assert watch["staleAfterSeconds"] == settings.intune_watch_stale_minutes * 60
