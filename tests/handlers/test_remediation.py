"""Remediation against the Graph simulator and Azurite: syncDevice in `on` only, once per alert
under redelivery and crashes, within the hourly budget, every decision recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers import remediation
from local.graphsim.admin import SimAdmin
from shared.consumers.remediation import GraphDeviceSync, NotSent, Remediator
from shared.consumers.remediation_log import LogEntry, RemediationLog
from shared.consumers.remediation_plan import Mode, Outcome, Skip
from shared.core.models import Source
from shared.runtime import Runtime
from shared.settings import Settings
from tests.alert_helpers import as_message, make_alert
from tests.graph_helpers import add_device
from tests.servicebus_helpers import body_json, drain_subscription
from tests.shared.consumers.consumer_host import consumer_host
from tests.shared.consumers.risk_alerts import risk_alert
from tests.shared.processing.test_pipeline import alerts, change
from tests.shared.processing.test_pipeline_risk import SimClock, iso, later, pipeline_on

SYNC_ROUTE = "/deviceManagement/managedDevices/{id}/syncDevice"


class Crash(Exception):
    """An injected failure standing for a process crash."""


@pytest.fixture
async def runtimes(settings: Settings) -> AsyncIterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def make(
        mode: str = "on", limit: int = 30, clock: Callable[[], datetime] | None = None
    ) -> Runtime:
        rt = Runtime(
            replace(settings, remediation_mode=mode, remediation_max_actions_per_hour=limit),
            clock=clock,
        )
        made.append(rt)
        return rt

    yield make
    for rt in made:
        await rt.close_alert_consumers()
        await rt.close()


def lost_alert(sim: SimAdmin, **kwargs: Any) -> dict[str, Any]:
    device = add_device(sim, compliant=False)
    return make_alert(
        object_id=device["id"],
        device_id=device["deviceId"],
        managed_device_id=device["managedId"],
        **kwargs,
    )


def sync_calls(sim: SimAdmin) -> list[str]:
    return [c["managedDeviceId"] for c in sim.sync_device_calls()["calls"]]


async def history(rt: Runtime, alert: dict[str, Any]) -> list[LogEntry]:
    return await (await rt.remediator()).history(alert["data"]["device"]["objectId"])


async def test_on_syncs_the_device_once_however_often_the_alert_comes(
    runtimes: Callable[..., Runtime], sim: SimAdmin
) -> None:
    rt = runtimes("on")
    alert = lost_alert(sim)
    first = await remediation.handle(as_message(alert), rt)
    for delivery in range(1, 4):
        again = await remediation.handle(as_message(alert, delivery), rt)
        assert again.outcome is Outcome.ACTED and again.acted_at == first.acted_at
    await asyncio.gather(*(remediation.handle(as_message(alert, 9), rt) for _ in range(3)))

    assert sync_calls(sim) == [alert["data"]["device"]["managedDeviceId"]]
    (entry,) = await history(rt, alert)
    assert entry.outcome is Outcome.ACTED and entry.code == "syncDevice"
    assert entry.alert_id == alert["id"] and entry.mode == "on" and entry.attempts == 1
    assert entry.reason == "Intune syncDevice for NOT_COMPLIANT"


@pytest.mark.parametrize(
    ("mode", "outcome", "code"),
    [("off", Outcome.SKIPPED, Skip.MODE_OFF), ("dry-run", Outcome.DRY_RUN, "syncDevice")],
)
async def test_off_and_dry_run_record_the_decision_without_acting(
    runtimes: Callable[..., Runtime], sim: SimAdmin, mode: str, outcome: Outcome, code: str
) -> None:
    rt = runtimes(mode)
    alert = lost_alert(sim)
    for delivery in range(2):
        await remediation.handle(as_message(alert, delivery), rt)
    assert sync_calls(sim) == []
    (entry,) = await history(rt, alert)
    assert (entry.outcome, entry.code, entry.mode) == (outcome, code, mode)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"lost": False}, Skip.RESTORED),
        ({"reasons": ("DEVICE_DISABLED",)}, Skip.NO_FIX_FOR_REASONS),
        ({"management": "unmanaged", "managed_device_id": None}, Skip.NOT_INTUNE_MANAGED),
    ],
)
async def test_other_alerts_are_recorded_as_skipped_with_why(
    runtimes: Callable[..., Runtime], sim: SimAdmin, changes: dict[str, Any], code: Skip
) -> None:
    rt = runtimes("on")
    alert = make_alert(**changes)
    entry = await remediation.handle(as_message(alert), rt)
    assert (entry.outcome, entry.code) == (Outcome.SKIPPED, code)
    assert sync_calls(sim) == []
    assert [e.alert_id for e in await history(rt, alert)] == [alert["id"]]


async def test_the_hourly_budget_protects_the_tenant_in_a_mass_event(
    runtimes: Callable[..., Runtime], sim: SimAdmin
) -> None:
    rt = runtimes("on", limit=3)
    alerts = [lost_alert(sim) for _ in range(6)]
    entries = await asyncio.gather(*(remediation.handle(as_message(a), rt) for a in alerts))

    outcomes = sorted(e.outcome.value for e in entries)
    assert outcomes == ["acted"] * 3 + ["rate_limited"] * 3
    assert len(sync_calls(sim)) == 3
    limited = next(e for e in entries if e.outcome is Outcome.RATE_LIMITED)
    assert "REMEDIATION_MAX_ACTIONS_PER_HOUR (3)" in limited.reason
    acted = next(e for e in entries if e.outcome is Outcome.ACTED)
    assert await (await rt.remediator()).log.actions_in_hour(acted.slot_hour) == 3


class Killed(BaseException):
    """The process dies (or the invocation is cancelled): nothing after this point runs."""


class KilledAfterSync(GraphDeviceSync):
    async def sync_device(self, managed_device_id: str) -> None:
        await super().sync_device(managed_device_id)
        raise Killed("after the Graph call, before `acted` was recorded")


class CrashAfterClaim(RemediationLog):
    crashed = False

    async def reserve_slot(self, hour: str, limit: int) -> bool:
        if not self.crashed:
            self.crashed = True
            raise Crash("after the claim, before the budget")
        return await super().reserve_slot(hour, limit)


async def test_a_crash_after_the_action_never_leads_to_a_second_one(
    runtimes: Callable[..., Runtime], sim: SimAdmin
) -> None:
    rt = runtimes("on")
    real = await rt.remediator()
    crashing = Remediator(
        real.log, KilledAfterSync(rt.graph_json), mode=Mode.ON, max_actions_per_hour=30
    )
    alert = lost_alert(sim)
    with pytest.raises(Killed):
        await crashing.handle(parse(alert))
    assert (await history(rt, alert))[0].outcome is Outcome.ACTING
    entry = await real.handle(parse(alert), 1)
    assert entry.outcome is Outcome.INTERRUPTED
    assert len(sync_calls(sim)) == 1
    assert (await real.handle(parse(alert), 2)).outcome is Outcome.INTERRUPTED


async def test_a_crash_after_the_claim_acts_on_redelivery(
    runtimes: Callable[..., Runtime], sim: SimAdmin, settings: Settings
) -> None:
    rt = runtimes("on")
    real = await rt.remediator()
    log = CrashAfterClaim(rt._tables, f"{settings.table_prefix}RemediationLog")  # type: ignore[arg-type]
    flaky = Remediator(log, GraphDeviceSync(rt.graph_json), mode=Mode.ON, max_actions_per_hour=30)
    alert = lost_alert(sim)
    with pytest.raises(Crash):
        await flaky.handle(parse(alert))
    assert (await history(rt, alert))[0].outcome is Outcome.CLAIMED
    assert (await flaky.handle(parse(alert), 1)).outcome is Outcome.ACTED
    assert (await real.handle(parse(alert), 2)).outcome is Outcome.ACTED
    assert len(sync_calls(sim)) == 1


async def test_throttling_past_the_retries_is_retried_by_redelivery_on_the_same_budget_slot(
    runtimes: Callable[..., Runtime], sim: SimAdmin
) -> None:
    rt = runtimes("on", limit=1)
    alert = lost_alert(sim)
    sim.add_fault(status=429, count=4, retry_after=0, route=SYNC_ROUTE, method="POST")
    with pytest.raises(NotSent, match="429"):
        await remediation.handle(as_message(alert), rt)
    (pending,) = await history(rt, alert)
    assert pending.outcome is Outcome.RETRY and "429" in pending.error

    entry = await remediation.handle(as_message(alert, 1), rt)
    assert entry.outcome is Outcome.ACTED and entry.attempts == 2
    assert len(sync_calls(sim)) == 1  # the budget of 1 was not spent twice


async def test_throttling_is_retried_in_process(
    runtimes: Callable[..., Runtime], sim: SimAdmin
) -> None:
    rt = runtimes("on")
    alert = lost_alert(sim)
    sim.add_fault(status=429, count=2, retry_after=1, route=SYNC_ROUTE, method="POST")
    assert (await remediation.handle(as_message(alert), rt)).outcome is Outcome.ACTED
    assert len(sync_calls(sim)) == 1


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_when_graph_may_have_acted_it_is_never_called_again(
    runtimes: Callable[..., Runtime], sim: SimAdmin, status: int
) -> None:
    rt = runtimes("on")
    alert = lost_alert(sim)
    sim.add_fault(status=status, count=1, route=SYNC_ROUTE, method="POST")
    entry = await remediation.handle(as_message(alert), rt)
    assert entry.outcome is Outcome.INTERRUPTED and str(status) in entry.error
    assert (await remediation.handle(as_message(alert, 1), rt)).outcome is Outcome.INTERRUPTED
    assert sync_calls(sim) == []


@pytest.mark.parametrize(("status", "managed"), [(404, "unknown"), (403, None)])
async def test_a_refused_action_is_recorded_as_failed_and_not_retried(
    runtimes: Callable[..., Runtime], sim: SimAdmin, status: int, managed: str | None
) -> None:
    rt = runtimes("on")
    alert = lost_alert(sim)
    if managed:
        alert["data"]["device"]["managedDeviceId"] = "00000000-0000-0000-0000-000000000404"
    else:
        sim.add_fault(status=403, count=5, route=SYNC_ROUTE, method="POST", code="Forbidden")
    entry = await remediation.handle(as_message(alert), rt)
    assert entry.outcome is Outcome.FAILED and f"HTTP {status}" in entry.error
    again = await remediation.handle(as_message(alert, 1), rt)
    assert again.outcome is Outcome.FAILED
    assert sync_calls(sim) == []


def test_function_app_declares_both_consumers() -> None:
    import function_app
    from local.devhost.functions import describe_functions

    triggers = {s.name: s.trigger.props for s in describe_functions(function_app.app)}
    for name, subscription in (("teams_alert", "teams"), ("remediate_alert", "remediation")):
        props = triggers[name]
        assert props["type"] == "serviceBusTrigger"
        assert props["topicName"] == "%DEVICE_ALERTS_TOPIC%"
        assert props["subscriptionName"] == subscription
        assert props["connection"] == "ServiceBusConnection"


def parse(alert: dict[str, Any]) -> Any:
    from shared.core.alert_view import parse_alert

    return parse_alert(alert)


# --- issue 13 item 2 through the real path: the simulator's managed device, the pipeline's alert
# on the topic, the remediation trigger. Agents from microsoft-graph-docs-contrib
# intune-devices-managementagenttype.md ("eas: The device is managed by Exchange server.",
# "googleCloudDevicePolicyController: The device is managed by Google's CloudDPC.", ...);
# configurationManagerClientEnabledFeatures from intune-devices-configurationmanagerclient
# enabledfeatures.md ("compliancePolicy: Whether compliance policy is managed by Intune").
CO_MANAGED_FEATURES = {
    "inventory": True,
    "modernApps": True,
    "resourceAccess": True,
    "deviceConfiguration": True,
    "windowsUpdateForBusiness": True,
}


@pytest.mark.parametrize(
    ("agent", "compliance_by_intune", "management", "code"),
    [
        ("mdm", None, "intune", "syncDevice"),
        ("googleCloudDevicePolicyController", None, "intune", "syncDevice"),
        ("eas", None, "exchange", Skip.NOT_INTUNE_MANAGED),
        ("configurationManagerClientMdm", True, "co_managed", "syncDevice"),
        ("configurationManagerClientMdm", False, "co_managed", Skip.COMPLIANCE_NOT_WITH_INTUNE),
    ],
)
async def test_the_pipelines_alert_is_remediated_only_where_intune_manages_compliance(
    runtimes: Callable[..., Runtime],
    sim: SimAdmin,
    stack: Any,
    agent: str,
    compliance_by_intune: bool | None,
    management: str,
    code: str,
) -> None:
    rt = runtimes("on")
    device = add_device(sim)
    features = (
        None
        if compliance_by_intune is None
        else {**CO_MANAGED_FEATURES, "compliancePolicy": compliance_by_intune}
    )
    sim.patch_managed_device(
        device["managedId"],
        sync_to_entra=False,
        managementAgent=agent,
        configurationManagerClientEnabledFeatures=features,
    )
    pipeline = await rt.pipeline()
    await pipeline.process(change(device["id"], Source.SYNC))
    sim.patch_managed_device(device["managedId"], complianceState="noncompliant")
    await pipeline.process(change(device["id"], Source.SYNC))
    (message,) = drain_subscription(
        stack.service_bus_connection, rt.settings.device_alerts_topic, "audit"
    )
    alert = body_json(message)
    assert alert["data"]["device"]["management"] == management

    entry = await remediation.handle(as_message(alert), rt)

    assert entry.code == code
    acted = code == "syncDevice"
    assert entry.outcome is (Outcome.ACTED if acted else Outcome.SKIPPED)
    assert sync_calls(sim) == ([device["managedId"]] if acted else [])


# --- early warnings (issue 12 item 4): at_risk on the simulator's Intune timeline -----------------


async def device_known(rt: Runtime, sim: SimAdmin, checked_in_hours_ago: float) -> dict[str, Any]:
    """A device devicemon has evaluated, its last Intune check-in that long ago (what the
    remediator reads from the device's DeviceState snapshot)."""
    device = add_device(sim)
    last = datetime.now(UTC) - timedelta(hours=checked_in_hours_ago)
    sim.patch_managed_device(device["managedId"], sync_to_entra=False, lastSyncDateTime=iso(last))
    await (await rt.pipeline()).process(change(device["id"], Source.SYNC))
    return device


def at_risk_for(device: dict[str, Any], *reasons: str) -> dict[str, Any]:
    return risk_alert(
        reasons,
        object_id=device["id"],
        device_id=device["deviceId"],
        managed_device_id=device["managedId"],
    )


@pytest.mark.parametrize(
    ("reason", "hours_ago", "code"),
    [
        ("GRACE_PERIOD_ENDING", 72, "syncDevice"),
        ("CHECKIN_OVERDUE", 20 * 24, "syncDevice"),
        ("GRACE_PERIOD_ENDING", 1, Skip.CHECKIN_RECENT),
        ("INTUNE_ENTRA_MISMATCH", 72, Skip.NO_FIX_FOR_REASONS),
        ("COMPLIANCE_ERROR_PENDING", 72, Skip.NO_FIX_FOR_REASONS),
    ],
)
async def test_an_at_risk_device_is_synced_once_only_when_its_last_check_in_is_old(
    runtimes: Callable[..., Runtime], sim: SimAdmin, reason: str, hours_ago: float, code: str
) -> None:
    rt = runtimes("on")
    device = await device_known(rt, sim, hours_ago)
    alert = at_risk_for(device, reason)
    first = await remediation.handle(as_message(alert), rt)
    again = await remediation.handle(as_message(alert, 1), rt)

    assert first.code == code and again.outcome is first.outcome
    acted = code == "syncDevice"
    assert first.outcome is (Outcome.ACTED if acted else Outcome.SKIPPED)
    assert sync_calls(sim) == ([device["managedId"]] if acted else [])
    assert first.reasons == reason and first.alert_type == "devicemon.eligibility.at_risk"
    if acted:
        assert f"Intune syncDevice for {reason} (last check-in" in first.reason


async def test_a_device_devicemon_holds_no_check_in_for_is_not_synced_blind(
    runtimes: Callable[..., Runtime], sim: SimAdmin
) -> None:
    rt = runtimes("on")
    device = add_device(sim)  # never evaluated: no DeviceState row
    entry = await remediation.handle(as_message(at_risk_for(device, "GRACE_PERIOD_ENDING")), rt)
    assert (entry.outcome, entry.code) == (Outcome.SKIPPED, Skip.CHECKIN_UNKNOWN)
    assert sync_calls(sim) == []


async def test_warnings_and_losses_share_one_hourly_budget(
    runtimes: Callable[..., Runtime], sim: SimAdmin
) -> None:
    rt = runtimes("on", limit=1)
    lost = await remediation.handle(as_message(lost_alert(sim)), rt)
    device = await device_known(rt, sim, 72)
    warned = await remediation.handle(as_message(at_risk_for(device, "CHECKIN_OVERDUE")), rt)
    assert (lost.outcome, warned.outcome) == (Outcome.ACTED, Outcome.RATE_LIMITED)
    assert len(sync_calls(sim)) == 1


async def test_the_pipelines_at_risk_alert_for_a_grace_period_is_remediated_on_the_tenants_clock(
    runtimes: Callable[..., Runtime], sim: SimAdmin, stack: Any
) -> None:
    """Intune's timeline on the simulator: a device that stopped checking in ten hours ago enters
    a two-day grace period; the pipeline warns at once (inside the 72 h lead) and the remediator,
    on the same clock, syncs it. (A device checking in every ~8 hours is left alone: the
    parametrized test above, with a check-in an hour old.)"""
    clock = SimClock(sim)
    rt = runtimes("on", clock=clock)
    pipeline, _ = await pipeline_on(rt, clock)
    device = add_device(sim)
    await pipeline.process(change(device["id"], Source.SYNC))
    sim.stop_checkins(device["managedId"])
    clock.advance(hours=10)
    sim.enter_grace(device["managedId"], expires=iso(later(clock, timedelta(days=2))))
    await pipeline.process(change(device["id"], Source.INTUNE_WATCH))
    (alert,) = alerts(rt, stack)
    assert alert["type"] == "devicemon.eligibility.at_risk"
    assert alert["data"]["risk"]["reasons"] == ["GRACE_PERIOD_ENDING"]

    entry = await remediation.handle(as_message(alert), rt)

    assert entry.outcome is Outcome.ACTED
    assert "(last check-in 10 hours ago)" in entry.reason
    assert sync_calls(sim) == [device["managedId"]]


async def test_an_at_risk_alert_on_the_topic_reaches_the_remediation_trigger(
    runtimes: Callable[..., Runtime], sim: SimAdmin, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published on the broker's topic, read by function_app's remediate_alert in the dev host."""
    rt = runtimes("on")
    device = await device_known(rt, sim, 30)
    async with consumer_host(rt, stack, monkeypatch, "remediate_alert"):
        await rt.publisher().publish(at_risk_for(device, "GRACE_PERIOD_ENDING"))
        deadline = asyncio.get_running_loop().time() + 60
        while not sync_calls(sim):
            assert asyncio.get_running_loop().time() < deadline, "not synced"
            await asyncio.sleep(0.05)
    assert sync_calls(sim) == [device["managedId"]]
    (entry,) = await (await rt.remediator()).history(device["id"])
    assert entry.outcome is Outcome.ACTED
