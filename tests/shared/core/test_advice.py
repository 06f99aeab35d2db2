"""Issue 13 items 4 and 5: one sentence per verdict that fits the policy (the codes stay), and
advice chosen by where the device comes from. Payloads are Graph device JSON (device-get, and
delta's `@removed` from device-delta: `"@removed": {"reason": "changed" | "deleted"}`)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.core import explain
from shared.core.advice import Origin, action, why
from shared.core.alert_view import parse_alert
from shared.core.models import DeviceSnapshot, Policy, Reason
from shared.core.snapshots import device_from_json
from tests.shared.core.payloads import DEVICE_GET as ENTRA_JOINED
from tests.shared.core.payloads import lost_alert


def alert(device: DeviceSnapshot, policy: Policy = Policy.COMPLIANT_OR_HYBRID) -> dict[str, Any]:
    return lost_alert(device, policy=policy)


# --- item 4: the sentence fits the policy -----------------------------------------------------


def test_an_or_failure_is_one_sentence_and_keeps_both_codes() -> None:
    current = alert(device_from_json(ENTRA_JOINED))["data"]["current"]
    assert current["reasons"] == ["NOT_COMPLIANT", "NOT_HYBRID_JOINED"]
    assert current["summary"] == (
        "Neither compliant (Intune marks it noncompliant) nor hybrid joined (it is Entra "
        "joined), and the policy accepts either."
    )
    assert "requires hybrid join" not in current["summary"]


@pytest.mark.parametrize(
    ("policy", "reasons", "sentence"),
    [
        (
            Policy.COMPLIANT_AND_HYBRID,
            ("NOT_COMPLIANT", "NOT_HYBRID_JOINED"),
            "Not compliant (Intune marks it noncompliant) and not hybrid joined (it is Entra "
            "joined), and the policy requires both.",
        ),
        (
            Policy.COMPLIANT_AND_HYBRID,
            ("COMPLIANCE_UNKNOWN",),
            "Hybrid joined but not compliant (no compliance is reported for it), and the policy "
            "requires both.",
        ),
        (
            Policy.COMPLIANT,
            ("NOT_COMPLIANT",),
            "Not compliant (Intune marks it noncompliant), and the policy requires a compliant "
            "device.",
        ),
        (
            Policy.HYBRID,
            ("NOT_JOINED",),
            "Not hybrid joined (it is only registered or not joined), and the policy requires a "
            "hybrid joined device.",
        ),
        (
            Policy.COMPLIANT_OR_HYBRID,
            ("NOT_COMPLIANT",),
            "Not compliant (Intune marks it noncompliant), and on its platform only compliance "
            "can satisfy the policy (hybrid join is Windows only).",
        ),
        (
            Policy.COMPLIANT_OR_HYBRID,
            ("DEVICE_DISABLED", "NOT_COMPLIANT", "NOT_HYBRID_JOINED"),
            "Disabled in Entra ID, so it passes no device control; neither compliant (Intune "
            "marks it noncompliant) nor hybrid joined (it is Entra joined), and the policy "
            "accepts either.",
        ),
        (
            Policy.HYBRID,
            ("HYBRID_JOIN_PENDING",),
            "Its hybrid join is pending (synced by Entra Connect, not registered), so it passes "
            "no device control.",
        ),
        (Policy.HYBRID, ("SOMETHING_NEWER",), "SOMETHING_NEWER."),
        (Policy.HYBRID, (), ""),
    ],
)
def test_each_policy_shape_reads_as_one_sentence(
    policy: Policy, reasons: tuple[str, ...], sentence: str
) -> None:
    assert why(policy.value, reasons) == sentence


@pytest.mark.parametrize(
    "code", [Reason.NOT_COMPLIANT, Reason.NOT_HYBRID_JOINED, Reason.NOT_JOINED]
)
def test_no_code_claims_what_the_policy_requires(code: Reason) -> None:
    """A code's own words are read under every policy: the policy belongs to the sentence."""
    assert "policy requires" not in explain.reason(code).meaning


# --- item 5: advice by origin -----------------------------------------------------------------
# entra-docs concept-soft-delete-devices.md: soft delete is in preview; "Microsoft Entra hybrid
# joined devices" are "hard deleted immediately"; "During the preview, soft-deleted devices can
# be restored using Microsoft Graph API or PowerShell".


def deleted(reason: str | None, trust: str) -> DeviceSnapshot:
    removed: dict[str, Any] = {"reason": reason} if reason else {}
    gone = device_from_json({"id": ENTRA_JOINED["id"], "@removed": removed})
    # The pipeline keeps what it last knew of a deleted device (its join type among others).
    return DeviceSnapshot(**{**_fields(gone), "trust_type": trust})


def _fields(device: DeviceSnapshot) -> dict[str, Any]:
    return {name: getattr(device, name) for name in DeviceSnapshot.__slots__}


@pytest.mark.parametrize(
    ("reason", "trust", "says", "never"),
    [
        ("changed", "AzureAd", "restore it within 30 days", "dsregcmd"),
        ("changed", "Workplace", "Microsoft Graph or PowerShell", "for good"),
        ("deleted", "AzureAd", "cannot be restored", "restore it"),
        ("deleted", "ServerAd", "Pending", "restore it"),
        (None, "ServerAd", "dsregcmd /leave", "restore it"),
        (None, "AzureAd", "admin center cannot", "dsregcmd"),
    ],
)
def test_deleted_advice_follows_how_graph_said_it_went(
    reason: str | None, trust: str, says: str, never: str
) -> None:
    device = deleted(reason, trust)
    assert device.removed_reason == reason
    data = alert(device)["data"]
    assert data["device"]["removedReason"] == reason
    (advice,) = data["current"]["advice"]
    assert advice["reason"] == "DEVICE_DELETED"
    assert says in advice["action"] and never not in advice["action"]
    assert "deleted devices in the Entra admin center" not in advice["action"]


@pytest.mark.parametrize(
    ("changes", "on_premises"),
    [
        ({"trustType": "ServerAd", "onPremisesSyncEnabled": True}, True),
        # "onPremisesSyncEnabled ... null if this object has never been synced" (device.md): the
        # join type alone still says the object comes from on-premises AD.
        ({"trustType": "ServerAd", "onPremisesSyncEnabled": None}, True),
        ({"trustType": "AzureAd", "onPremisesSyncEnabled": None}, False),
    ],
)
def test_a_synced_device_is_enabled_on_premises(changes: dict[str, Any], on_premises: bool) -> None:
    device = device_from_json(
        {**ENTRA_JOINED, "accountEnabled": False, "isCompliant": True, **changes}
    )
    view = parse_alert(alert(device, Policy.COMPLIANT))
    assert view.reasons == ("DEVICE_DISABLED",)
    text = view.action("DEVICE_DISABLED")
    assert ("enable its computer account there" in text) is on_premises
    assert ("Entra ID cannot enable" in text) is on_premises
    assert ("audit log" in text) is not on_premises


def test_advice_of_an_old_alert_falls_back_to_the_codes_words() -> None:
    body = alert(device_from_json(ENTRA_JOINED))
    del body["data"]["current"]["advice"]
    view = parse_alert(body)
    assert view.action("NOT_COMPLIANT") == explain.reason("NOT_COMPLIANT").action


def test_an_unknown_code_still_gets_words() -> None:
    assert action("SOMETHING_NEWER", Origin()) == "See docs/reason-codes.md."
