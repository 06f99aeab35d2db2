"""Pending hybrid devices: synced by Entra Connect, not registered yet, blocked by every
device-based control (SupportArticles-docs `pending-devices.md`; entra-docs
`how-to-hybrid-join-verify.yml`: pending = trustType ServerAd, profileType not RegisteredDevice,
no alternativeSecurityIds). Payloads in Graph's device JSON shape (device-get)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.core.evaluation import EvaluationOptions, evaluate, hybrid_join_pending
from shared.core.explain import reason
from shared.core.models import Policy, Reason
from shared.core.snapshots import device_from_json

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# A hybrid joined device as Graph returns it with devicemon's $select, registered: Windows sets
# profileType RegisteredDevice and an alternativeSecurityIds entry when it completes the join.
REGISTERED: dict[str, Any] = {
    "id": "000005c3-b7a6-4c61-89fc-80bf5ccfc366",
    "deviceId": "6fa60d52-01e7-4b18-8055-4759461fc16b",
    "displayName": "DESKTOP-858MANH",
    "accountEnabled": True,
    "isCompliant": None,
    "isManaged": None,
    "trustType": "ServerAd",
    "operatingSystem": "Windows",
    "operatingSystemVersion": "10.0.19043.1165",
    "profileType": "RegisteredDevice",
    "alternativeSecurityIds": [{"type": 2, "identityProvider": None, "key": "WAA1ADAAOQA6AD..."}],
}
# The same object as Entra Connect synced it, before the device registered (Pending).
PENDING: dict[str, Any] = {**REGISTERED, "profileType": None, "alternativeSecurityIds": []}


@pytest.mark.parametrize("policy", list(Policy))
def test_a_pending_hybrid_device_passes_no_policy(policy: Policy) -> None:
    result = evaluate(device_from_json(PENDING), None, EvaluationOptions(policy), NOW)
    assert (result.eligible, result.reasons) == (False, (Reason.HYBRID_JOIN_PENDING,))


@pytest.mark.parametrize("policy", [Policy.COMPLIANT_OR_HYBRID, Policy.COMPLIANT_AND_HYBRID])
def test_even_a_compliant_pending_device_is_blocked(policy: Policy) -> None:
    compliant = {**PENDING, "isCompliant": True}
    result = evaluate(device_from_json(compliant), None, EvaluationOptions(policy), NOW)
    assert result.reasons == (Reason.HYBRID_JOIN_PENDING,)


def test_the_registered_device_passes_by_its_join() -> None:
    result = evaluate(device_from_json(REGISTERED), None, EvaluationOptions(), NOW)
    assert result.eligible


@pytest.mark.parametrize(
    ("changes", "pending"),
    [
        ({}, False),  # registered
        ({"profileType": None, "alternativeSecurityIds": []}, True),
        ({"profileType": None, "alternativeSecurityIds": None}, True),
        ({"profileType": "Printer", "alternativeSecurityIds": []}, True),
        # registered by its security ids, whatever the profile says: not pending
        ({"profileType": None}, False),
        ({"profileType": "registereddevice", "alternativeSecurityIds": []}, False),
        ({"trustType": "AzureAd", "profileType": None, "alternativeSecurityIds": []}, False),
    ],
)
def test_what_counts_as_pending(changes: dict[str, Any], pending: bool) -> None:
    assert hybrid_join_pending(device_from_json({**REGISTERED, **changes})) is pending


def test_without_the_properties_nothing_says_pending() -> None:
    """An old snapshot or a partial delta item that did not carry profileType is not judged."""
    bare = {k: v for k, v in PENDING.items() if k not in ("profileType", "alternativeSecurityIds")}
    assert not hybrid_join_pending(device_from_json(bare))
    assert evaluate(device_from_json(bare), None, EvaluationOptions(), NOW).eligible


def test_the_reason_has_words_and_advice() -> None:
    words = reason(Reason.HYBRID_JOIN_PENDING)
    assert "pending" in words.short and "dsregcmd" in words.action
