"""Issue 12 item 5: deadlines kept on a clock the test controls, through the real path.

The Graph simulator plays Intune's timeline on its tenant clock (local/graphsim/intune_timeline.py:
grace expiry, check-ins every ~8 h, the validity period, seven days in Error, each end written to
Entra's isCompliant); devicemon's runtime judges by the same clock. Changes travel on the local
broker: a notification's bare hint for the first sighting, the Intune watch timer
(handlers/intune_watch.py) for Intune's moves that Entra does not show, the deadline timer
(handlers/deadlines.py) when a warning time or deadline comes; the processor handler
(handlers/processor.py) takes them off the queue; state and the deadline index are in Azurite;
alerts are read from the topic and validated against docs/alert.schema.json.

The timer runs every minute in production; here the clock jumps to just before and just after each
instant that matters and the timer runs at each, so "warned at the lead time" and "lost within one
scheduler run of the deadline" are checked on the clock, not by sleeping.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from azure.functions.timer import TimerRequest
from azure.servicebus.aio import ServiceBusClient, ServiceBusReceiver

from handlers import processor
from handlers.deadlines import deadline_timer
from handlers.intune_watch import run_intune_watch
from handlers.tenant_settings import refresh_tenant_settings
from local.devhost.sbmessage import to_functions_message
from local.graphsim.admin import SimAdmin
from local.graphsim.tenant_settings import set_tenant_settings
from local.stack import Stack
from shared.adapters.deadlines import first_minute
from shared.core.changes import DeviceChange
from shared.core.models import Source
from shared.core.snapshots import parse_time
from shared.runtime import Runtime
from shared.settings import Settings
from tests.graph_helpers import add_device

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "docs/alert.schema.json").read_text())
LOST = "devicemon.eligibility.lost"
AT_RISK = "devicemon.eligibility.at_risk"
CLEARED = "devicemon.eligibility.at_risk_cleared"
LEAD = timedelta(hours=72)  # AT_RISK_LEAD_HOURS' default
MINUTE = timedelta(minutes=1)
# How long a receive waits for more: the local broker hands over what it holds at once.
WAIT = 0.2


class TenantClock:
    """The simulator's tenant clock, as devicemon's runtime reads it."""

    def __init__(self, sim: SimAdmin) -> None:
        self._sim = sim
        self._offset = timedelta(seconds=sim.clock()["offsetSeconds"])

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def jump_to(self, moment: datetime) -> None:
        ahead = (moment - self()).total_seconds()
        if ahead > 0:
            moved = self._sim.advance_clock(seconds=ahead)
            self._offset = timedelta(seconds=moved["offsetSeconds"])


class Deadlines:
    """One tenant's devicemon on the simulator's clock, driven step by step: the processor
    handler takes the device's changes off its session of the queue, alerts are read from the
    topic's audit subscription, through long-lived receivers (opening one costs ~0.5 s)."""

    def __init__(
        self,
        rt: Runtime,
        sim: SimAdmin,
        clock: TenantClock,
        client: ServiceBusClient,
        topic: ServiceBusReceiver,
    ) -> None:
        self.rt, self.sim, self.clock = rt, sim, clock
        self._client, self._topic = client, topic
        self._sessions: dict[str, ServiceBusReceiver] = {}
        self.alerts: list[dict[str, Any]] = []

    async def process_queue(self, object_id: str, count: int) -> None:
        """Process the `count` changes queued for the device, as the host's session trigger
        would, on a session receiver kept open for the test (its lock renewed each time)."""
        receiver = self._sessions.get(object_id)
        if receiver is None:
            receiver = self._client.get_queue_receiver(
                self.rt.settings.device_changes_queue, session_id=object_id
            )
            self._sessions[object_id] = await receiver.__aenter__()
        else:
            await receiver.session.renew_lock()
        handled = 0
        while handled < count:
            for message in await receiver.receive_messages(count - handled, max_wait_time=5):
                await processor.handle(to_functions_message(message), self.rt)
                await receiver.complete_message(message)
                handled += 1

    async def close(self) -> None:
        for receiver in self._sessions.values():
            await receiver.close()

    async def look(self, object_id: str) -> None:
        """Something told devicemon the device changed (a notification: a bare hint)."""
        message_id = uuid.uuid4().hex
        change = DeviceChange(
            object_id,
            "updated",
            Source.NOTIFICATION,
            message_id,
            message_id,
            self.clock().isoformat(),
        )
        await self.rt.change_queue().send([change])
        await self.process_queue(object_id, 1)

    async def intune_watch(self, object_id: str) -> int:
        """One run of the Intune watch timer (its first run records a baseline and queues
        nothing), the device's changes processed: how many it queued."""
        result = await run_intune_watch(self.rt)
        await self.process_queue(object_id, result.queued)
        return result.queued

    async def run_at(self, moment: datetime, object_id: str) -> list[dict[str, Any]]:
        """The clock at `moment`, one run of the deadline timer, the device's changes
        processed: the alerts raised."""
        self.clock.jump_to(moment)
        run = await deadline_timer(TimerRequest(past_due=False), self.rt)
        await self.process_queue(object_id, run.queued)
        return await self.new_alerts()

    async def new_alerts(self) -> list[dict[str, Any]]:
        """Alerts published since the last call: the pipeline publishes before the processor
        returns, so what was raised is on the topic already."""
        found = []
        while batch := await self._topic.receive_messages(50, max_wait_time=WAIT):
            for message in batch:
                found.append(json.loads(b"".join(message.body)))
                await self._topic.complete_message(message)
        for alert in found:
            jsonschema.validate(alert, SCHEMA)
        self.alerts += found
        return found

    async def next_check(self, object_id: str) -> datetime | None:
        state = await (await self.rt.store()).get_state(object_id)
        assert state is not None
        return state.record.next_check

    def now(self) -> datetime:
        return self.clock()


def types(alerts: list[dict[str, Any]]) -> list[str]:
    return [a["type"] for a in alerts]


def instant(value: str) -> datetime:
    parsed = parse_time(value)
    assert parsed is not None
    return parsed


@pytest.fixture
async def deadlines(settings: Settings, sim: SimAdmin, stack: Stack) -> AsyncIterator[Deadlines]:
    clock = TenantClock(sim)
    rt = Runtime(settings, clock=clock)
    async with (
        ServiceBusClient.from_connection_string(stack.service_bus_connection) as client,
        client.get_subscription_receiver(settings.device_alerts_topic, "audit") as topic,
    ):
        d = Deadlines(rt, sim, clock, client, topic)
        yield d
        await d.close()
    await rt.close()


async def warned_then_lost(
    d: Deadlines, object_id: str, deadline: datetime, reason: str, warn_at: datetime
) -> None:
    """The timer (every minute at second 0) raises at_risk in its first run at or after
    `warn_at` and lost in its first run at or after `deadline`, less than a minute after each,
    neither earlier, and no other alert is raised for the device."""
    assert await d.next_check(object_id) == warn_at
    warn_run = first_minute(warn_at)
    assert await d.run_at(warn_run - MINUTE, object_id) == []  # the run before: too early
    [warned] = await d.run_at(warn_run, object_id)
    assert warned["type"] == AT_RISK
    assert warned["data"]["risk"]["reasons"] == [reason]
    assert instant(warned["data"]["risk"]["deadline"]) == deadline
    assert warned["data"]["current"]["eligible"] is True
    assert await d.next_check(object_id) == deadline

    lost_run = first_minute(deadline)
    assert timedelta(0) <= lost_run - deadline < MINUTE
    assert await d.run_at(lost_run - MINUTE, object_id) == []
    [lost] = await d.run_at(lost_run, object_id)
    assert lost["type"] == LOST
    assert lost["data"]["detection"]["source"] == "deadline"
    assert instant(lost["data"]["detection"]["detectedAt"]) >= deadline
    assert types(d.alerts) == [AT_RISK, LOST]


async def test_a_device_entering_grace_is_warned_at_the_lead_time_and_lost_at_its_deadline(
    deadlines: Deadlines, sim: SimAdmin
) -> None:
    d = deadlines
    device = add_device(sim, name="GRACE-LAPTOP")
    await d.look(device["id"])  # first seen, compliant: no alert
    assert await d.intune_watch(device["id"]) == 0  # the watch's baseline
    expires = (d.now() + timedelta(days=5)).replace(microsecond=0)
    sim.enter_grace(device["managedId"], expires=expires.isoformat())
    assert await d.intune_watch(device["id"]) == 1  # Entra unchanged; Intune's record moved
    assert await d.new_alerts() == []

    await warned_then_lost(d, device["id"], expires, "GRACE_PERIOD_ENDING", expires - LEAD)


async def test_a_device_fixed_during_grace_is_cleared_and_never_lost(
    deadlines: Deadlines, sim: SimAdmin
) -> None:
    d = deadlines
    device = add_device(sim, name="FIXED-LAPTOP")
    await d.look(device["id"])
    assert await d.intune_watch(device["id"]) == 0
    expires = (d.now() + timedelta(days=4)).replace(microsecond=0)
    sim.enter_grace(device["managedId"], expires=expires.isoformat())
    assert await d.intune_watch(device["id"]) == 1
    [warned] = await d.run_at(first_minute(expires - LEAD), device["id"])
    assert warned["type"] == AT_RISK

    sim.comply(device["managedId"])  # the user fixed the setting
    assert await d.intune_watch(device["id"]) == 1
    [cleared] = await d.new_alerts()
    assert cleared["type"] == CLEARED
    assert cleared["data"]["risk"]["reasons"] == ["GRACE_PERIOD_ENDING"]
    assert await d.run_at(first_minute(expires), device["id"]) == []
    assert await d.run_at(expires + timedelta(hours=3), device["id"]) == []  # past every follow-up
    state = await (await d.rt.store()).get_state(device["id"])
    assert state is not None and state.record.eligible and not state.record.risk_reasons
    assert types(d.alerts) == [AT_RISK, CLEARED]


async def test_a_device_that_stops_checking_in_under_a_10_day_threshold(
    deadlines: Deadlines, sim: SimAdmin
) -> None:
    d = deadlines
    set_tenant_settings(sim, checkin_threshold_days=10)
    await refresh_tenant_settings(d.rt)  # the daily tenant settings timer
    device = add_device(sim, name="SILENT-LAPTOP")
    stopped = sim.stop_checkins(device["managedId"])
    await d.look(device["id"])
    last_sync = instant(stopped["lastSyncDateTime"])
    deadline = last_sync + timedelta(days=10)
    # Warned min(72 h, half the period) before the end of the validity period.
    await warned_then_lost(d, device["id"], deadline, "CHECKIN_OVERDUE", deadline - LEAD)


async def test_an_error_state_reaching_seven_days(deadlines: Deadlines, sim: SimAdmin) -> None:
    d = deadlines
    device = add_device(sim, name="ERROR-LAPTOP")
    await d.look(device["id"])
    assert await d.intune_watch(device["id"]) == 0
    since = d.now().replace(microsecond=0)
    sim.set_compliance_error(device["managedId"], since=since.isoformat())
    assert await d.intune_watch(device["id"]) == 1  # counted from when devicemon saw it
    state = await (await d.rt.store()).get_state(device["id"])
    assert state is not None and state.record.compliance_error_since is not None
    seen = state.record.compliance_error_since
    assert since <= seen
    deadline = seen + timedelta(days=7)
    await warned_then_lost(d, device["id"], deadline, "COMPLIANCE_ERROR_PENDING", deadline - LEAD)


async def test_a_tenant_shortening_its_threshold_brings_the_deadline_forward(
    deadlines: Deadlines, sim: SimAdmin
) -> None:
    d = deadlines
    set_tenant_settings(sim, checkin_threshold_days=30)
    await refresh_tenant_settings(d.rt)
    device = add_device(sim, name="SHORTENED-LAPTOP")
    stopped = sim.stop_checkins(device["managedId"])
    await d.look(device["id"])
    assert await d.intune_watch(device["id"]) == 0
    last_sync = instant(stopped["lastSyncDateTime"])
    assert await d.next_check(device["id"]) == last_sync + timedelta(days=30) - LEAD

    # Six days on, the tenant shortens its validity period to 10 days: what was 24 days away
    # is now four days away, and the warning one day away.
    d.clock.jump_to(last_sync + timedelta(days=6))
    set_tenant_settings(sim, checkin_threshold_days=10)
    await refresh_tenant_settings(d.rt)
    # The watch's next run: the device's last check-in is now past the new warning point.
    assert await d.intune_watch(device["id"]) == 1
    deadline = last_sync + timedelta(days=10)
    await warned_then_lost(d, device["id"], deadline, "CHECKIN_OVERDUE", deadline - LEAD)
