"""At-risk episodes and deadlines through the pipeline (issue 12 items 3-5), against the real
stack: the Graph simulator's Intune timeline on the tenant's clock (local/graphsim/intune_timeline.py),
Azurite, the AMQP broker, and the deadline index (shared/adapters/deadlines.py) as scheduler.

The pipeline runs on the simulator's clock, which the tests move."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from local.graphsim.admin import SimAdmin
from shared.adapters.deadlines import DeadlineIndex
from shared.adapters.store import DeviceStore
from shared.core.models import Source, Transition
from shared.processing.pipeline import Pipeline
from shared.runtime import Runtime
from tests.graph_helpers import add_device
from tests.shared.processing.test_pipeline import (
    CRASH_STEPS,
    Crash,
    FlakyPublisher,
    FlakyStore,
    alerts,
    change,
    history,
    once,
    state,
)

LEAD = timedelta(hours=72)


class SimClock:
    """The tenant's time, as the simulator keeps it; read again after each move."""

    def __init__(self, sim: SimAdmin) -> None:
        self._sim = sim
        self.now = self._read()

    def _read(self) -> datetime:
        return datetime.fromisoformat(str(self._sim.clock()["now"]).replace("Z", "+00:00"))

    def advance(self, **by: float) -> datetime:
        self._sim.advance_clock(**by)
        self.now = self._read()
        return self.now

    def __call__(self) -> datetime:
        return self.now


async def pipeline_on(
    runtime: Runtime,
    clock: SimClock,
    store: DeviceStore | None = None,
    publisher: Any = None,
) -> tuple[Pipeline, DeadlineIndex]:
    healthy = await runtime.pipeline()
    index = await runtime.deadlines()
    pipeline = Pipeline(
        graph=runtime.graph(),
        store=store or await runtime.store(),
        publisher=publisher or runtime.publisher(),
        outbox=await runtime.pending_alerts(),
        options=healthy._options,
        event_source="urn:devicemon",
        clock=clock,
        scheduler=index,
    )
    return pipeline, index


async def started(
    runtime: Runtime, sim: SimAdmin
) -> tuple[SimClock, Pipeline, DeadlineIndex, dict[str, Any]]:
    """The pipeline on the simulator's clock, and a compliant Intune device it has seen once."""
    clock = SimClock(sim)
    pipeline, index = await pipeline_on(runtime, clock)
    device = add_device(sim)
    await pipeline.process(change(device["id"]))
    return clock, pipeline, index, device


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def later(clock: SimClock, by: timedelta) -> datetime:
    """An instant as Graph writes it: to the second."""
    return (clock.now + by).replace(microsecond=0)


async def test_a_device_fixed_during_its_grace_period_is_warned_then_cleared_never_lost(
    runtime: Runtime, sim: SimAdmin, stack: Any
) -> None:
    clock, pipeline, index, device = await started(runtime, sim)

    expires = later(clock, timedelta(days=5))
    sim.enter_grace(device["managedId"], expires=iso(expires))
    entered = await pipeline.process(change(device["id"], Source.INTUNE_WATCH))
    # Five days left, warned 72 h ahead: recorded, scheduled at the warning time, no alert yet.
    assert entered.transition is Transition.CHANGED
    row = await state(runtime, device["id"])
    assert row is not None and row.record.next_check == expires - LEAD
    assert await index.scheduled(device["id"], expires - LEAD)

    clock.advance(days=2, minutes=1)
    warned = await pipeline.process(change(device["id"], Source.DEADLINE))
    assert warned.transition is Transition.AT_RISK
    row = await state(runtime, device["id"])
    assert row is not None
    assert (row.record.risk_reasons, row.record.deadline) == (("GRACE_PERIOD_ENDING",), expires)
    assert row.record.next_check == expires
    assert await index.scheduled(device["id"], expires)

    sim.comply(device["managedId"])
    cleared = await pipeline.process(change(device["id"], Source.INTUNE_WATCH))
    assert cleared.transition is Transition.AT_RISK_CLEARED

    published = alerts(runtime, stack)
    assert [a["type"] for a in published] == [
        "devicemon.eligibility.at_risk",
        "devicemon.eligibility.at_risk_cleared",
    ]
    raised = published[0]["data"]
    assert raised["risk"]["deadline"] == iso(expires)
    assert raised["risk"]["leadHours"] == 72
    assert raised["detection"]["source"] == "deadline"
    assert published[1]["data"]["risk"]["reasons"] == ["GRACE_PERIOD_ENDING"]
    rows = await history(runtime, device["id"])
    assert [r.transition for r in rows] == ["at_risk_cleared", "at_risk", "changed", "first_seen"]
    assert rows[1].alert_id == published[0]["id"]


async def test_a_grace_period_that_runs_out_is_lost_at_its_deadline_without_clearing(
    runtime: Runtime, sim: SimAdmin, stack: Any
) -> None:
    clock, pipeline, index, device = await started(runtime, sim)
    expires = later(clock, timedelta(hours=48))
    sim.enter_grace(device["managedId"], expires=iso(expires))
    assert (await pipeline.process(change(device["id"]))).transition is Transition.AT_RISK

    clock.advance(hours=48, minutes=1)
    lost = await pipeline.process(change(device["id"], Source.DEADLINE))

    assert lost.transition is Transition.LOST
    assert [a["type"] for a in alerts(runtime, stack)] == [
        "devicemon.eligibility.at_risk",
        "devicemon.eligibility.lost",
    ]
    row = await state(runtime, device["id"])
    assert row is not None and row.record.next_check is None and not row.record.at_risk
    # The deadline's row is gone with the risk: nothing left to look at.
    assert not await index.scheduled(device["id"], expires)


async def test_an_error_state_counts_its_seven_days_from_when_devicemon_first_saw_it(
    runtime: Runtime, sim: SimAdmin, stack: Any
) -> None:
    clock, pipeline, _, device = await started(runtime, sim)
    sim.set_compliance_error(device["managedId"])
    seen = clock.now
    assert (await pipeline.process(change(device["id"]))).transition is Transition.CHANGED

    clock.advance(days=4, minutes=1)
    warned = await pipeline.process(change(device["id"], Source.DEADLINE))

    assert warned.transition is Transition.AT_RISK
    row = await state(runtime, device["id"])
    assert row is not None and row.record.compliance_error_since == seen
    (alert,) = alerts(runtime, stack)
    assert alert["data"]["risk"]["reasons"] == ["COMPLIANCE_ERROR_PENDING"]
    assert alert["data"]["risk"]["deadline"] == iso(seen + timedelta(days=7))


async def test_a_check_in_moves_the_schedule_without_a_history_row(
    runtime: Runtime, sim: SimAdmin, stack: Any
) -> None:
    clock, pipeline, index, device = await started(runtime, sim)
    first = await state(runtime, device["id"])
    assert first is not None and first.record.next_check is not None

    clock.advance(hours=9)  # one ordinary check-in later (every ~8 h)
    again = await pipeline.process(change(device["id"], Source.INTUNE_WATCH))

    assert again.transition is Transition.UNCHANGED
    moved = await state(runtime, device["id"])
    assert moved is not None and moved.record.version == 1
    assert moved.record.next_check is not None and moved.record.next_check > first.record.next_check
    assert await index.scheduled(device["id"], moved.record.next_check)
    assert not await index.scheduled(device["id"], first.record.next_check)
    assert [r.transition for r in await history(runtime, device["id"])] == ["first_seen"]
    assert alerts(runtime, stack) == []


@pytest.mark.parametrize("step", CRASH_STEPS)
async def test_a_crash_at_any_step_neither_loses_nor_duplicates_the_at_risk_alert(
    runtime: Runtime, sim: SimAdmin, stack: Any, step: str
) -> None:
    clock, _, index, device = await started(runtime, sim)
    expires = later(clock, timedelta(hours=24))
    sim.enter_grace(device["managedId"], expires=iso(expires))

    fail = once(step)
    flaky, _ = await pipeline_on(
        runtime,
        clock,
        FlakyStore(await runtime.store(), fail),
        FlakyPublisher(runtime.publisher(), fail),
    )
    message = change(device["id"], Source.DEADLINE)
    with pytest.raises(Crash):
        await flaky.process(message)
    await flaky.process(message)  # the redelivery
    await flaky.process(message)  # and a stray duplicate

    published = alerts(runtime, stack)
    assert [a["type"] for a in published] == ["devicemon.eligibility.at_risk"]
    rows = await history(runtime, device["id"])
    assert [(r.record.version, r.transition) for r in rows] == [(2, "at_risk"), (1, "first_seen")]
    assert rows[0].alert_id == published[0]["id"]
    current = await state(runtime, device["id"])
    assert current is not None and current.pending_alert == ""
    assert current.record.next_check == expires
    assert await index.scheduled(device["id"], expires)
