"""The processor evaluates from the facts a change carries, and asks Graph only for what it lacks:
a bare hint is re-read, Intune only when it may be the device's MDM, a first 404 is confirmed
before a device is called deleted, and an older observation changes nothing. Against the Graph
simulator (its request counters), Azurite and the broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.graphsim.admin import SimAdmin
from shared.core.changes import DeviceChange, retry_of
from shared.core.evaluation import INTUNE_MDM_APP_ID
from shared.core.models import Source, Transition
from shared.core.observations import Facts
from shared.runtime import Runtime
from tests.graph_helpers import add_device
from tests.shared.processing.test_pipeline import CRASH_STEPS, Crash, alerts, crashing_once

PARTNER_APP_ID = "9c0e6ed4-0cc9-4e49-a4e5-6e4e0e3bd0c3"  # an MDM app that is not Intune


def hint(device_id: str, change_type: str = "updated") -> DeviceChange:
    message_id = uuid.uuid4().hex
    return DeviceChange(device_id, change_type, Source.NOTIFICATION, message_id, message_id, "")


def observed(
    device: dict[str, Any], at: datetime, managed: tuple[Any, ...] | None = None
) -> DeviceChange:
    message_id = uuid.uuid4().hex
    facts = Facts(at, device, managed, at if managed is not None else None)
    return DeviceChange(
        device["id"], "updated", Source.SYNC, message_id, message_id, "", facts=facts
    )


def graph_device(sim: SimAdmin, object_id: str) -> dict[str, Any]:
    """The device as Graph's delta would list it in a baseline: every property."""
    return dict(sim.device(object_id)["device"])


def routes(sim: SimAdmin) -> dict[str, int]:
    return dict(sim.reset_requests()["routes"])


async def history(runtime: Runtime, device_id: str) -> list[Any]:
    return [row async for row in (await runtime.store()).history(device_id)]


# --- which reads a change costs --------------------------------------------------------------


async def test_a_full_observation_with_its_intune_records_costs_no_graph_request(
    runtime: Runtime, sim: SimAdmin
) -> None:
    device = add_device(sim)
    record = sim.managed_devices(device["deviceId"])["managedDevices"][0]
    sim.reset_requests()

    outcome = await (await runtime.pipeline()).process(
        observed(graph_device(sim, device["id"]), datetime.now(UTC), (record,))
    )

    assert outcome.transition is Transition.FIRST_SEEN
    assert routes(sim) == {}
    row = await (await runtime.store()).get_state(device["id"])
    assert row is not None and row.record.managed_device_id == record["id"]


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        # Intune is the MDM: the device, then its Intune record.
        (
            {"isManaged": True, "mdmAppId": INTUNE_MDM_APP_ID},
            {"GET /devices/{id}": 1, "GET /deviceManagement/managedDevices": 1},
        ),
        # A third-party MDM or compliance partner is the MDM authority: no Intune read, even
        # with a record left behind in Intune.
        ({"isManaged": True, "mdmAppId": PARTNER_APP_ID}, {"GET /devices/{id}": 1}),
        (
            {"isManaged": True, "mdmAppId": PARTNER_APP_ID, "isCompliant": False},
            {"GET /devices/{id}": 1},
        ),
        # No MDM at all.
        ({"isManaged": False, "mdmAppId": None}, {"GET /devices/{id}": 1}),
        # Not said: read it rather than miss a record.
        (
            {"isManaged": None, "mdmAppId": None},
            {"GET /devices/{id}": 1, "GET /deviceManagement/managedDevices": 1},
        ),
    ],
)
async def test_a_bare_hint_reads_intune_only_when_intune_may_be_the_mdm(
    runtime: Runtime, sim: SimAdmin, props: dict[str, Any], expected: dict[str, int]
) -> None:
    device = add_device(sim)
    sim.patch_device(device["id"], notify=False, **props)
    sim.reset_requests()

    outcome = await (await runtime.pipeline()).process(hint(device["id"]))

    assert outcome.transition is Transition.FIRST_SEEN
    assert routes(sim) == expected
    row = await (await runtime.store()).get_state(device["id"])
    assert row is not None
    intune_read = "GET /deviceManagement/managedDevices" in expected
    assert (row.record.managed_device_id == device["managedId"]) is intune_read


async def test_a_known_device_is_read_with_its_intune_record_in_one_round_trip(
    runtime: Runtime, sim: SimAdmin
) -> None:
    device = add_device(sim)
    pipeline = await runtime.pipeline()
    await pipeline.process(hint(device["id"]))
    sim.patch_device(device["id"], notify=False, isCompliant=False)
    sim.reset_requests()

    outcome = await pipeline.process(hint(device["id"]))

    assert outcome.transition is Transition.LOST
    # A loss for compliance also reads the device's failing policies, once (issue 16).
    assert routes(sim) == {
        "GET /devices/{id}": 1,
        "GET /deviceManagement/managedDevices": 1,
        "GET /deviceManagement/managedDevices/{id}/deviceCompliancePolicyStates": 1,
    }


async def test_a_partial_item_with_no_snapshot_to_merge_onto_is_reread(
    runtime: Runtime, sim: SimAdmin
) -> None:
    device = add_device(sim, name="PARTIAL")
    sim.reset_requests()

    outcome = await (await runtime.pipeline()).process(
        observed({"id": device["id"], "displayName": "PARTIAL"}, datetime.now(UTC))
    )

    assert outcome.transition is Transition.FIRST_SEEN
    assert routes(sim)["GET /devices/{id}"] == 1


# --- older observations, and facts that move without a verdict -------------------------------


async def test_an_observation_older_than_the_stored_one_changes_nothing(
    runtime: Runtime, sim: SimAdmin
) -> None:
    device = add_device(sim)
    before = datetime.now(UTC) - timedelta(minutes=1)
    stale_view = {**graph_device(sim, device["id"]), "isCompliant": False}
    pipeline = await runtime.pipeline()
    await pipeline.process(hint(device["id"]))  # read now: newer than the delta page below
    stored = await (await runtime.store()).get_state(device["id"])

    outcome = await pipeline.process(observed(stale_view, before))

    assert outcome.transition is Transition.UNCHANGED
    assert await (await runtime.store()).get_state(device["id"]) == stored
    assert len(await history(runtime, device["id"])) == 1


async def test_facts_that_move_without_a_verdict_are_kept_for_the_next_merge(
    runtime: Runtime, sim: SimAdmin
) -> None:
    device = add_device(sim)
    t0 = datetime.now(UTC)
    full = graph_device(sim, device["id"])
    pipeline = await runtime.pipeline()
    await pipeline.process(observed(full, t0, ()))
    signed_in = "2026-11-30T08:00:00Z"

    # The sign-in time moves: no history row, but the snapshot holds it...
    moved = await pipeline.process(
        observed(
            {"id": device["id"], "approximateLastSignInDateTime": signed_in},
            t0 + timedelta(seconds=1),
        )
    )
    # ...so a later partial item, merged onto it, does not bring the old time back.
    renamed = await pipeline.process(
        observed({"id": device["id"], "displayName": "RENAMED"}, t0 + timedelta(seconds=2))
    )

    assert moved.transition is Transition.UNCHANGED
    assert renamed.transition is Transition.CHANGED
    row = await (await runtime.store()).get_state(device["id"])
    assert row is not None
    snapshot = Facts.from_json(row.snapshot)
    assert snapshot.device["approximateLastSignInDateTime"] == signed_in
    assert snapshot.device["displayName"] == "RENAMED"
    assert [h.transition for h in await history(runtime, device["id"])] == ["changed", "first_seen"]


async def test_a_rescheduled_change_is_reread_not_merged(runtime: Runtime, sim: SimAdmin) -> None:
    device = add_device(sim)
    change = observed({"id": device["id"], "displayName": "X"}, datetime.now(UTC))
    retry = retry_of(change)
    assert retry.facts is None and retry.attempt == 1
    sim.reset_requests()

    await (await runtime.pipeline()).process(retry)

    assert routes(sim)["GET /devices/{id}"] == 1


# --- a first 404 is not "deleted" (issue 13 item 11) -----------------------------------------


async def test_a_first_404_right_after_creation_is_retried_not_taken_as_deleted(
    runtime: Runtime, sim: SimAdmin
) -> None:
    # Graph documents 404s from replication delay right after an object is created.
    device = add_device(sim)
    sim.add_fault(
        status=404, count=1, route="/devices/{id}", method="GET", code="Request_ResourceNotFound"
    )
    sim.reset_requests()

    outcome = await (await runtime.pipeline()).process(hint(device["id"]))

    assert outcome.transition is Transition.FIRST_SEEN and outcome.eligible is True
    assert routes(sim)["GET /devices/{id}"] == 2


async def test_a_known_device_is_deleted_once_the_404_holds(
    runtime: Runtime, sim: SimAdmin
) -> None:
    device = add_device(sim, name="GONE")
    pipeline = await runtime.pipeline()
    await pipeline.process(hint(device["id"]))
    sim.delete_device(device["id"], notify=False)
    sim.reset_requests()

    outcome = await pipeline.process(hint(device["id"]))

    assert outcome.transition is Transition.LOST and outcome.reasons == ("DEVICE_DELETED",)
    # The confirmation's tries, then deleted (the Intune record is read beside the first try).
    assert routes(sim) == {"GET /devices/{id}": 3, "GET /deviceManagement/managedDevices": 1}


async def test_a_deleted_notification_confirmed_by_a_404_needs_no_second_try(
    runtime: Runtime, sim: SimAdmin
) -> None:
    device = add_device(sim)
    pipeline = await runtime.pipeline()
    await pipeline.process(hint(device["id"]))
    sim.delete_device(device["id"], notify=False)
    sim.reset_requests()

    outcome = await pipeline.process(hint(device["id"], "deleted"))

    assert outcome.reasons == ("DEVICE_DELETED",)
    assert routes(sim)["GET /devices/{id}"] == 1


async def test_a_removal_in_the_delta_needs_no_read(runtime: Runtime, sim: SimAdmin) -> None:
    device = add_device(sim, name="REMOVED")
    pipeline = await runtime.pipeline()
    await pipeline.process(hint(device["id"]))
    sim.reset_requests()

    outcome = await pipeline.process(
        observed({"id": device["id"], "@removed": {"reason": "deleted"}}, datetime.now(UTC))
    )

    assert outcome.transition is Transition.LOST and outcome.reasons == ("DEVICE_DELETED",)
    assert routes(sim) == {}


# --- exactly once, with observations too (docs/reliability.md) --------------------------------


@pytest.mark.parametrize("step", CRASH_STEPS)
async def test_a_crash_at_any_step_of_a_merged_observation_neither_loses_nor_duplicates(
    runtime: Runtime, sim: SimAdmin, stack, step: str
) -> None:
    device = add_device(sim)
    t0 = datetime.now(UTC)
    await (await runtime.pipeline()).process(observed(graph_device(sim, device["id"]), t0, ()))
    flaky = await crashing_once(runtime, step)
    message = observed({"id": device["id"], "isCompliant": False}, t0 + timedelta(seconds=1))

    with pytest.raises(Crash):
        await flaky.process(message)
    await flaky.process(message)  # the redelivery
    await flaky.process(message)  # and a stray duplicate

    assert [a["type"] for a in alerts(runtime, stack)] == ["devicemon.eligibility.lost"]
    rows = await history(runtime, device["id"])
    assert [(r.record.version, r.transition) for r in rows] == [(2, "lost"), (1, "first_seen")]
    current = await (await runtime.store()).get_state(device["id"])
    assert current is not None and current.pending_alert == ""
    assert Facts.from_json(current.snapshot).device["isCompliant"] is False
