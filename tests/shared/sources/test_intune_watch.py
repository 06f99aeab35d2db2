"""The Intune watch (issue 12 item 1): what it compares (pure, on the managedDevice payload of
microsoft-graph-docs-contrib intune-devices-manageddevice-get.md), how it packs its memory, and
runs against the simulator's Intune timeline, Azurite and the broker: a device entering grace and a
device whose check-ins stop are each queued once, as an observation the processor evaluates
without reading Graph again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers import processor
from handlers.intune_watch import run_intune_watch
from handlers.tenant_settings import refresh_tenant_settings
from local.devhost.sbmessage import to_functions_message
from local.graphsim.admin import SimAdmin, SimClock
from local.graphsim.tenant_settings import set_tenant_settings
from shared.adapters.graph import DEVICE_SELECT
from shared.adapters.intune_digests import (
    CHUNK,
    ENTRY,
    TRANSACTION_ROWS,
    Bucket,
    DigestBook,
    Digests,
    Held,
    _batches,
    _entity,
    _entries,
    device_key,
    table_name,
)
from shared.adapters.store import make_service
from shared.core.changes import DeviceChange
from shared.core.models import Source
from shared.core.observations import Facts, plan
from shared.core.snapshots import parse_time
from shared.core.tenant_settings import TenantSettings, checkin_deadline, checkin_overdue
from shared.runtime import Runtime
from shared.settings import Settings
from shared.sources.intune_watch import (
    FRESH,
    LAPSED,
    OVERDUE,
    Bands,
    checkin_band,
    digest,
    watch_change,
    watched_facts,
)
from shared.sources.sync import DeltaSync
from tests.alert_helpers import ALERT_VALIDATOR
from tests.devhost_helpers import run_timer_in_dev_host
from tests.graph_helpers import add_device
from tests.servicebus_helpers import body_json, drain_sessions, drain_subscription

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OBJECT_ID = "6a59ea83-02bd-468f-a40b-f2c3d1821983"
DEVICE_ID = "ec4f3fd2-0d4c-4e2f-9b1b-6e9d3b4a7f10"
# The managedDevice of the docs' Get example, the properties devicemon selects.
RECORD: dict[str, Any] = {
    "id": "705c034c-034c-705c-4c03-5c704c035c70",
    "azureADDeviceId": DEVICE_ID,
    "complianceState": "compliant",
    "managementAgent": "mdm",
    "complianceGracePeriodExpirationDateTime": "9999-12-31T23:59:59Z",
    "lastSyncDateTime": "2026-12-01T04:00:00Z",
    "userPrincipalName": "User Principal Name value",
    "configurationManagerClientEnabledFeatures": None,
}


# --- the check-in band ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold_days", "age", "band"),
    [
        # 10-day period: warned from 5 days before the deadline (half the period).
        (10, timedelta(days=4, hours=23), FRESH),
        (10, timedelta(days=5), OVERDUE),
        (10, timedelta(days=9, hours=23), OVERDUE),
        (10, timedelta(days=10), LAPSED),
        # 30 days (Intune's default): warned for the last 7 days.
        (30, timedelta(days=22, hours=23), FRESH),
        (30, timedelta(days=23), OVERDUE),
        (30, timedelta(days=30), LAPSED),
        # 1 day: half a day; an ordinary 8-hour gap stays fresh.
        (1, timedelta(hours=8), FRESH),
        (1, timedelta(hours=12), OVERDUE),
        (1, timedelta(days=1), LAPSED),
        (120, timedelta(days=112, hours=23), FRESH),
        (120, timedelta(days=113), OVERDUE),
        (120, timedelta(days=121), LAPSED),
    ],
)
def test_the_check_in_band_follows_the_tenants_validity_period(
    threshold_days: int, age: timedelta, band: int
) -> None:
    tenant = TenantSettings(checkin_threshold_days=threshold_days)
    assert checkin_band(NOW - age, NOW, tenant, 7) == band


@pytest.mark.parametrize("threshold_days", [1, 2, 10, 14, 30, 120])
@pytest.mark.parametrize("warning_days", [1, 7, 30])
def test_the_bands_agree_with_the_evaluations_own_check_in_rules(
    threshold_days: int, warning_days: int
) -> None:
    tenant = TenantSettings(checkin_threshold_days=threshold_days)
    bands = Bands.at(NOW, tenant, warning_days)
    for minutes in range(0, (threshold_days + 2) * 1440, 30):
        last = NOW - timedelta(minutes=minutes)
        deadline = checkin_deadline(last, tenant)
        assert deadline is not None
        expected = (
            LAPSED
            if deadline <= NOW
            else OVERDUE
            if checkin_overdue(last, NOW, tenant, warning_days)
            else FRESH
        )
        assert bands.of(last) == expected, minutes


def test_a_device_without_a_check_in_has_no_band() -> None:
    assert checkin_band(None, NOW, TenantSettings(), 7) == FRESH


# --- what moves the digest -------------------------------------------------------------------


def _digest(record: dict[str, Any], now: datetime = NOW, days: int = 30) -> bytes:
    bands = Bands.at(now, TenantSettings(checkin_threshold_days=days), 7)
    return digest(watched_facts(record, bands))


@pytest.mark.parametrize(
    "change",
    [
        {"complianceState": "inGracePeriod"},
        {"complianceState": "noncompliant"},
        {"complianceState": "error"},
        {"complianceGracePeriodExpirationDateTime": "2026-12-04T12:00:00Z"},
        {"managementAgent": "configurationManagerClientMdm"},
        {"configurationManagerClientEnabledFeatures": {"compliancePolicy": False}},
        {"id": "0f4a1c2e-9d8b-4c7a-8e6f-5d4c3b2a1908"},  # re-enrolled
        {"lastSyncDateTime": "2026-11-08T11:00:00Z"},  # 23 days: past the warning point
        {"lastSyncDateTime": "2026-10-31T11:00:00Z"},  # past the validity period
    ],
)
def test_each_watched_fact_moves_the_digest(change: dict[str, Any]) -> None:
    assert _digest({**RECORD, **change}) != _digest(RECORD)


@pytest.mark.parametrize(
    "change",
    [
        {"lastSyncDateTime": "2026-12-01T11:55:00Z"},  # the next ordinary check-in
        {"lastSyncDateTime": "2026-11-20T12:00:00Z"},  # older, still before the warning point
        {"userPrincipalName": "someone.else@contoso.example"},
        {"complianceState": "Compliant"},  # case is not a change
    ],
)
def test_what_is_not_watched_leaves_the_digest(change: dict[str, Any]) -> None:
    assert _digest({**RECORD, **change}) == _digest(RECORD)


def test_a_grace_expiry_written_with_another_offset_is_the_same_instant() -> None:
    grace = {**RECORD, "complianceState": "inGracePeriod"}
    utc = {**grace, "complianceGracePeriodExpirationDateTime": "2026-12-04T12:00:00Z"}
    pacific = {**grace, "complianceGracePeriodExpirationDateTime": "2026-12-04T04:00:00-08:00"}
    assert _digest(utc) == _digest(pacific)


def test_the_tenant_lowering_its_threshold_moves_the_digest() -> None:
    aged = {**RECORD, "lastSyncDateTime": "2026-11-25T12:00:00Z"}  # 6 days
    assert _digest(aged, days=30) != _digest(aged, days=10)


# --- the change it queues --------------------------------------------------------------------


def test_the_change_is_an_observation_merged_onto_the_stored_snapshot() -> None:
    read_at = NOW - timedelta(seconds=20)
    grace = {**RECORD, "complianceState": "inGracePeriod"}
    change = watch_change(OBJECT_ID.upper(), DEVICE_ID, grace, b"a" * 8, b"b" * 8, read_at, NOW)
    again = DeviceChange.from_json(change.to_json())
    assert (again.device_id, again.source, again.message_id) == (
        OBJECT_ID,
        Source.INTUNE_WATCH,
        change.message_id,
    )
    assert again.facts is not None and again.facts.fits_a_message()
    # Same move, same id (duplicate detection drops a re-queue); another move, another id.
    assert watch_change(OBJECT_ID, DEVICE_ID, grace, b"a" * 8, b"b" * 8, NOW, NOW).message_id == (
        change.message_id
    )
    assert watch_change(OBJECT_ID, DEVICE_ID, grace, b"b" * 8, b"a" * 8, NOW, NOW).message_id != (
        change.message_id
    )

    stored_device = {name: None for name in DEVICE_SELECT} | {
        "id": OBJECT_ID,
        "deviceId": DEVICE_ID,
        "isCompliant": True,
        "displayName": "LAPTOP-0042",
    }
    stored = Facts(NOW - timedelta(hours=1), stored_device, (RECORD,), NOW - timedelta(hours=1))
    decided = plan(again.facts, stored, stored_deleted=False, required=DEVICE_SELECT)
    assert decided.facts is not None and not decided.stale
    assert decided.facts.device == stored_device  # the Entra device as stored
    assert decided.facts.managed == (grace,)  # the Intune record just read
    # Nothing stored to merge onto: the processor reads the device.
    assert plan(again.facts, None, stored_deleted=False, required=DEVICE_SELECT).facts is None


# --- the packed memory -------------------------------------------------------------------------


def _key(i: int, bucket: int = 0xAB) -> bytes:
    return bytes([bucket]) + i.to_bytes(15, "big")


def test_a_bucket_packs_and_unpacks_across_properties() -> None:
    bucket = Bucket(etag=None)
    digests = Digests({"ab": bucket})
    count = CHUNK // ENTRY * 2 + 7  # three properties
    for i in range(count):
        digests.put(_key(i), Held(i.to_bytes(8, "big"), b"idid", OBJECT_ID if i % 2 else None))
    entity = _entity("ab", bucket)
    assert [k for k in entity if k.startswith("E")] == ["E00", "E01", "E02"]
    assert all(len(entity[k]) <= CHUNK for k in ("E00", "E01", "E02"))
    back = Digests({"ab": Bucket("etag", _entries(entity))})
    assert len(back) == count
    assert back.get(_key(3)) == Held((3).to_bytes(8, "big"), b"idid", OBJECT_ID)
    assert back.get(_key(4)) == Held((4).to_bytes(8, "big"), b"idid", None)
    assert back.get(_key(count)) is None


def test_only_what_changed_is_dirty() -> None:
    key = device_key(DEVICE_ID)
    assert key is not None and f"{key[0]:02x}" == DEVICE_ID[:2]
    digests = Digests({DEVICE_ID[:2]: Bucket("etag")})
    digests.put(key, Held(b"12345678", b"abcd", None))
    bucket = digests.buckets[DEVICE_ID[:2]]
    assert bucket.dirty
    bucket.dirty = False
    digests.put(key, Held(b"12345678", b"abcd", None))
    assert not bucket.dirty
    digests.drop(key)
    assert bucket.dirty and digests.get(key) is None
    assert device_key("not-a-guid") is None


def test_writes_go_in_transactions_of_at_most_100_rows() -> None:
    rows = [
        (f"{i:02x}", Bucket("e", {_key(j, i): bytes(28) for j in range(3)})) for i in range(256)
    ]
    sizes = [len(batch) for batch in _batches(rows)]
    assert sizes == [TRANSACTION_ROWS, TRANSACTION_ROWS, 56]


# --- against the simulator, Azurite and the broker ---------------------------------------------


@pytest.fixture
async def watched(settings: Settings, sim: SimAdmin) -> AsyncIterator[tuple[Runtime, SimClock]]:
    clock = SimClock(sim)
    rt = Runtime(replace(settings, intune_checkin_warn_days=7), clock=clock)
    yield rt, clock
    await rt.close()


def _drain(rt: Runtime, stack: Any) -> list[Any]:
    # Everything was sent before: a short wait and two receivers find it all.
    return drain_sessions(stack.service_bus_connection, rt.settings.device_changes_queue, 0.3, 2)


def _queued(rt: Runtime, stack: Any) -> list[DeviceChange]:
    return [DeviceChange.from_json(json.dumps(body_json(m))) for m in _drain(rt, stack)]


class _Processed:
    """The delta sync's sink for setting up: each change straight into the real pipeline (the
    queue in between is not what these tests are about, and draining it costs seconds)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def send(self, changes: Iterable[DeviceChange]) -> int:
        pipeline = await self.rt.pipeline()
        done = 0
        for change in changes:
            await pipeline.process(change)
            done += 1
        return done


async def _baseline(rt: Runtime) -> None:
    """The delta sync's baseline, processed: every device stored with its full snapshot."""
    sync = DeltaSync(graph=rt.graph_json(), books=await rt.bookkeeping(), sink=_Processed(rt))
    assert (await sync.run("test")).outcome == "completed"


async def test_a_grace_period_is_queued_once_and_evaluated_without_a_graph_read(
    watched: tuple[Runtime, SimClock], sim: SimAdmin, stack: Any
) -> None:
    rt, _ = watched
    devices = [add_device(sim, name=f"WATCH-{i}") for i in range(3)]
    add_device(sim, name="NO-INTUNE", intune=False, trust_type="ServerAd", compliant=None)
    await _baseline(rt)

    first = await run_intune_watch(rt)
    assert (first.outcome, first.devices, first.queued) == ("baseline", 3, 0)
    quiet = await run_intune_watch(rt)
    assert (quiet.outcome, quiet.changed, quiet.queued, quiet.graph_requests) == (
        "completed",
        0,
        0,
        1,
    )
    # tenant settings row + one query of the digests + the run row: nothing written
    assert (quiet.table_requests, quiet.rows_written) == (3, 0)

    grace = sim.enter_grace(devices[1]["managedId"], hours=72)
    assert grace["complianceState"] == "inGracePeriod"
    sim.reset_requests()
    seen = await run_intune_watch(rt)
    routes = sim.requests()["routes"]
    assert (seen.changed, seen.queued, seen.graph_requests) == (1, 1, 2)
    assert routes["GET /deviceManagement/managedDevices"] == 1 and routes["POST /$batch"] == 1
    (change,) = _queued(rt, stack)
    assert (change.device_id, change.source) == (devices[1]["id"], Source.INTUNE_WATCH)
    assert change.facts is not None and change.facts.managed is not None
    assert change.facts.managed[0]["complianceState"] == "inGracePeriod"

    sim.reset_requests()
    outcome = await (await rt.pipeline()).process(change)
    assert "GET /devices/{id}" not in sim.requests()["routes"]  # the observation was enough
    state = await (await rt.store()).get_state(devices[1]["id"])
    assert state is not None and state.record.compliance == "in_grace_period"
    assert state.record.grace_period_expires is not None
    assert outcome.device_id == devices[1]["id"]

    sim.reset_requests()
    after = await run_intune_watch(rt)
    assert (after.changed, after.queued, after.graph_requests) == (0, 0, 1)
    assert "POST /$batch" not in sim.requests()["routes"]


async def test_a_stopped_device_is_queued_at_the_warning_point_and_at_the_deadline(
    watched: tuple[Runtime, SimClock], sim: SimAdmin, stack: Any
) -> None:
    rt, clock = watched
    set_tenant_settings(sim, checkin_threshold_days=10)
    await refresh_tenant_settings(rt)
    device = add_device(sim, name="OFFLINE-1")
    other = add_device(sim, name="ONLINE-1")
    await _baseline(rt)
    await run_intune_watch(rt)
    stopped = sim.stop_checkins(device["managedId"])
    deadline = datetime.fromisoformat(stopped["deadlines"]["validity"].replace("Z", "+00:00"))

    clock.advance(days=4, hours=23)  # before the warning point (10 - 5 days)
    assert (await run_intune_watch(rt)).queued == 0
    clock.advance(hours=2)
    warned = await run_intune_watch(rt)
    assert warned.queued == 1
    assert [c.device_id for c in _queued(rt, stack)] == [device["id"]]
    clock.advance(days=2)  # still within the warning band: nothing new
    assert (await run_intune_watch(rt)).queued == 0

    clock.advance(seconds=(deadline - clock()).total_seconds() + 60)
    lapsed = await run_intune_watch(rt)
    (change,) = _queued(rt, stack)  # the band and Intune's own noncompliant: one change
    assert lapsed.queued == 1 and change.device_id == device["id"]
    assert change.facts is not None and change.facts.managed is not None
    assert change.facts.managed[0]["complianceState"] == "noncompliant"
    assert other["id"] != change.device_id


async def test_intune_switched_off_reads_nothing(
    settings: Settings, sim: SimAdmin, stack: Any
) -> None:
    rt = Runtime(replace(settings, intune_enabled=False))
    try:
        sim.reset_requests()
        assert (await run_intune_watch(rt)).outcome == "off"
        assert sim.requests()["httpRequests"] == 0
    finally:
        await rt.close()


async def test_the_timer_declared_in_function_app_runs_in_the_dev_host(
    runtime: Runtime, settings: Settings, sim: SimAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTUNE_WATCH_SCHEDULE", "20 */15 * * * *")
    for i in range(2):
        add_device(sim, name=f"TIMER-{i}")
    service = make_service(settings)
    book = DigestBook(service, table_name(settings.table_prefix))
    try:
        # the run row; None while the table or the row is not there
        last = await run_timer_in_dev_host(runtime, "watch_intune", book.last_run)
    finally:
        await book.close()
        await service.close()
    assert (last["Outcome"], last["Devices"], last["Queued"]) == ("baseline", 2, 0)


async def test_grace_seen_by_the_watch_alone_raises_at_risk_through_the_processor(
    watched: tuple[Runtime, SimClock], sim: SimAdmin, stack: Any
) -> None:
    """Entering grace changes nothing in Entra: only the watch can see it. Its change, taken off
    the queue by the processor's handler, raises the at_risk event (schema-valid) at once when
    the grace period ends within the lead time (AT_RISK_LEAD_HOURS, 72 by default)."""
    rt, clock = watched
    device = add_device(sim, name="GRACE-WATCHED")
    await _baseline(rt)
    await run_intune_watch(rt)
    expires = (clock() + timedelta(hours=48)).replace(microsecond=0)
    sim.enter_grace(device["managedId"], expires=expires.isoformat())
    _alerts(rt, stack)  # the baseline's first sightings raise none; start clean anyway

    assert (await run_intune_watch(rt)).queued == 1
    for message in _drain(rt, stack):
        await processor.handle(to_functions_message(message), rt)

    [alert] = _alerts(rt, stack)
    ALERT_VALIDATOR.validate(alert)
    assert alert["type"] == "devicemon.eligibility.at_risk"
    assert alert["data"]["device"]["objectId"] == device["id"]
    assert alert["data"]["detection"]["source"] == "intune_watch"
    assert alert["data"]["risk"]["reasons"] == ["GRACE_PERIOD_ENDING"]
    assert parse_time(alert["data"]["risk"]["deadline"]) == expires


def _alerts(rt: Runtime, stack: Any) -> list[dict[str, Any]]:
    return [
        body_json(m)
        for m in drain_subscription(
            stack.service_bus_connection, rt.settings.device_alerts_topic, "audit", 0.3
        )
    ]
