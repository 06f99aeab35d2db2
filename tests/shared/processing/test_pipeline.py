"""The pipeline against the real local stack: Graph simulator, Azurite and the AMQP broker."""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from azure.data.tables.aio import TableClient

from local.graphsim.admin import SimAdmin
from shared.adapters.servicebus import AlertPublisher
from shared.adapters.store import DeviceStore, HistoryConflict
from shared.core.changes import DeviceChange
from shared.core.models import Source, Transition
from shared.core.records import STATE_ROW_KEY, HistoryRow, StateRow
from shared.processing.pipeline import Pipeline
from shared.retry import RetriesExhausted
from shared.runtime import Runtime
from tests.alert_helpers import ALERT_VALIDATOR
from tests.graph_helpers import add_device
from tests.servicebus_helpers import body_json, drain_subscription


class Crash(Exception):
    """An injected failure standing for a process crash at one step."""


def change(device_id: str, source: Source = Source.NOTIFICATION) -> DeviceChange:
    message_id = uuid.uuid4().hex
    return DeviceChange(
        device_id, "updated", source, message_id, message_id, "2026-11-29T00:00:00Z"
    )


async def history(runtime: Runtime, device_id: str) -> list[HistoryRow]:
    store = await runtime.store()
    return [row async for row in store.history(device_id)]


async def state(runtime: Runtime, device_id: str) -> StateRow | None:
    return await (await runtime.store()).get_state(device_id)


def alerts(runtime: Runtime, stack: Any) -> list[dict[str, Any]]:
    messages = drain_subscription(
        stack.service_bus_connection, runtime.settings.device_alerts_topic, "audit"
    )
    found = []
    for message in messages:
        alert = body_json(message)
        ALERT_VALIDATOR.validate(alert)
        assert message.message_id == alert["id"]
        props = {
            k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
            for k, v in (message.application_properties or {}).items()
        }
        assert props["type"] == alert["type"]
        assert props["joinType"] == alert["data"]["device"]["joinType"]
        found.append(alert)
    return found


async def test_first_sighting_records_a_baseline_without_alerting(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    device = add_device(sim)
    pipeline = await runtime.pipeline()

    outcome = await pipeline.process(change(device["id"]))

    assert outcome.transition is Transition.FIRST_SEEN
    assert outcome.eligible is True
    row = await state(runtime, device["id"])
    assert row is not None
    assert row.record.version == 1
    assert row.record.display_name == "LAPTOP-0042"
    assert row.record.management == "intune"
    assert row.record.user_principal_name == "adele.vance@contoso.example"
    assert [h.transition for h in await history(runtime, device["id"])] == ["first_seen"]
    assert alerts(runtime, stack) == []


async def test_compliance_flip_raises_one_lost_then_one_restored_alert(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    device = add_device(sim)
    pipeline = await runtime.pipeline()
    await pipeline.process(change(device["id"]))

    sim.patch_device(device["id"], notify=False, isCompliant=False)
    lost = await pipeline.process(change(device["id"]))
    for _ in range(3):  # duplicates and replays of the same observation change nothing
        assert (await pipeline.process(change(device["id"]))).transition is Transition.UNCHANGED

    sim.patch_device(device["id"], notify=False, isCompliant=True)
    restored = await pipeline.process(change(device["id"]))

    assert lost.transition is Transition.LOST
    assert lost.reasons == ("NOT_COMPLIANT", "NOT_HYBRID_JOINED")
    assert restored.transition is Transition.RESTORED
    published = alerts(runtime, stack)
    assert [a["type"] for a in published] == [
        "devicemon.eligibility.lost",
        "devicemon.eligibility.restored",
    ]
    assert [a["id"] for a in published] == [lost.alert_id, restored.alert_id]
    rows = await history(runtime, device["id"])
    assert [(r.record.version, r.transition) for r in rows] == [
        (3, "restored"),
        (2, "lost"),
        (1, "first_seen"),
    ]
    assert rows[1].alert_id == lost.alert_id
    current = await state(runtime, device["id"])
    assert current is not None
    assert current.pending_alert == ""
    assert current.last_transition == "restored"


async def test_new_reasons_while_ineligible_are_history_not_alerts(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    device = add_device(sim, compliant=False)
    pipeline = await runtime.pipeline()
    await pipeline.process(change(device["id"]))

    sim.patch_device(device["id"], notify=False, accountEnabled=False)
    outcome = await pipeline.process(change(device["id"]))

    assert outcome.transition is Transition.CHANGED
    assert outcome.reasons == ("DEVICE_DISABLED", "NOT_COMPLIANT", "NOT_HYBRID_JOINED")
    assert alerts(runtime, stack) == []
    assert [r.transition for r in await history(runtime, device["id"])] == ["changed", "first_seen"]


@pytest.mark.parametrize(
    ("patch", "reasons"),
    [
        ({"trustType": "AzureAd"}, ["NOT_COMPLIANT", "NOT_HYBRID_JOINED"]),
        ({"accountEnabled": False}, ["DEVICE_DISABLED"]),
    ],
)
async def test_hybrid_device_losing_its_join_or_being_disabled(
    runtime: Runtime, sim: SimAdmin, stack, patch: dict[str, Any], reasons: list[str]
) -> None:
    device = add_device(sim, trust_type="ServerAd", compliant=False, intune=False)
    pipeline = await runtime.pipeline()
    assert (await pipeline.process(change(device["id"]))).eligible is True

    sim.patch_device(device["id"], notify=False, **patch)
    await pipeline.process(change(device["id"]))

    (alert,) = alerts(runtime, stack)
    assert alert["data"]["current"]["reasons"] == reasons
    assert (
        alert["data"]["device"]["management"] == "unknown"
        or alert["data"]["device"]["management"] == "unmanaged"
    )


async def test_deleted_device_alert_keeps_what_it_was(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    device = add_device(sim, name="KIOSK-7", trust_type="ServerAd")
    pipeline = await runtime.pipeline()
    await pipeline.process(change(device["id"]))

    sim.delete_device(device["id"], notify=False)
    outcome = await pipeline.process(change(device["id"], Source.SYNC))
    again = await pipeline.process(change(device["id"]))

    assert outcome.transition is Transition.LOST
    assert again.transition is Transition.UNCHANGED
    (alert,) = alerts(runtime, stack)
    assert alert["data"]["current"]["reasons"] == ["DEVICE_DELETED"]
    assert alert["data"]["device"]["displayName"] == "KIOSK-7"
    assert alert["data"]["device"]["joinType"] == "hybrid_joined"
    assert alert["data"]["detection"]["source"] == "sync"


async def test_unknown_deleted_device_writes_nothing(runtime: Runtime, sim: SimAdmin) -> None:
    ghost = str(uuid.uuid4())
    outcome = await (await runtime.pipeline()).process(change(ghost))
    assert outcome.transition is None
    assert await state(runtime, ghost) is None


# --- crash safety: fail each step once, then let the message be redelivered -------------------


class FlakyStore(DeviceStore):
    def __init__(self, inner: DeviceStore, fail: Callable[[str, Any], bool]) -> None:
        self.__dict__.update(inner.__dict__)
        self._fail = fail

    async def write_history(self, row: HistoryRow) -> None:
        if self._fail("before_history", row):
            raise Crash("before history")
        await super().write_history(row)
        if self._fail("after_history", row):
            raise Crash("after history")

    async def commit_state(self, row: StateRow) -> StateRow:
        committed = await super().commit_state(row)
        if self._fail("after_commit" if row.pending_alert else "after_clear", row):
            raise Crash("after state write")
        return committed


class FlakyPublisher(AlertPublisher):
    def __init__(self, inner: AlertPublisher, fail: Callable[[str, Any], bool]) -> None:
        self.__dict__.update(inner.__dict__)
        self._fail = fail

    async def publish(self, alert: dict[str, Any]) -> None:
        if self._fail("before_publish", alert):
            raise Crash("before publish")
        await super().publish(alert)


def once(step: str) -> Callable[[str, Any], bool]:
    fired: set[str] = set()

    def fail(where: str, _: Any) -> bool:
        if where == step and step not in fired:
            fired.add(step)
            return True
        return False

    return fail


CRASH_STEPS = ["before_history", "after_history", "after_commit", "before_publish", "after_clear"]


async def crashing_once(runtime: Runtime, step: str) -> Pipeline:
    """The runtime's pipeline, with its store and publisher failing once at `step`."""
    healthy = await runtime.pipeline()
    fail = once(step)
    return Pipeline(
        graph=runtime.graph(),
        store=FlakyStore(await runtime.store(), fail),
        publisher=FlakyPublisher(runtime.publisher(), fail),
        outbox=await runtime.pending_alerts(),
        options=healthy._options,
        event_source="urn:devicemon",
    )


@pytest.mark.parametrize("step", CRASH_STEPS)
async def test_a_crash_at_any_step_neither_loses_nor_duplicates_the_alert(
    runtime: Runtime, sim: SimAdmin, stack, step: str
) -> None:
    device = add_device(sim)
    healthy = await runtime.pipeline()
    await healthy.process(change(device["id"]))
    sim.patch_device(device["id"], notify=False, isCompliant=False)

    flaky = await crashing_once(runtime, step)
    message = change(device["id"])
    with pytest.raises(Crash):
        await flaky.process(message)
    await flaky.process(message)  # the redelivery
    await flaky.process(message)  # and a stray duplicate

    published = alerts(runtime, stack)
    assert [a["type"] for a in published] == ["devicemon.eligibility.lost"]
    rows = await history(runtime, device["id"])
    assert [(r.record.version, r.transition) for r in rows] == [(2, "lost"), (1, "first_seen")]
    assert rows[0].alert_id == published[0]["id"]
    current = await state(runtime, device["id"])
    assert current is not None
    assert current.pending_alert == ""
    assert current.record.version == 2


# --- Graph throttling and outages ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after"), [(429, 1), (429, None), (503, None), (500, None), (502, None)]
)
async def test_graph_throttling_and_errors_are_retried(
    runtime: Runtime, sim: SimAdmin, status: int, retry_after: int | None
) -> None:
    device = add_device(sim)
    sim.add_fault(
        status=status, count=2, retry_after=retry_after, route="/devices/{id}", method="GET"
    )
    sim.reset_requests()

    outcome = await (await runtime.pipeline()).process(change(device["id"]))

    assert outcome.transition is Transition.FIRST_SEEN
    counts = sim.requests()
    assert counts["routes"]["GET /devices/{id}"] == 3


async def test_retries_running_out_fails_the_message_without_writing(
    runtime: Runtime, sim: SimAdmin
) -> None:
    device = add_device(sim)
    sim.add_fault(status=429, count=10, retry_after=0, route="/devices/{id}", method="GET")

    with pytest.raises(RetriesExhausted):
        await (await runtime.pipeline()).process(change(device["id"]))
    assert await state(runtime, device["id"]) is None

    sim.clear_faults()
    assert (
        await (await runtime.pipeline()).process(change(device["id"]))
    ).transition is Transition.FIRST_SEEN


async def test_retry_after_longer_than_a_lock_is_worth_gives_up_at_once(
    runtime: Runtime, sim: SimAdmin
) -> None:
    device = add_device(sim)
    sim.add_fault(status=429, count=1, retry_after=3600, route="/devices/{id}", method="GET")
    with pytest.raises(RetriesExhausted, match="wait 3600s"):
        await (await runtime.pipeline()).process(change(device["id"]))


# --- device ids and immutable history (issue 17 item 1) -----------------------------------------


async def test_a_change_naming_a_known_device_in_upper_case_is_the_same_device(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    device = add_device(sim)
    pipeline = await runtime.pipeline()
    await pipeline.process(change(device["id"]))
    (baseline,) = await history(runtime, device["id"])

    sim.patch_device(device["id"], notify=False, isCompliant=False)
    outcome = await pipeline.process(change(device["id"].upper()))

    assert (outcome.device_id, outcome.transition, outcome.version) == (
        device["id"],
        Transition.LOST,
        2,
    )
    rows = await history(runtime, device["id"])
    assert [(r.record.version, r.transition) for r in rows] == [(2, "lost"), (1, "first_seen")]
    assert rows[1] == baseline
    assert [a["type"] for a in alerts(runtime, stack)] == ["devicemon.eligibility.lost"]


class StaleStore(DeviceStore):
    """Hands out one state read that another attempt has since committed past, as when a session
    lock is lost mid-attempt and a second worker takes the device."""

    def __init__(self, inner: DeviceStore, stale: StateRow) -> None:
        self.__dict__.update(inner.__dict__)
        self._stale: StateRow | None = stale

    async def get_state(self, object_id: str) -> StateRow | None:
        if self._stale is not None:
            stale, self._stale = self._stale, None
            return stale
        return await super().get_state(object_id)


async def test_a_stale_read_never_overwrites_the_committed_row_and_starts_over(
    runtime: Runtime, sim: SimAdmin, stack, caplog: pytest.LogCaptureFixture
) -> None:
    device = add_device(sim)
    healthy = await runtime.pipeline()
    await healthy.process(change(device["id"]))
    stale = await state(runtime, device["id"])
    assert stale is not None
    sim.patch_device(device["id"], notify=False, isCompliant=False)
    await healthy.process(change(device["id"]))
    committed = (await history(runtime, device["id"]))[0]
    assert (committed.record.version, committed.transition) == (2, "lost")

    sim.patch_device(device["id"], notify=False, accountEnabled=False)
    behind = copy.copy(healthy)  # the same pipeline, but the first state read is stale
    behind._store = StaleStore(await runtime.store(), stale)
    caplog.set_level(logging.INFO, logger="devicemon")
    outcome = await behind.process(change(device["id"]))

    # The stale attempt computed its own version 2; it met the committed one and started over.
    conflicts = [
        r for r in caplog.records if getattr(r, "devicemon.event", None) == "state_conflict"
    ]
    assert len(conflicts) == 1
    assert (outcome.transition, outcome.version) == (Transition.CHANGED, 3)
    rows = await history(runtime, device["id"])
    assert [(r.record.version, r.transition) for r in rows] == [
        (3, "changed"),
        (2, "lost"),
        (1, "first_seen"),
    ]
    assert rows[1] == committed
    assert [a["type"] for a in alerts(runtime, stack)] == ["devicemon.eligibility.lost"]


async def test_a_state_row_behind_its_own_history_fails_without_rewriting_it(
    runtime: Runtime, sim: SimAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    device = add_device(sim)
    pipeline = await runtime.pipeline()
    await pipeline.process(change(device["id"]))
    sim.patch_device(device["id"], notify=False, isCompliant=False)
    await pipeline.process(change(device["id"]))
    before = await history(runtime, device["id"])
    settings = runtime.settings
    assert settings.tables_connection_string
    # The DeviceState row is lost (say, deleted by hand); the timeline stays.
    async with TableClient.from_connection_string(
        settings.tables_connection_string, settings.state_table
    ) as table:
        await table.delete_entity(device["id"], STATE_ROW_KEY)
    caplog.set_level(logging.INFO, logger="devicemon")

    with pytest.raises(HistoryConflict):
        await pipeline.process(change(device["id"]))

    # No re-read can fix this, so no retry storm: the message fails (and is dead-lettered in time).
    events = [getattr(r, "devicemon.event", None) for r in caplog.records]
    assert "state_conflict" not in events
    assert await history(runtime, device["id"]) == before
    assert await state(runtime, device["id"]) is None
