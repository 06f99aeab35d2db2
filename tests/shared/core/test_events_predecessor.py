"""Issue 13 item 1, the follow-up: a hybrid device deleted in Entra comes back from Entra Connect
as a new object with the same deviceId, Pending; its first sighting must alert, not be a quiet
baseline. SupportArticles-docs `pending-devices.md`: "Microsoft Entra Connect Sync recognizes this
change as the device object being deleted ... Therefore, it deletes the device in Microsoft Entra
ID ... Microsoft Entra Connect Sync creates a pending device object for this device ... The
device fails to complete the device registration process because it was registered previously."
entra-docs `concept-soft-delete-devices.md`: Entra Connect recreates a device "matching on the same
DeviceId". Payloads in Graph's device JSON shape."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from shared.core.evaluation import EvaluationOptions, evaluate, fingerprint
from shared.core.events import (
    PreviousVerdict,
    predecessor_verdict,
    transition_of,
    wants_predecessor,
)
from shared.core.models import Policy, Transition
from shared.core.records import DeviceRecord
from shared.core.snapshots import device_from_json
from tests.alert_helpers import ALERT_FORMAT_VALIDATOR
from tests.shared.core.payloads import NOW, lost_alert

DEVICE_ID = "6fa60d52-01e7-4b18-8055-4759461fc16b"
OLD_OBJECT = "000005c3-b7a6-4c61-89fc-80bf5ccfc366"
# The re-created object: a new id, the same deviceId, Pending (profileType null, no
# alternativeSecurityIds: how-to-hybrid-join-verify.yml).
PENDING: dict[str, Any] = {
    "id": "1f0c7a52-9f43-4d6e-b1a0-6d8a3c2e5b71",
    "deviceId": DEVICE_ID,
    "displayName": "DESKTOP-858MANH",
    "accountEnabled": True,
    "isCompliant": None,
    "trustType": "ServerAd",
    "operatingSystem": "Windows",
    "operatingSystemVersion": "10.0.19043.1165",
    "profileType": None,
    "alternativeSecurityIds": [],
    "onPremisesSyncEnabled": True,
}


def record(
    object_id: str, *, eligible: bool, deleted: bool = False, hours_ago: int = 1
) -> DeviceRecord:
    return DeviceRecord(
        object_id=object_id, version=3, evaluated_at=NOW - timedelta(hours=hours_ago),
        eligible=eligible, reasons=("DEVICE_DELETED",) if deleted else (), warnings=(),
        policy="compliant_or_hybrid", join_type="hybrid_joined", compliance="unknown",
        management="unknown", display_name="DESKTOP-858MANH", device_id=DEVICE_ID,
        trust_type="ServerAd", operating_system="Windows", operating_system_version="10.0",
        account_enabled=True, deleted=deleted, grace_period_expires=None,
        user_principal_name=None, managed_device_id=None, source="sync", correlation_id="",
        fingerprint="old",
    )  # fmt: skip


def pending_verdict():
    device = device_from_json(PENDING)
    return device, evaluate(device, None, EvaluationOptions(Policy.COMPLIANT_OR_HYBRID), NOW)


def test_a_pending_first_sighting_looks_for_its_previous_object() -> None:
    device, evaluation = pending_verdict()
    assert wants_predecessor(device, evaluation)
    registered = {**PENDING, "profileType": "RegisteredDevice"}
    other = device_from_json(registered)
    assert not wants_predecessor(other, evaluate(other, None, EvaluationOptions(), NOW))
    assert not wants_predecessor(replace(device, device_id=None), evaluation)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        # The old object still there (the delta's @removed not processed yet): its verdict.
        ([record(OLD_OBJECT, eligible=True)], (True, OLD_OBJECT)),
        # Deleted first: its last verdict before the deletion, not the deletion itself.
        (
            [record(OLD_OBJECT, eligible=False, deleted=True, hours_ago=0),
             record(OLD_OBJECT, eligible=True, hours_ago=5)],
            (True, OLD_OBJECT),
        ),
        ([record(OLD_OBJECT, eligible=False, hours_ago=2)], (False, OLD_OBJECT)),
        # Only the deletion is known: nothing to say about the access before.
        ([record(OLD_OBJECT, eligible=False, deleted=True)], None),
        ([], None),
        # Its own rows never count as a predecessor.
        ([record(PENDING["id"], eligible=True)], None),
        # Several old objects: the one devicemon saw last.
        (
            [record("a" * 8, eligible=False, hours_ago=9), record(OLD_OBJECT, eligible=True, hours_ago=1)],
            (True, OLD_OBJECT),
        ),
    ],
)  # fmt: skip
def test_the_predecessor_verdict(
    records: list[DeviceRecord], expected: tuple[bool, str] | None
) -> None:
    found = predecessor_verdict(PENDING["id"], records)
    assert (None if found is None else (found.eligible, found.object_id)) == expected


@pytest.mark.parametrize(
    ("predecessor", "expected"),
    [
        (PreviousVerdict(True, (), NOW, OLD_OBJECT), Transition.LOST),
        (PreviousVerdict(False, ("NOT_COMPLIANT",), NOW, OLD_OBJECT), Transition.FIRST_SEEN),
        (None, Transition.FIRST_SEEN),
    ],
)
def test_a_first_sighting_that_lost_what_its_predecessor_had_is_lost(
    predecessor: PreviousVerdict | None, expected: Transition
) -> None:
    device, evaluation = pending_verdict()
    assert (
        transition_of(None, evaluation, fingerprint(device, None, evaluation), predecessor)
        is expected
    )


def test_an_eligible_first_sighting_is_never_lost() -> None:
    device = device_from_json({**PENDING, "profileType": "RegisteredDevice"})
    evaluation = evaluate(device, None, EvaluationOptions(), NOW)
    predecessor = PreviousVerdict(True, (), NOW, OLD_OBJECT)
    assert transition_of(None, evaluation, "x", predecessor) is Transition.FIRST_SEEN


def test_the_alert_of_a_re_created_device_names_its_previous_object() -> None:
    device = device_from_json(PENDING)
    previous = PreviousVerdict(True, (), NOW - timedelta(hours=1), OLD_OBJECT)
    alert = lost_alert(device, previous=previous, version=1)
    ALERT_FORMAT_VALIDATOR.validate(alert)
    data = alert["data"]
    assert (data["stateVersion"], data["previous"]["objectId"]) == (1, OLD_OBJECT)
    assert data["current"]["reasons"] == ["HYBRID_JOIN_PENDING"]
    assert "dsregcmd /leave" in data["current"]["advice"][0]["action"]
    assert data["device"]["onPremisesSyncEnabled"] is True
