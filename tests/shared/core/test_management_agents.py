"""Issue 13 item 2: every documented managementAgentType, who it says manages the device, and
whether remediation may ask Intune to sync it. Payloads are managedDevice JSON in the shape of
microsoft-graph-docs-contrib `intune-devices-manageddevice.md` (JSON representation, trimmed)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.consumers.remediation_plan import Mode, Outcome, Skip, plan
from shared.core.alert_view import parse_alert
from shared.core.evaluation import EvaluationOptions, compliance_workload, evaluate
from shared.core.models import Management, Policy
from shared.core.snapshots import device_from_json, managed_device_from_json
from tests.shared.core.payloads import DEVICE_GET as DEVICE
from tests.shared.core.payloads import NOW
from tests.shared.core.payloads import lost_alert as alert_of

# api-reference/v1.0/resources/intune-devices-managementagenttype.md, every member, with the
# doc's description, and what devicemon makes of it.
DOCUMENTED: list[tuple[str, str, Management]] = [
    ("eas", "The device is managed by Exchange server.", Management.EXCHANGE),
    ("mdm", "The device is managed by Intune MDM.", Management.INTUNE),
    ("easMdm", "The device is managed by both Exchange server and Intune MDM.", Management.INTUNE),
    ("intuneClient", "Intune client managed.", Management.INTUNE),
    ("easIntuneClient", "The device is EAS and Intune client dual managed.", Management.INTUNE),
    (
        "configurationManagerClient",
        "The device is managed by Configuration Manager.",
        Management.CONFIGURATION_MANAGER,
    ),
    (
        "configurationManagerClientMdm",
        "The device is managed by Configuration Manager and MDM.",
        Management.CO_MANAGED,
    ),
    (
        "configurationManagerClientMdmEas",
        "The device is managed by Configuration Manager, MDM and Eas.",
        Management.CO_MANAGED,
    ),
    ("unknown", "Unknown management agent type.", Management.UNKNOWN),
    ("jamf", "The device attributes are fetched from Jamf.", Management.JAMF),
    # Google's CloudDPC is the device policy controller Intune provisions for Android Enterprise
    # corporate-owned devices (memdocs android-dedicated-devices-fully-managed-enroll.md: the
    # zero-touch extras name com.google.android.apps.work.clouddpc with Intune's token).
    (
        "googleCloudDevicePolicyController",
        "The device is managed by Google's CloudDPC.",
        Management.INTUNE,
    ),
]


def managed(agent: str, **extra: Any) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.managedDevice",
        "id": "705c034c-034c-705c-4c03-5c704c035c70",
        "deviceName": "DESKTOP-858MANH",
        "complianceState": "noncompliant",
        "managementAgent": agent,
        "azureADDeviceId": DEVICE["deviceId"],
        "userPrincipalName": "adele.vance@contoso.example",
        **extra,
    }


def lost_alert(record: dict[str, Any]) -> dict[str, Any]:
    return alert_of(device_from_json(DEVICE), managed_device_from_json(record), Policy.COMPLIANT)


@pytest.mark.parametrize(("agent", "doc", "expected"), DOCUMENTED)
def test_every_documented_agent_names_who_manages_the_device(
    agent: str, doc: str, expected: Management
) -> None:
    device = device_from_json(DEVICE)
    result = evaluate(device, managed_device_from_json(managed(agent)), EvaluationOptions(), NOW)
    if expected is Management.UNKNOWN:
        # "Unknown management agent type": the Entra object's own MDM facts decide, and this
        # one names no MDM app.
        assert result.management is Management.UNKNOWN
    else:
        assert result.management is expected, doc


@pytest.mark.parametrize(("agent", "doc", "expected"), DOCUMENTED)
def test_remediation_syncs_only_what_intune_manages(
    agent: str, doc: str, expected: Management
) -> None:
    decided = plan(parse_alert(lost_alert(managed(agent))), Mode.ON)
    if expected is Management.INTUNE:
        assert decided.acts, doc
    elif expected is Management.CO_MANAGED:
        # No configurationManagerClientEnabledFeatures: the workload is not known to be Intune's.
        assert (decided.outcome, decided.code) == (Outcome.SKIPPED, Skip.COMPLIANCE_NOT_WITH_INTUNE)
    else:
        assert (decided.outcome, decided.code) == (Outcome.SKIPPED, Skip.NOT_INTUNE_MANAGED), doc
        assert expected.value in decided.reason


# configurationManagerClientEnabledFeatures (intune-devices-configurationmanagerclientenabled
# features.md): "compliancePolicy | Boolean | Whether compliance policy is managed by Intune".
@pytest.mark.parametrize(
    ("features", "workload", "acts"),
    [
        (
            {
                "@odata.type": "microsoft.graph.configurationManagerClientEnabledFeatures",
                "inventory": True,
                "modernApps": True,
                "resourceAccess": True,
                "deviceConfiguration": True,
                "compliancePolicy": True,
                "windowsUpdateForBusiness": True,
            },
            "intune",
            True,
        ),
        (
            {
                "@odata.type": "microsoft.graph.configurationManagerClientEnabledFeatures",
                "inventory": False,
                "modernApps": False,
                "resourceAccess": False,
                "deviceConfiguration": False,
                "compliancePolicy": False,
                "windowsUpdateForBusiness": False,
            },
            "configuration_manager",
            False,
        ),
        (None, None, False),
    ],
)
@pytest.mark.parametrize(
    "agent", ["configurationManagerClientMdm", "configurationManagerClientMdmEas"]
)
def test_a_co_managed_device_is_synced_only_with_the_compliance_workload_on_intune(
    agent: str, features: dict[str, Any] | None, workload: str | None, acts: bool
) -> None:
    record = managed(agent, configurationManagerClientEnabledFeatures=features)
    intune = managed_device_from_json(record)
    assert compliance_workload(Management.CO_MANAGED, intune) == workload
    alert = lost_alert(record)
    assert alert["data"]["device"]["complianceWorkload"] == workload
    decided = plan(parse_alert(alert), Mode.ON)
    assert decided.acts is acts
    if not acts:
        assert decided.code == Skip.COMPLIANCE_NOT_WITH_INTUNE


@pytest.mark.parametrize(
    ("agent", "words"),
    [
        ("configurationManagerClientMdm", "Configuration Manager"),
        ("jamf", "Jamf Pro"),
        ("eas", "enroll it in Intune"),
        ("configurationManagerClient", "enroll it in Intune"),
        ("mdm", "Open the device in Intune"),
    ],
)
def test_the_advice_names_who_can_fix_compliance(agent: str, words: str) -> None:
    features = (
        {"compliancePolicy": False} if agent.startswith("configurationManagerClientMdm") else None
    )
    alert = lost_alert(managed(agent, configurationManagerClientEnabledFeatures=features))
    (advice,) = alert["data"]["current"]["advice"]
    assert advice["reason"] == "NOT_COMPLIANT" and words in advice["action"]


def test_a_workload_only_matters_for_a_co_managed_device() -> None:
    record = managed_device_from_json(
        managed("mdm", configurationManagerClientEnabledFeatures={"compliancePolicy": False})
    )
    assert compliance_workload(Management.INTUNE, record) is None
