"""A lost alert explained by compliance names the failing policies and settings, through the real
path: the pipeline reads Intune (Graph simulator, real msgraph-sdk), stores the alert in its
outbox (Azurite) and publishes it (AMQP broker); the audit subscription receives it.

Policy state payloads follow the deviceCompliancePolicyState list example and
intune-deviceconfig-devicecompliancepolicysettingstate.md (microsoft-graph-docs-contrib).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.graphsim.admin import SimAdmin
from local.graphsim.compliance_states import set_policy_states
from shared.core.models import Transition
from shared.runtime import Runtime
from tests.alert_helpers import ALERT_VALIDATOR
from tests.graph_helpers import add_device
from tests.servicebus_helpers import body_json, drain_subscription
from tests.shared.processing.test_pipeline import Crash, change, crashing_once

LIST_ROUTE = "GET /deviceManagement/managedDevices/{id}/deviceCompliancePolicyStates"
BASELINE = "3b7c9d2e-5f41-4a8b-9c6d-7e8f9a0b1c2d"
BITLOCKER = "Windows10CompliancePolicy.BitLockerEnabled"


def bitlocker_off(state: str = "nonCompliant") -> list[dict[str, Any]]:
    return [
        {
            "id": BASELINE,
            "displayName": "Windows 11 security baseline",
            "state": state,
            "platformType": "windows10AndLater",
            "version": 2,
            "settingStates": [
                {
                    "setting": BITLOCKER,
                    "settingName": "BitLockerEnabled",
                    "state": state,
                    "userPrincipalName": "adele.vance@contoso.example",
                    "sources": [{"id": BASELINE, "displayName": "Windows 11 security baseline"}],
                },
                {"setting": "Windows10CompliancePolicy.SecureBootEnabled", "state": "compliant"},
            ],
        }
    ]


def published(runtime: Runtime, stack: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(alert, application properties) of every alert on the topic, each checked by the schema."""
    out = []
    for message in drain_subscription(
        stack.service_bus_connection, runtime.settings.device_alerts_topic, "audit"
    ):
        alert = body_json(message)
        ALERT_VALIDATOR.validate(alert)
        props = {
            k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
            for k, v in (message.application_properties or {}).items()
        }
        out.append((alert, props))
    return out


def compliance_reads(sim: SimAdmin) -> int:
    return int(sim.requests()["routes"].get(LIST_ROUTE, 0))


async def lose_compliance(runtime: Runtime, sim: SimAdmin) -> Any:
    """A baselined compliant device that Intune now marks not compliant (not yet processed)."""
    device = add_device(sim)
    await (await runtime.pipeline()).process(change(device["id"]))
    sim.patch_device(device["id"], notify=False, isCompliant=False)
    return device


async def test_a_noncompliant_device_alert_names_the_failing_policy_and_setting(
    runtime: Runtime, sim: SimAdmin, stack: Any
) -> None:
    device = await lose_compliance(runtime, sim)
    set_policy_states(sim, device["managedId"], bitlocker_off())
    sim.reset_requests()

    outcome = await (await runtime.pipeline()).process(change(device["id"]))

    assert outcome.transition is Transition.LOST
    [(alert, props)] = published(runtime, stack)
    compliance = alert["data"]["compliance"]
    assert compliance["failingPolicies"] == [
        {"id": BASELINE, "displayName": "Windows 11 security baseline", "state": "nonCompliant"}
    ]
    [setting] = compliance["failingSettings"]
    assert (setting["setting"], setting["state"], setting["policyId"], setting["policyName"]) == (
        BITLOCKER,
        "nonCompliant",
        BASELINE,
        "Windows 11 security baseline",
    )
    assert "BitLocker" in setting["sentence"]
    assert "Turn on BitLocker" in setting["fix"]
    assert "unavailable" not in compliance
    assert props["failingSettings"] == 1
    assert compliance_reads(sim) == 1  # one device, one read
    assert (await (await runtime.bookkeeping()).compliance_read_permission()).status == "granted"
    # Kept with the state while the device stays ineligible: the report shows it without a read.
    stored = await (await runtime.store()).get_state(device["id"])
    assert stored is not None and json.loads(stored.compliance_details) == compliance


async def test_error_and_unknown_settings_are_carried_as_intune_names_them(
    runtime: Runtime, sim: SimAdmin, stack: Any
) -> None:
    device = await lose_compliance(runtime, sim)
    states = bitlocker_off("error")
    states[0]["settingStates"].append(
        {"setting": "Windows10CompliancePolicy.ContosoNewCheck", "state": "nonCompliant"}
    )
    set_policy_states(sim, device["managedId"], states)

    await (await runtime.pipeline()).process(change(device["id"]))

    [(alert, _)] = published(runtime, stack)
    settings = alert["data"]["compliance"]["failingSettings"]
    assert [(s["setting"], s["state"]) for s in settings] == [
        (BITLOCKER, "error"),
        ("Windows10CompliancePolicy.ContosoNewCheck", "nonCompliant"),
    ]
    assert "Windows10CompliancePolicy.ContosoNewCheck" in settings[1]["sentence"]


async def test_without_the_permission_the_alert_says_why_and_is_still_sent(
    runtime: Runtime, sim: SimAdmin, stack: Any
) -> None:
    device = await lose_compliance(runtime, sim)
    set_policy_states(sim, device["managedId"], bitlocker_off())
    sim.add_fault(
        status=403,
        count=1,
        code="Forbidden",
        route="/deviceManagement/managedDevices/{id}/deviceCompliancePolicyStates",
    )

    outcome = await (await runtime.pipeline()).process(change(device["id"]))

    assert outcome.transition is Transition.LOST
    [(alert, props)] = published(runtime, stack)
    compliance = alert["data"]["compliance"]
    assert set(compliance) == {"unavailable"}  # the lists are absent, not empty
    assert compliance["unavailable"]["reason"] == "permission_missing"
    assert "DeviceManagementConfiguration.Read.All" in compliance["unavailable"]["detail"]
    assert "failingSettings" not in props
    assert alert["data"]["current"]["reasons"] == ["NOT_COMPLIANT", "NOT_HYBRID_JOINED"]
    # Health's evidence that the permission is missing (shared/views/health.py names it).
    mark = await (await runtime.bookkeeping()).compliance_read_permission()
    assert mark.status == "missing"
    assert "DeviceManagementConfiguration.Read.All" in mark.detail


async def test_other_losses_and_restores_do_not_read_intune(
    runtime: Runtime, sim: SimAdmin, stack: Any
) -> None:
    device = add_device(sim)
    pipeline = await runtime.pipeline()
    await pipeline.process(change(device["id"]))
    sim.reset_requests()

    sim.patch_device(device["id"], notify=False, accountEnabled=False)
    await pipeline.process(change(device["id"]))
    sim.patch_device(device["id"], notify=False, accountEnabled=True)
    await pipeline.process(change(device["id"]))

    alerts = [alert for alert, _ in published(runtime, stack)]
    assert [a["type"] for a in alerts] == [
        "devicemon.eligibility.lost",
        "devicemon.eligibility.restored",
    ]
    assert all("compliance" not in a["data"] for a in alerts)
    assert compliance_reads(sim) == 0


@pytest.mark.parametrize("step", ["after_commit", "before_publish"])
async def test_a_redelivery_republishes_the_stored_details_without_a_second_read(
    runtime: Runtime, sim: SimAdmin, stack: Any, step: str
) -> None:
    device = await lose_compliance(runtime, sim)
    set_policy_states(sim, device["managedId"], bitlocker_off())
    flaky = await crashing_once(runtime, step)
    flaky._compliance = (await runtime.pipeline())._compliance
    message = change(device["id"])
    with pytest.raises(Crash):
        await flaky.process(message)
    # Intune moves on between the crash and the redelivery.
    set_policy_states(sim, device["managedId"], [])
    sim.reset_requests()
    await flaky.process(message)

    [(alert, _)] = published(runtime, stack)
    [setting] = alert["data"]["compliance"]["failingSettings"]
    assert setting["setting"] == BITLOCKER
    # The alert was committed with its details: the redelivery publishes it and reads nothing.
    assert compliance_reads(sim) == 0
