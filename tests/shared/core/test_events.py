from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from shared.core.advice import why
from shared.core.evaluation import EvaluationOptions, evaluate
from shared.core.events import PreviousVerdict, application_properties, build_alert, event_id
from shared.core.models import DeviceSnapshot, ManagedDeviceSnapshot, Policy, Source, Transition
from tests.alert_helpers import ALERT_FORMAT_VALIDATOR

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def validate(alert: dict) -> None:
    ALERT_FORMAT_VALIDATOR.validate(alert)


def alert_for(
    transition: Transition, device: DeviceSnapshot, managed: ManagedDeviceSnapshot | None = None
):
    evaluation = evaluate(device, managed, EvaluationOptions(Policy.COMPLIANT_OR_HYBRID), NOW)
    previous = PreviousVerdict(
        eligible=transition is Transition.LOST,
        reasons=() if transition is Transition.LOST else ("NOT_COMPLIANT", "NOT_HYBRID_JOINED"),
        evaluated_at=NOW,
    )
    return build_alert(
        transition=transition,
        version=3,
        device=device,
        managed=managed,
        evaluation=evaluation,
        previous=previous,
        source=Source.NOTIFICATION,
        detected_at=NOW,
        correlation_id="corr-1",
        event_source="urn:devicemon",
    )


LOST_DEVICE = DeviceSnapshot(
    "obj-1", "dev-1", "LAPTOP-1", True, False, True, "AzureAd", "Windows", "10.0.22631"
)
RESTORED_DEVICE = DeviceSnapshot(
    "obj-1", "dev-1", "LAPTOP-1", True, True, True, "AzureAd", "Windows", "10.0.22631"
)


def test_lost_alert_validates_and_carries_the_filterable_properties() -> None:
    managed = ManagedDeviceSnapshot(
        "md-1", "noncompliant", "mdm", None, NOW, "adele@contoso.example"
    )
    alert = alert_for(Transition.LOST, LOST_DEVICE, managed)
    validate(alert)
    assert alert["type"] == "devicemon.eligibility.lost"
    assert alert["subject"] == "devices/obj-1"
    assert alert["data"]["device"]["userPrincipalName"] == "adele@contoso.example"
    assert application_properties(alert) == {
        "type": "devicemon.eligibility.lost",
        "severity": "high",
        "joinType": "entra_joined",
        "reasons": "NOT_COMPLIANT,NOT_HYBRID_JOINED",
        "policy": "compliant_or_hybrid",
        "deviceId": "obj-1",
        "riskReasons": "",
        "deadline": "",
    }


def test_restored_alert_filters_on_the_reasons_it_resolved() -> None:
    alert = alert_for(Transition.RESTORED, RESTORED_DEVICE)
    validate(alert)
    assert alert["data"]["severity"] == "info"
    assert application_properties(alert)["reasons"] == "NOT_COMPLIANT,NOT_HYBRID_JOINED"


def test_deleted_device_alert_validates() -> None:
    validate(
        alert_for(
            Transition.LOST,
            DeviceSnapshot("obj-9", display_name="OLD-PC", trust_type="ServerAd", deleted=True),
        )
    )


def test_event_ids_are_deterministic_and_distinct() -> None:
    assert event_id("d", 2, Transition.LOST) == event_id("d", 2, Transition.LOST)
    assert (
        len(
            {
                event_id("d", 2, Transition.LOST),
                event_id("d", 3, Transition.LOST),
                event_id("e", 2, Transition.LOST),
                event_id("d", 2, Transition.RESTORED),
            }
        )
        == 4
    )


@pytest.mark.parametrize(
    "transition", [Transition.FIRST_SEEN, Transition.CHANGED, Transition.UNCHANGED]
)
def test_other_transitions_raise_no_alert(transition: Transition) -> None:
    with pytest.raises(ValueError, match="does not raise an alert"):
        alert_for(transition, LOST_DEVICE)


def test_schema_rejects_a_lost_alert_without_reasons() -> None:
    alert = alert_for(Transition.LOST, LOST_DEVICE)
    alert["data"]["current"]["reasons"] = []
    with pytest.raises(jsonschema.ValidationError):
        validate(alert)


def test_the_documented_example_is_a_valid_alert() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "alerts.md").read_text()
    text = doc[doc.index("```json\n") + len("```json\n") :]
    example = json.loads(text[: text.index("```")])
    validate(example)
    data = example["data"]
    assert data["current"]["summary"] == why(data["policy"], data["current"]["reasons"])
