"""The at_risk and at_risk_cleared events (issue 12 item 4): when an episode opens and closes,
what the alert says, that it validates against docs/alert.schema.json, and its filterable
properties. Devices and Intune records in Graph's documented shapes (as in test_risk.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shared.core.advice import Origin, risk_action
from shared.core.evaluation import evaluate, fingerprint
from shared.core.events import (
    PreviousVerdict,
    application_properties,
    build_alert,
    event_id,
    transition_of,
    verdict_of,
)
from shared.core.models import Evaluation, Observation, PolicyRef, Source, Transition
from shared.core.records import DeviceRecord, record_of
from shared.core.snapshots import device_from_json, managed_device_from_json
from tests.alert_helpers import ALERT_FORMAT_VALIDATOR
from tests.shared.core.test_risk import (
    DAY,
    ENTRA_JOINED,
    HOUR,
    LEAD,
    NOW,
    in_grace,
    intune,
    options,
)

GRACE_ENDS = NOW + DAY


def validate(alert: dict[str, Any]) -> None:
    ALERT_FORMAT_VALIDATOR.validate(alert)


def observe(device: dict[str, Any], managed: dict[str, Any] | None) -> tuple[Any, ...]:
    d = device_from_json(device)
    m = managed_device_from_json(managed) if managed else None
    evaluation = evaluate(d, m, options(), NOW)
    return d, m, evaluation, fingerprint(d, m, evaluation)


def stored(device: dict[str, Any], managed: dict[str, Any] | None) -> DeviceRecord:
    d, m, evaluation, digest = observe(device, managed)
    return record_of(Observation(d, m, evaluation, NOW - HOUR, Source.SYNC), 4, digest)


HEALTHY = (ENTRA_JOINED, intune("compliant"))
GRACE = (ENTRA_JOINED, in_grace(GRACE_ENDS))
NONCOMPLIANT = ({**ENTRA_JOINED, "isCompliant": False}, intune("noncompliant"))
# Intune says noncompliant, Entra has not caught up: at risk at once, no deadline.
MISMATCH = (ENTRA_JOINED, intune("noncompliant"))


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (HEALTHY, GRACE, Transition.AT_RISK),
        (HEALTHY, MISMATCH, Transition.AT_RISK),
        (GRACE, MISMATCH, Transition.CHANGED),  # the episode goes on: no second at_risk
        (GRACE, GRACE, Transition.UNCHANGED),
        (GRACE, HEALTHY, Transition.AT_RISK_CLEARED),  # fixed in time
        (GRACE, NONCOMPLIANT, Transition.LOST),  # lost during the episode: no clearing
        (NONCOMPLIANT, GRACE, Transition.RESTORED),  # restored into a risk: the restored alert
        (HEALTHY, HEALTHY, Transition.UNCHANGED),
    ],
)
def test_an_episode_opens_once_and_closes_once(
    before: tuple[Any, ...], after: tuple[Any, ...], expected: Transition
) -> None:
    _, _, evaluation, digest = observe(*after)
    assert transition_of(stored(*before), evaluation, digest) is expected


def test_a_first_sighting_at_risk_is_a_baseline() -> None:
    _, _, evaluation, digest = observe(*GRACE)
    assert evaluation.at_risk
    assert transition_of(None, evaluation, digest) is Transition.FIRST_SEEN


def test_a_record_from_before_risks_existed_opens_an_episode() -> None:
    old = replace(stored(*HEALTHY), risk_reasons=(), deadline=None)
    _, _, evaluation, digest = observe(*GRACE)
    assert transition_of(old, evaluation, digest) is Transition.AT_RISK


def alert(
    transition: Transition,
    after: tuple[Any, ...],
    previous: PreviousVerdict,
    lead: timedelta = LEAD,
    judged: Evaluation | None = None,
) -> dict[str, Any]:
    d, m, evaluation, _ = observe(*after)
    return build_alert(
        transition=transition,
        version=5,
        device=d,
        managed=m,
        evaluation=judged or evaluation,
        previous=previous,
        source=Source.DEADLINE,
        detected_at=NOW,
        correlation_id="corr-9",
        event_source="urn:devicemon",
        at_risk_lead=lead,
    )


def test_at_risk_says_when_access_ends_and_what_to_do() -> None:
    raised = alert(Transition.AT_RISK, GRACE, verdict_of(stored(*HEALTHY)))
    validate(raised)
    data = raised["data"]
    assert raised["type"] == "devicemon.eligibility.at_risk"
    assert raised["id"] == event_id(ENTRA_JOINED["id"], 5, Transition.AT_RISK)
    assert data["severity"] == "warning"
    assert data["current"]["riskReasons"] == ["GRACE_PERIOD_ENDING"]
    assert data["current"]["deadline"] == "2026-12-02T12:00:00Z"
    assert data["risk"]["reasons"] == ["GRACE_PERIOD_ENDING"]
    assert data["risk"]["deadline"] == "2026-12-02T12:00:00Z"
    assert data["risk"]["leadHours"] == 72
    (advice,) = data["risk"]["advice"]
    assert advice["reason"] == "GRACE_PERIOD_ENDING" and "before the deadline" in advice["action"]
    assert data["detection"]["source"] == "deadline"
    assert application_properties(raised) == {
        "type": "devicemon.eligibility.at_risk",
        "severity": "warning",
        "joinType": "entra_joined",
        "reasons": "",
        "policy": "compliant",
        "deviceId": ENTRA_JOINED["id"],
        "riskReasons": "GRACE_PERIOD_ENDING",
        "deadline": "2026-12-02T12:00:00Z",
    }


def test_a_risk_without_a_deadline_says_null() -> None:
    raised = alert(Transition.AT_RISK, MISMATCH, verdict_of(stored(*HEALTHY)))
    validate(raised)
    assert raised["data"]["risk"]["deadline"] is None
    assert application_properties(raised)["deadline"] == ""


def test_cleared_names_the_risks_that_went_away() -> None:
    cleared = alert(Transition.AT_RISK_CLEARED, HEALTHY, verdict_of(stored(*GRACE)))
    validate(cleared)
    data = cleared["data"]
    assert (cleared["type"], data["severity"]) == ("devicemon.eligibility.at_risk_cleared", "info")
    assert data["current"]["riskReasons"] == [] and data["current"]["deadline"] is None
    assert data["risk"]["reasons"] == ["GRACE_PERIOD_ENDING"]
    assert data["risk"]["deadline"] == "2026-12-02T12:00:00Z"
    assert data["risk"]["advice"] == []
    props = application_properties(cleared)
    assert (props["riskReasons"], props["deadline"]) == (
        "GRACE_PERIOD_ENDING",
        "2026-12-02T12:00:00Z",
    )


def test_the_policies_that_judged_are_in_every_alert() -> None:
    blocking = PolicyRef("p-1", "Require compliant", ("NOT_COMPLIANT",), ("users",))
    evaluation = observe(*NONCOMPLIANT)[2]
    judged = replace(evaluation, blocking_policies=(blocking,), judged_by="ca_policies")
    lost = alert(Transition.LOST, NONCOMPLIANT, PreviousVerdict(True, (), NOW - DAY), judged=judged)
    validate(lost)
    assert "risk" not in lost["data"]
    assert lost["data"]["current"]["blockingPolicies"] == [
        {
            "id": "p-1",
            "displayName": "Require compliant",
            "reasons": ["NOT_COMPLIANT"],
            "conditionalOn": ["users"],
        }
    ]
    assert lost["data"]["current"]["judgedBy"] == "ca_policies"


@pytest.mark.parametrize(
    ("transition", "mutate"),
    [
        (Transition.AT_RISK, lambda a: a["data"]["current"].update(riskReasons=[])),
        (Transition.AT_RISK, lambda a: a["data"].pop("risk")),
        (Transition.AT_RISK, lambda a: a["data"].update(severity="high")),
        (Transition.AT_RISK_CLEARED, lambda a: a["data"]["previous"].update(eligible=False)),
    ],
)
def test_the_schema_refuses_an_incoherent_risk_event(transition: Transition, mutate: Any) -> None:
    before = stored(*HEALTHY) if transition is Transition.AT_RISK else stored(*GRACE)
    after = GRACE if transition is Transition.AT_RISK else HEALTHY
    broken = alert(transition, after, verdict_of(before))
    mutate(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_lead_hours_follow_the_setting() -> None:
    previous = verdict_of(stored(*HEALTHY))
    raised = alert(Transition.AT_RISK, GRACE, previous, lead=timedelta(hours=24))
    assert raised["data"]["risk"]["leadHours"] == 24


def documented_examples() -> list[dict[str, Any]]:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "alerts.md").read_text()
    blocks = doc.split("```json\n")[1:]
    return [json.loads(block[: block.index("```")]) for block in blocks]


def test_the_documented_examples_of_each_event_are_valid_and_say_what_the_code_says() -> None:
    examples = {example["type"]: example for example in documented_examples()}
    assert {"devicemon.eligibility.at_risk", "devicemon.eligibility.at_risk_cleared"} <= set(
        examples
    )
    for example in examples.values():
        validate(example)
    raised = examples["devicemon.eligibility.at_risk"]["data"]
    origin = Origin(
        join_type=raised["device"]["joinType"], management=raised["device"]["management"]
    )
    assert raised["risk"]["advice"] == [
        {"reason": code, "action": risk_action(code, origin)} for code in raised["risk"]["reasons"]
    ]
