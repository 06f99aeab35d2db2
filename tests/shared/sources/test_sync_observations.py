"""The delta sync hands the processor observations, not hints: a baseline costs a request per page
(delta and one Intune list), an incremental round's partial items are merged, a device on two
pages of a round is two messages, and an expired token nested in `innererror` restarts the sync.
Pure tests on Graph's documented payloads, and runs against the simulator, Azurite and the broker.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kiota_abstractions.api_error import APIError
from kiota_serialization_json.json_parse_node import JsonParseNode
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from local.graphsim.admin import SimAdmin
from shared.core.changes import DeviceChange
from shared.core.models import Transition
from shared.core.observations import MAX_OBSERVATION_CHARS, Facts
from shared.runtime import Runtime
from shared.sources.intune import IntuneIndex
from shared.sources.sync import DeltaSync, page_changes, token_expired
from tests.graph_helpers import add_device
from tests.servicebus_helpers import body_json, drain_sessions, drain_subscription

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DEVICE = "3f2c0b8e-1d7a-4c1e-9a51-0a7e6b2f9c11"


# --- one device on two pages of one round (issue 13 item 9) ---------------------------------


def test_one_device_on_two_pages_of_a_round_is_two_messages() -> None:
    # delta-query-overview.md: "the same item can show up anywhere in the @odata.nextLink
    # sequence". One message id for both would let duplicate detection drop the later one.
    first = page_changes({"value": [{"id": DEVICE, "isCompliant": False}]}, "run", 0, AT)
    second = page_changes(
        {"value": [{"id": DEVICE, "isCompliant": True}]}, "run", 1, AT + timedelta(seconds=1)
    )
    assert first[0].message_id != second[0].message_id
    assert first[0].device_id == second[0].device_id == DEVICE
    assert first[0].facts is not None and second[0].facts is not None
    assert first[0].facts.observed_at < second[0].facts.observed_at
    # A repeated page (a crash resumed by another run) is a new run id: new ids, same facts.
    again = page_changes({"value": [{"id": DEVICE, "isCompliant": False}]}, "run-2", 0, AT)
    assert again[0].message_id != first[0].message_id


def test_items_of_one_device_in_a_page_are_merged_later_properties_winning() -> None:
    page = {
        "value": [
            {"id": DEVICE, "isCompliant": False, "displayName": "OLD"},
            {"id": "ffffffff-1d7a-4c1e-9a51-0a7e6b2f9c11", "displayName": "OTHER"},
            {"id": DEVICE, "displayName": "NEW", "@odata.type": "#microsoft.graph.device"},
        ]
    }
    changes = {c.device_id: c for c in page_changes(page, "run", 0, AT)}
    facts = changes[DEVICE].facts
    assert facts is not None
    assert facts.device == {"id": DEVICE, "isCompliant": False, "displayName": "NEW"}
    assert len(changes) == 2


def test_a_baseline_page_carries_the_intune_record_found_by_device_id() -> None:
    device_id = "6fa60d52-01e7-4b18-8055-4759461fc16b"
    index = IntuneIndex(AT - timedelta(seconds=30))
    # Re-enrolled: two records; the one that checked in last counts (issue 13 item 12).
    index.add(
        {"id": "old", "azureADDeviceId": device_id, "lastSyncDateTime": "2026-11-30T03:00:00Z"}
    )
    index.add(
        {
            "id": "new",
            "azureADDeviceId": device_id.upper(),
            "lastSyncDateTime": "2026-11-29T20:00:00-08:00",
        }
    )
    index.add({"id": "orphan", "azureADDeviceId": None})
    page = {
        "value": [
            {"id": DEVICE, "deviceId": device_id},
            {"id": "aaaaaaaa-1d7a-4c1e-9a51-0a7e6b2f9c11", "deviceId": "no-such"},
            {"id": "bbbbbbbb-1d7a-4c1e-9a51-0a7e6b2f9c11", "@removed": {"reason": "deleted"}},
            # Changed while the baseline was paged: only what changed, no device id to join on.
            {"id": "cccccccc-1d7a-4c1e-9a51-0a7e6b2f9c11", "displayName": "RENAMED"},
            # Registered after the list was read: its Intune record may be newer than the list.
            {
                "id": "dddddddd-1d7a-4c1e-9a51-0a7e6b2f9c11",
                "deviceId": "d0d0d0d0-0000-0000-0000-000000000000",
                "registrationDateTime": "2026-11-30T12:00:00Z",
            },
        ]
    }

    changes = {c.device_id: c.facts for c in page_changes(page, "run", 0, AT, index)}

    with_record = changes[DEVICE]
    assert with_record is not None and with_record.managed is not None
    assert [m["id"] for m in with_record.managed] == ["new"]
    assert with_record.managed_at == index.read_at
    without = changes["aaaaaaaa-1d7a-4c1e-9a51-0a7e6b2f9c11"]
    assert without is not None and without.managed == ()  # looked, none: no read needed
    removed = changes["bbbbbbbb-1d7a-4c1e-9a51-0a7e6b2f9c11"]
    assert removed is not None and removed.managed is None
    partial = changes["cccccccc-1d7a-4c1e-9a51-0a7e6b2f9c11"]
    assert partial is not None and partial.managed is None  # not "no record": not looked at
    newer = changes["dddddddd-1d7a-4c1e-9a51-0a7e6b2f9c11"]
    assert newer is not None and newer.managed is None
    assert (len(index), index.records) == (1, 2)


def test_an_item_too_large_for_a_message_goes_as_a_bare_hint() -> None:
    page = {"value": [{"id": DEVICE, "displayName": "x" * MAX_OBSERVATION_CHARS}]}
    (change,) = page_changes(page, "run", 0, AT)
    assert change.facts is None and change.device_id == DEVICE
    assert len(change.to_json()) < 1_000


# --- resync codes nested in innererror (issue 13 item 10) -----------------------------------


def graph_error(status: int, body: dict[str, Any]) -> APIError:
    """An error as the SDK builds it from Graph's answer (its own deserializer)."""
    error = JsonParseNode(json.loads(json.dumps(body))).get_object_value(ODataError)
    error.response_status_code = status
    return error


@pytest.mark.parametrize(
    ("status", "body", "expired"),
    [
        # The directory's own answer to an old token (FACTS.md).
        (400, {"error": {"code": "syncStateNotFound", "message": "expired"}}, True),
        # errors.md: codes nest in innererror, "recursively"; loop through all of them.
        (
            400,
            {"error": {"code": "badRequest", "innererror": {"code": "resyncRequired"}}},
            True,
        ),
        (
            400,
            {
                "error": {
                    "code": "invalidRequest",
                    "message": "x",
                    "innerError": {
                        "code": "generalException",
                        "request-id": "r",
                        "innerError": {"code": "ResyncRequired"},
                    },
                }
            },
            True,
        ),
        (
            400,
            {
                "error": {
                    "code": "invalidRequest",
                    "innererror": {"code": "x", "innererror": {"code": "resyncApplyDifferences"}},
                }
            },
            True,
        ),
        (410, {"error": {"code": "anything"}}, True),
        (
            400,
            {
                "error": {
                    "code": "badRequest",
                    "innerError": {"date": "2026-11-30T00:00:00", "request-id": "r"},
                }
            },
            False,
        ),
        (403, {"error": {"code": "accessDenied", "innererror": {"code": "notAllowed"}}}, False),
    ],
)
def test_an_expired_token_is_recognised_wherever_graph_nests_its_code(
    status: int, body: dict[str, Any], expired: bool
) -> None:
    assert token_expired(graph_error(status, body)) is expired


# --- against the simulator -------------------------------------------------------------------


async def process_queue(runtime: Runtime, stack) -> list[Any]:
    pipeline = await runtime.pipeline()
    messages = drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    return [
        await pipeline.process(DeviceChange.from_json(json.dumps(body_json(m)))) for m in messages
    ]


def alerts(runtime: Runtime, stack) -> list[dict[str, Any]]:
    return [
        body_json(m)
        for m in drain_subscription(
            stack.service_bus_connection, runtime.settings.device_alerts_topic, "audit"
        )
    ]


async def test_a_baseline_costs_a_request_per_page_not_per_device(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    sim.generate(40, seed=3)
    sim.reset_requests()
    books = await runtime.bookkeeping()
    result = await (await runtime.delta_sync()).run("test")
    outcomes = await process_queue(runtime, stack)

    routes = sim.requests()["routes"]
    assert result.outcome == "completed" and result.changes == 40
    assert routes == {"GET /devices/delta": result.pages, "GET /deviceManagement/managedDevices": 1}
    assert {o.transition for o in outcomes} == {Transition.FIRST_SEEN}
    # The bulk join found the same records a per-device read would have.
    store = await runtime.store()
    managed = sim.managed_devices(limit=1000)["managedDevices"]
    by_device = {m["azureADDeviceId"]: m["id"] for m in managed}
    assert managed
    async for row in store.states():
        assert row.record.managed_device_id == by_device.get(row.record.device_id)
    assert (await books.sync_state()).phase == "incremental"


async def test_an_incremental_round_merges_partial_items_and_reads_only_what_intune_changed(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    # Graph returns, for an updated object, "at least the properties that have been updated".
    sim.settings(deltaChangedPropertiesOnly=True)
    losing = add_device(sim, name="LOSES-COMPLIANCE")
    renamed = add_device(sim, name="GETS-RENAMED")
    runner = await runtime.delta_sync()
    await runner.run("test")
    await process_queue(runtime, stack)
    assert alerts(runtime, stack) == []

    sim.patch_managed_device(losing["managedId"], complianceState="noncompliant")  # writes Entra
    sim.patch_device(renamed["id"], notify=False, displayName="RENAMED")
    sim.reset_requests()
    result = await runner.run("test")
    queued = drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    items = {body_json(m)["device_id"]: body_json(m)["observation"]["device"] for m in queued}
    pipeline = await runtime.pipeline()
    outcomes = {
        m.session_id: await pipeline.process(DeviceChange.from_json(json.dumps(body_json(m))))
        for m in queued
    }

    assert items[renamed["id"]].keys() == {"id", "displayName"}  # partial, as Graph sends it
    assert result.pages == 1
    assert sim.requests()["routes"] == {
        "GET /devices/delta": 1,
        # isCompliant moved on the compliance device: its Intune record is read; the rename's
        # held record still holds.
        "GET /deviceManagement/managedDevices": 1,
        # The lost alert names the failing compliance settings: one read, for that device only
        # (docs/compliance-details.md).
        "GET /deviceManagement/managedDevices/{id}/deviceCompliancePolicyStates": 1,
    }
    assert outcomes[losing["id"]].transition is Transition.LOST
    assert outcomes[renamed["id"]].transition is Transition.CHANGED
    (alert,) = alerts(runtime, stack)
    assert alert["data"]["device"]["displayName"] == "LOSES-COMPLIANCE"
    row = await (await runtime.store()).get_state(renamed["id"])
    assert row is not None
    assert (row.record.display_name, row.record.eligible, row.record.trust_type) == (
        "RENAMED",
        True,
        "AzureAd",
    )
    snapshot = Facts.from_json(row.snapshot)
    assert snapshot.device["displayName"] == "RENAMED" and snapshot.device["isCompliant"] is True


async def test_an_idle_round_is_one_request(runtime: Runtime, sim: SimAdmin, stack) -> None:
    add_device(sim)
    runner = await runtime.delta_sync()
    await runner.run("test")
    process = await process_queue(runtime, stack)
    assert len(process) == 1
    sim.reset_requests()

    for _ in range(3):
        assert (await runner.run("test")).changes == 0

    assert sim.requests()["httpRequests"] == 3


async def test_the_later_of_two_pages_wins_through_the_real_queue(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    device = add_device(sim, name="TWO-PAGES")
    full = sim.device(device["id"])["device"]
    pipeline = await runtime.pipeline()
    (baseline,) = page_changes({"value": [full]}, "r0", 0, AT)
    assert (await pipeline.process(baseline)).transition is Transition.FIRST_SEEN
    now = datetime.now(UTC)
    round_pages = [
        page_changes({"value": [{**full, "isCompliant": False}]}, "r1", 0, now),
        page_changes(
            {"value": [{**full, "isCompliant": True}]}, "r1", 1, now + timedelta(seconds=1)
        ),
    ]
    queue = runtime.change_queue()
    for changes in round_pages:
        await queue.send(changes)

    delivered = drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    outcomes = [
        await pipeline.process(DeviceChange.from_json(json.dumps(body_json(m)))) for m in delivered
    ]

    assert len(delivered) == 2  # neither dropped as a duplicate
    assert [o.transition for o in outcomes] == [Transition.LOST, Transition.RESTORED]
    row = await (await runtime.store()).get_state(device["id"])
    assert row is not None and row.record.eligible is True


# --- what Graph's delta documents, played by the simulator -------------------------------------


async def test_a_device_changed_between_pages_comes_again_and_the_later_observation_wins(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    flipping = add_device(sim, name="FLIPS")
    others = [add_device(sim, name=f"OTHER-{i}") for i in range(2)]
    runner = await runtime.delta_sync()
    await runner.run("test")
    await process_queue(runtime, stack)

    sim.patch_managed_device(flipping["managedId"], complianceState="noncompliant")
    for other in others:
        sim.patch_device(other["id"], notify=False, displayName=f"{other['id'][:4]}-RENAMED")

    def restore_after_first_page(pages: int, _: int) -> None:
        if pages == 1:  # FLIPS was on it: it changes again while the round is paged
            sim.patch_managed_device(flipping["managedId"], complianceState="compliant")

    paging = DeltaSync(
        graph=runtime.graph_json(),
        books=await runtime.bookkeeping(),
        sink=runtime.change_queue().with_timeout(None),
        page_size=1,
        on_page=restore_after_first_page,
    )
    result = await paging.run("test")
    delivered = [
        m
        for m in drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
        if m.session_id == flipping["id"]
    ]
    pipeline = await runtime.pipeline()
    outcomes = [
        await pipeline.process(DeviceChange.from_json(json.dumps(body_json(m)))) for m in delivered
    ]

    assert result.outcome == "completed" and result.pages >= 4
    assert len({m.message_id for m in delivered}) == len(delivered) == 2
    assert [o.transition for o in outcomes] == [Transition.LOST, Transition.RESTORED]
    row = await (await runtime.store()).get_state(flipping["id"])
    assert row is not None and row.record.eligible is True


async def test_items_repeated_across_pages_are_each_delivered_and_change_nothing_twice(
    runtime: Runtime, sim: SimAdmin, stack
) -> None:
    for i in range(5):
        add_device(sim, name=f"REPEAT-{i}")
    sim.force_delta_repeats(1)
    runner = DeltaSync(
        graph=runtime.graph_json(),
        books=await runtime.bookkeeping(),
        sink=runtime.change_queue().with_timeout(None),
        page_size=2,
    )

    result = await runner.run("test")
    delivered = drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    pipeline = await runtime.pipeline()
    outcomes = [
        await pipeline.process(DeviceChange.from_json(json.dumps(body_json(m)))) for m in delivered
    ]

    assert result.changes == len(delivered) > 5
    assert len({m.message_id for m in delivered}) == len(delivered)
    firsts = [o for o in outcomes if o.transition is Transition.FIRST_SEEN]
    assert len(firsts) == 5 and len({o.device_id for o in firsts}) == 5
    assert {o.transition for o in outcomes} == {Transition.FIRST_SEEN, Transition.UNCHANGED}


@pytest.mark.parametrize("how", ["reset", "seven_days"])
async def test_a_dead_delta_link_restarts_a_baseline_with_the_intune_list(
    runtime: Runtime, sim: SimAdmin, stack, how: str
) -> None:
    for i in range(4):
        add_device(sim, name=f"RESYNC-{i}")
    runner = await runtime.delta_sync()
    await runner.run("test")
    await process_queue(runtime, stack)
    if how == "reset":
        # 410 Gone + Location, syncStateNotFound with resyncRequired nested in innerError.
        sim.reset_delta_sync()
    else:
        sim.advance_clock(days=8)  # "For directory objects, the limit is seven days"
    sim.reset_requests()

    result = await runner.run("test")
    outcomes = await process_queue(runtime, stack)

    assert (result.outcome, result.full_resync, result.changes) == ("completed", True, 4)
    routes = sim.requests()["routes"]
    assert routes["GET /deviceManagement/managedDevices"] == 1
    assert routes["GET /devices/delta"] == 1 + result.pages  # the dead link, then the new round
    assert "GET /devices/{id}" not in routes
    assert {o.transition for o in outcomes} == {Transition.UNCHANGED}
    assert alerts(runtime, stack) == []
    again = await runner.run("test")
    assert (again.outcome, again.full_resync, again.phase) == ("completed", False, "incremental")
