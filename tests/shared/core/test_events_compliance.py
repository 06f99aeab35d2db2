"""Which alerts carry Intune's failing compliance settings, and how they sit in the alert (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from shared.core.compliance_details import (
    UNAVAILABLE_REASONS,
    ComplianceDetails,
    parse_policy_states,
    unavailable,
)
from shared.core.evaluation import EvaluationOptions, evaluate
from shared.core.events import (
    PreviousVerdict,
    application_properties,
    build_alert,
    compliance_details_for,
    with_compliance,
)
from shared.core.models import DeviceSnapshot, ManagedDeviceSnapshot, Policy, Source, Transition
from tests.alert_helpers import ALERT_FORMAT_VALIDATOR, ALERT_VALIDATOR

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[3] / "docs" / "alert.schema.json").read_text()
)
NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
NONCOMPLIANT = DeviceSnapshot(
    "obj-1", "dev-1", "LAPTOP-1", True, False, True, "AzureAd", "Windows", "10.0.22631"
)
DISABLED = DeviceSnapshot(
    "obj-1", "dev-1", "LAPTOP-1", False, True, True, "AzureAd", "Windows", "10.0.22631"
)
MANAGED = ManagedDeviceSnapshot("md-1", "noncompliant", "mdm", None, NOW, "adele@contoso.example")
BODY = {
    "value": [
        {
            "id": "p-1",
            "displayName": "Windows 11 security baseline",
            "state": "nonCompliant",
            "settingStates": [
                {"setting": "Windows10CompliancePolicy.BitLockerEnabled", "state": "nonCompliant"},
                {"setting": "Windows10CompliancePolicy.RtpEnabled", "state": "error"},
            ],
        }
    ]
}


def lost(device: DeviceSnapshot, managed: ManagedDeviceSnapshot | None) -> dict:
    evaluation = evaluate(device, managed, EvaluationOptions(Policy.COMPLIANT_OR_HYBRID), NOW)
    return build_alert(
        transition=Transition.LOST,
        version=3,
        device=device,
        managed=managed,
        evaluation=evaluation,
        previous=PreviousVerdict(True, (), NOW),
        source=Source.SYNC,
        detected_at=NOW,
        correlation_id="c",
        event_source="urn:devicemon",
    )


@pytest.mark.parametrize(
    ("transition", "device", "managed", "asks"),
    [
        (Transition.LOST, NONCOMPLIANT, MANAGED, True),
        (Transition.LOST, NONCOMPLIANT, None, False),  # no Intune record to read
        (Transition.LOST, DISABLED, MANAGED, False),  # a loss compliance does not explain
        (Transition.RESTORED, NONCOMPLIANT, MANAGED, False),
        (Transition.CHANGED, NONCOMPLIANT, MANAGED, False),
    ],
)
def test_only_a_loss_explained_by_compliance_asks_intune(
    transition: Transition,
    device: DeviceSnapshot,
    managed: ManagedDeviceSnapshot | None,
    asks: bool,
) -> None:
    evaluation = evaluate(device, managed, EvaluationOptions(Policy.COMPLIANT_OR_HYBRID), NOW)
    assert compliance_details_for(transition, evaluation, managed) == ("md-1" if asks else None)


@pytest.mark.parametrize(
    "details",
    [parse_policy_states(BODY), ComplianceDetails()]
    + [unavailable(reason, "why") for reason in UNAVAILABLE_REASONS],
)
def test_alerts_with_details_validate_and_properties_carry_only_a_count(
    details: ComplianceDetails,
) -> None:
    alert = with_compliance(lost(NONCOMPLIANT, MANAGED), details)
    ALERT_FORMAT_VALIDATOR.validate(alert)
    props = application_properties(alert)
    if details.unavailable is None:
        assert props["failingSettings"] == len(details.failing_settings)
    else:
        assert "failingSettings" not in props
    assert all(len(str(v)) < 200 for v in props.values())


@pytest.mark.parametrize(
    "bad",
    [
        {"failingPolicies": []},  # one list without the other
        {"unavailable": {"reason": "timeout", "detail": ""}, "failingSettings": []},
        {"unavailable": {"reason": "gone", "detail": ""}},
        {},
    ],
)
def test_the_schema_rejects_lists_beside_unavailable_or_half_the_lists(bad: dict) -> None:
    alert = lost(NONCOMPLIANT, MANAGED)
    alert["data"]["compliance"] = bad
    with pytest.raises(jsonschema.ValidationError):
        ALERT_VALIDATOR.validate(alert)


def test_the_schema_names_every_reason_the_details_can_give() -> None:
    compliance = SCHEMA["properties"]["data"]["properties"]["compliance"]
    assert compliance["properties"]["unavailable"]["properties"]["reason"]["enum"] == list(
        UNAVAILABLE_REASONS
    )
