"""What to tell a person about one device's verdict: why, in one sentence that fits the policy, and
what to do about each reason given where the device comes from. Pure.

explain.py holds each code's fixed words; this module picks the sentence and the advice that fit
this device: an OR policy fails only when both controls fail ("neither compliant nor hybrid
joined"), a soft-deleted device can be restored while a hybrid joined one cannot (entra-docs
`concept-soft-delete-devices.md`), a synced device is enabled in on-premises AD, a co-managed
device whose compliance workload is with Configuration Manager is fixed there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.core import explain
from shared.core.models import Policy, Reason, RiskReason

_COMPLIANCE_CODES = {
    Reason.NOT_COMPLIANT.value: "Intune marks it noncompliant",
    Reason.COMPLIANCE_UNKNOWN.value: "no compliance is reported for it",
    Reason.COMPLIANCE_NOT_SUPPORTED.value: (
        "it runs Windows older than Windows 10, which the compliant control does not support"
    ),
}
_JOIN_CODES = {
    Reason.NOT_HYBRID_JOINED.value: "it is Entra joined",
    Reason.NOT_JOINED.value: "it is only registered or not joined",
}
_BLOCKERS = {
    Reason.DEVICE_DELETED.value: "deleted from Entra ID, so it passes no device control",
    Reason.DEVICE_DISABLED.value: "disabled in Entra ID, so it passes no device control",
    Reason.HYBRID_JOIN_PENDING.value: (
        "its hybrid join is pending (synced by Entra Connect, not registered), so it passes no "
        "device control"
    ),
}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a device comes from, as far as the advice depends on it."""

    join_type: str = "unknown"  # JoinType value
    synced: bool | None = None  # onPremisesSyncEnabled
    removed_reason: str | None = None  # delta's @removed.reason: "changed" | "deleted"
    management: str = "unknown"  # Management value
    compliance_workload: str | None = None  # co-managed: "intune" | "configuration_manager"

    @property
    def from_on_premises(self) -> bool:
        return self.synced is True or self.join_type == "hybrid_joined"


def _controls(policy: str, compliance: list[str], join: list[str]) -> str:
    c = "; ".join(_COMPLIANCE_CODES[code] for code in compliance)
    j = "; ".join(_JOIN_CODES[code] for code in join)
    if compliance and join:
        if policy == Policy.COMPLIANT_OR_HYBRID.value:
            return f"neither compliant ({c}) nor hybrid joined ({j}), and the policy accepts either"
        return f"not compliant ({c}) and not hybrid joined ({j}), and the policy requires both"
    if compliance:
        if policy == Policy.COMPLIANT_OR_HYBRID.value:
            return (
                f"not compliant ({c}), and on its platform only compliance can satisfy the "
                "policy (hybrid join is Windows only)"
            )
        if policy == Policy.COMPLIANT_AND_HYBRID.value:
            return f"hybrid joined but not compliant ({c}), and the policy requires both"
        return f"not compliant ({c}), and the policy requires a compliant device"
    if join:
        if policy == Policy.COMPLIANT_AND_HYBRID.value:
            return f"compliant but not hybrid joined ({j}), and the policy requires both"
        return f"not hybrid joined ({j}), and the policy requires a hybrid joined device"
    return ""


def why(policy: str, reasons: Sequence[str]) -> str:
    """One sentence for the verdict, worded for the policy's shape; "" for an eligible device.
    The reason codes stay as they are: this is their reading, not a replacement."""
    if not reasons:
        return ""
    parts = [_BLOCKERS[code] for code in reasons if code in _BLOCKERS]
    controls = _controls(
        policy,
        [code for code in reasons if code in _COMPLIANCE_CODES],
        [code for code in reasons if code in _JOIN_CODES],
    )
    if controls:
        parts.append(controls)
    known = _BLOCKERS.keys() | _COMPLIANCE_CODES.keys() | _JOIN_CODES.keys()
    parts += [explain.reason(code).short for code in reasons if code not in known]
    sentence = "; ".join(parts)
    return sentence[0].upper() + sentence[1:] + "."


def _deleted(origin: Origin) -> str:
    if origin.removed_reason == "changed":
        return (
            "Soft-deleted (device soft delete is in preview): an administrator can restore it "
            "within 30 days with Microsoft Graph or PowerShell (the Entra admin center cannot "
            "restore devices); it stays noncompliant until it checks in with Intune again."
        )
    if origin.join_type == "hybrid_joined":
        return (
            "Hybrid joined devices are deleted for good, never soft-deleted. If the computer "
            "account is still in Entra Connect's sync scope it comes back as a new, Pending "
            "device: on the device run `dsregcmd /leave` as administrator and restart so it "
            "registers again."
        )
    if origin.removed_reason == "deleted":
        return "Deleted for good (it cannot be restored): join or register the device again."
    return explain.reason(Reason.DEVICE_DELETED).action


def _disabled(origin: Origin) -> str:
    if origin.from_on_premises:
        return (
            "The device is synced from on-premises Active Directory: enable its computer "
            "account there (and check Entra Connect's sync scope); Entra Connect brings the "
            "change over at its next sync. Entra ID cannot enable a synced device."
        )
    return explain.reason(Reason.DEVICE_DISABLED).action


def _compliance(code: str, origin: Origin) -> str:
    return _compliance_elsewhere(origin) or explain.reason(code).action


def _compliance_elsewhere(origin: Origin) -> str | None:
    """Where a device whose compliance Intune does not evaluate is fixed; None when it does."""
    if origin.management == "co_managed" and origin.compliance_workload == "configuration_manager":
        return (
            "The compliance workload of this co-managed device is with Configuration Manager: "
            "check its compliance in Configuration Manager (an Intune sync does not re-evaluate "
            "it), or move the workload to Intune."
        )
    if origin.management == "jamf":
        return (
            "Jamf reports this device's state to Intune: check it in Jamf Pro and have it "
            "update its inventory."
        )
    if origin.management in ("configuration_manager", "exchange", "unmanaged"):
        by = explain.management(origin.management)
        return (
            f"Intune does not manage this device ({by}): enroll it in Intune so that its "
            "compliance can be reported."
        )
    return None


def action(code: str, origin: Origin) -> str:
    """What to do about one reason, for a device of this origin."""
    if code == Reason.DEVICE_DELETED:
        return _deleted(origin)
    if code == Reason.DEVICE_DISABLED:
        return _disabled(origin)
    if code in (Reason.NOT_COMPLIANT, Reason.COMPLIANCE_UNKNOWN):
        return _compliance(code, origin)
    return explain.reason(code).action


def risk_action(code: str, origin: Origin) -> str:
    """What to do before the deadline about one risk (docs/reason-codes.md, Risks). A check-in
    is Intune's own business (risk.py raises it only for devices Intune evaluates); the others
    are fixed wherever the device's compliance is evaluated."""
    if code != RiskReason.CHECKIN_OVERDUE:
        elsewhere = _compliance_elsewhere(origin)
        if elsewhere is not None:
            return elsewhere
    return explain.risk(code).action
