"""Intune's timeline in the simulator, on the tenant's clock: check-ins every ~8 hours
(device-profile-troubleshoot.md), the grace schedule (actions-for-noncompliance.md), the
compliance status validity period (device-compliance-get-started.md) and the seven days of a
setting in Error (compliance-policy-monitor.md). Read back through the real msgraph-sdk
pipeline; each move to noncompliant must be a change a delta round reports and a subscription
is notified of."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from local import stack as local_stack
from local.graphsim.admin import SimAdmin, SimAdminError, scratch_tenant
from local.graphsim.tenant_settings import set_tenant_settings
from shared.adapters.graph import GraphJson
from shared.core.snapshots import parse_time
from shared.runtime import Runtime
from tests.local.test_graphsim_notifications import Receiver, _subscribe
from tests.local.test_graphsim_notifications import (
    receiver as notification_receiver,  # noqa: F401 (a fixture, shared)
)


@pytest.fixture
def graph(runtime: Runtime) -> GraphJson:
    return runtime.graph_json()


def _pair(sim: SimAdmin, name: str, **managed: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An Entra device compliant through Intune and its managed device (docs' property names)."""
    device = sim.upsert_device(displayName=name, isManaged=True, isCompliant=True)
    record = sim.upsert_managed_device(
        azureADDeviceId=device["deviceId"], deviceName=name, complianceState="compliant", **managed
    )
    return device, record


async def _managed(graph: GraphJson, managed_id: str) -> dict[str, Any]:
    select = "id,complianceState,lastSyncDateTime,complianceGracePeriodExpirationDateTime"
    body = await graph.get(f"/deviceManagement/managedDevices/{managed_id}?$select={select}")
    assert isinstance(body, dict)
    return body


async def _is_compliant(graph: GraphJson, object_id: str) -> Any:
    body = await graph.get(f"/devices/{object_id}?$select=isCompliant")
    return body["isCompliant"]


async def _delta_link(graph: GraphJson) -> str:
    url: str | None = "/devices/delta?$select=id,isCompliant"
    while url:
        page = await graph.get(url)
        if "@odata.deltaLink" in page:
            return str(page["@odata.deltaLink"])
        url = page["@odata.nextLink"]
    raise AssertionError("no deltaLink")


async def _changed(graph: GraphJson, link: str) -> dict[str, dict[str, Any]]:
    """The items of the round from `link`, by id."""
    items: dict[str, dict[str, Any]] = {}
    url: str | None = link
    while url:
        page = await graph.get(url)
        items.update({item["id"]: item for item in page["value"]})
        url = page.get("@odata.nextLink")
    return items


def _now(sim: SimAdmin) -> datetime:
    now = parse_time(sim.clock()["now"])
    assert now is not None
    return now


async def test_grace_ends_at_its_expiry_and_entra_reports_the_change(
    sim: SimAdmin, graph: GraphJson
) -> None:
    device, record = _pair(sim, "GRACE-1")
    expires = (_now(sim) + timedelta(hours=72)).replace(microsecond=0)
    view = sim.enter_grace(record["id"], expires=expires.isoformat())
    assert view["deadlines"] == {"grace": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
    link = await _delta_link(graph)

    sim.advance_clock(hours=71)
    held = await _managed(graph, record["id"])
    assert held["complianceState"] == "inGracePeriod"
    assert parse_time(held["complianceGracePeriodExpirationDateTime"]) == expires
    assert await _is_compliant(graph, device["id"]) is True  # grace: compliant in Entra
    assert device["id"] not in await _changed(graph, link)

    sim.advance_clock(hours=2)
    assert (await _managed(graph, record["id"]))["complianceState"] == "noncompliant"
    assert await _is_compliant(graph, device["id"]) is False
    assert (await _changed(graph, link))[device["id"]]["isCompliant"] is False
    ended = sim.intune_timeline()["devices"][0]["ended"]
    assert ended["by"] == "grace" and parse_time(ended["at"]) >= expires  # type: ignore[operator]


async def test_a_device_fixed_during_grace_is_never_noncompliant(
    sim: SimAdmin, graph: GraphJson
) -> None:
    device, record = _pair(sim, "GRACE-FIXED")
    sim.enter_grace(record["id"], hours=24)
    sim.advance_clock(hours=12)
    sim.comply(record["id"])
    sim.advance_clock(hours=48)
    held = await _managed(graph, record["id"])
    assert held["complianceState"] == "compliant"
    assert held["complianceGracePeriodExpirationDateTime"] == "9999-12-31T23:59:59Z"
    assert await _is_compliant(graph, device["id"]) is True


async def test_a_checking_in_device_follows_the_clock_in_eight_hour_steps(
    sim: SimAdmin, graph: GraphJson
) -> None:
    _, record = _pair(sim, "CHECKIN")
    first = parse_time((await _managed(graph, record["id"]))["lastSyncDateTime"])
    assert first is not None
    sim.advance_clock(hours=7)
    assert parse_time((await _managed(graph, record["id"]))["lastSyncDateTime"]) == first
    sim.advance_clock(hours=13)  # 20 h after: two check-ins
    later = parse_time((await _managed(graph, record["id"]))["lastSyncDateTime"])
    assert later == first + timedelta(hours=16)
    sim.advance_clock(days=60)  # never past a validity period while it checks in
    held = await _managed(graph, record["id"])
    assert held["complianceState"] == "compliant"
    assert _now(sim) - parse_time(held["lastSyncDateTime"]) < timedelta(hours=8)  # type: ignore[operator]


@pytest.mark.parametrize("days", [1, 10, 30])
async def test_a_device_that_stops_checking_in_is_noncompliant_past_the_validity_period(
    sim: SimAdmin, graph: GraphJson, days: int
) -> None:
    set_tenant_settings(sim, checkin_threshold_days=days)
    device, record = _pair(sim, f"STOPPED-{days}")
    stopped_at = (await _managed(graph, record["id"]))["lastSyncDateTime"]
    view = sim.stop_checkins(record["id"])
    assert view["checkingIn"] is False
    deadline = parse_time(view["deadlines"]["validity"])
    assert deadline == parse_time(stopped_at) + timedelta(days=days)  # type: ignore[operator]

    sim.advance_clock(days=days - 1, hours=23)
    held = await _managed(graph, record["id"])
    assert (held["complianceState"], held["lastSyncDateTime"]) == ("compliant", stopped_at)
    assert await _is_compliant(graph, device["id"]) is True
    link = await _delta_link(graph)  # a fresh token: the old ones age out after seven days

    sim.advance_clock(hours=2)
    assert (await _managed(graph, record["id"]))["complianceState"] == "noncompliant"
    assert (await _changed(graph, link))[device["id"]]["isCompliant"] is False

    # Checking in again, it is evaluated again: the state it had, compliant in Entra.
    resumed = sim.resume_checkins(record["id"])
    assert (resumed["complianceState"], resumed["checkingIn"]) == ("compliant", True)
    assert parse_time(resumed["lastSyncDateTime"]) == _now(sim).replace(microsecond=0)
    assert await _is_compliant(graph, device["id"]) is True


async def test_a_tenant_lowering_its_threshold_ends_a_stopped_device_at_the_next_request(
    sim: SimAdmin, graph: GraphJson
) -> None:
    device, record = _pair(sim, "THRESHOLD")
    sim.stop_checkins(record["id"])
    sim.advance_clock(days=12)
    assert (await _managed(graph, record["id"]))["complianceState"] == "compliant"  # 30 days
    set_tenant_settings(sim, checkin_threshold_days=10)
    # No clock advance: the Graph request itself sees the shorter period already passed.
    assert (await _managed(graph, record["id"]))["complianceState"] == "noncompliant"
    assert await _is_compliant(graph, device["id"]) is False


async def test_a_setting_in_error_keeps_entra_for_seven_days_then_noncompliant(
    sim: SimAdmin, graph: GraphJson
) -> None:
    device, record = _pair(sim, "ERROR-7")
    seq = sim.device(device["id"])["seq"]
    view = sim.set_compliance_error(record["id"])
    assert view["complianceState"] == "error"
    assert sim.device(device["id"])["seq"] == seq  # Intune wrote nothing to Entra
    assert await _is_compliant(graph, device["id"]) is True

    sim.advance_clock(days=6)
    link = await _delta_link(graph)
    sim.advance_clock(hours=23)
    assert (await _managed(graph, record["id"]))["complianceState"] == "error"
    sim.advance_clock(hours=2)
    assert (await _managed(graph, record["id"]))["complianceState"] == "noncompliant"
    assert (await _changed(graph, link))[device["id"]]["isCompliant"] is False


async def test_an_error_that_began_more_than_seven_days_ago_ends_at_once(
    sim: SimAdmin, graph: GraphJson
) -> None:
    device, record = _pair(sim, "ERROR-OLD")
    since = _now(sim) - timedelta(days=7, minutes=1)
    view = sim.set_compliance_error(record["id"], since=since.isoformat())
    assert view["complianceState"] == "noncompliant" and view["ended"]["by"] == "error"
    assert await _is_compliant(graph, device["id"]) is False


def test_admin_refuses_unknown_actions_and_devices(sim: SimAdmin) -> None:
    _, record = _pair(sim, "ADMIN")
    with pytest.raises(SimAdminError) as bad:
        sim._call("POST", f"/managedDevices/{record['id']}/timeline", {"action": "nap"})
    assert bad.value.status == 400
    with pytest.raises(SimAdminError) as missing:
        sim.stop_checkins("no-such-managed-device")
    assert missing.value.status == 404
    with pytest.raises(SimAdminError) as bad_time:
        sim.enter_grace(record["id"], expires="next tuesday")
    assert bad_time.value.status == 400


async def test_the_end_of_grace_is_notified_like_any_other_change(
    stack: local_stack.Stack,
    notification_receiver: Receiver,  # noqa: F811 (the fixture imported above)
) -> None:
    receiver = notification_receiver
    async with scratch_tenant(stack.graph_root, "timeline") as admin:
        device = await admin.upsert_device(displayName="NOTIFIED", isManaged=True, isCompliant=True)
        record = await admin.upsert_managed_device(
            azureADDeviceId=device["deviceId"], complianceState="compliant"
        )
        # A directory subscription may last just under 29 days: longer than the grace period.
        created = await _subscribe(admin, receiver.at("grace"), minutes=40_000)
        assert created.status_code == 201
        await admin.enter_grace(record["id"], hours=24)
        await admin.flush_notifications()
        assert receiver.items("grace") == []  # grace: nothing changes in Entra

        await admin.advance_clock(hours=25)
        await admin.flush_notifications()
        [item] = receiver.items("grace")
        assert (item["changeType"], item["resourceData"]["id"]) == ("updated", device["id"])
