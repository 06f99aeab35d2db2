"""Reason and warning codes, join types and policies in plain words. Pure.

Written once, from docs/reason-codes.md, for every place a person reads them: the CLI, the HTML
report, the read API's documentation. The wording matches the Teams cards (shared/consumers/teams_cards.py)
so that an operator sees the same sentence wherever a code appears.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.core.models import Policy, Reason, Warning_


@dataclass(frozen=True, slots=True)
class Explanation:
    code: str
    short: str  # a few words, for tables and timelines
    meaning: str  # one sentence: what the code says about the device
    action: str  # what to do about it ("" when nothing is expected)


REASONS: dict[str, Explanation] = {
    e.code: e
    for e in (
        Explanation(
            Reason.DEVICE_DELETED,
            "deleted from Entra ID",
            "The device object no longer exists in Microsoft Entra ID.",
            "If unexpected, restore it from deleted devices in the Entra admin center or "
            "re-join it.",
        ),
        Explanation(
            Reason.DEVICE_DISABLED,
            "disabled in Entra ID",
            "The device object is disabled in Microsoft Entra ID.",
            "Check the Entra audit log for who disabled it; enable it again if it was a mistake.",
        ),
        Explanation(
            Reason.NOT_COMPLIANT,
            "not compliant",
            "Intune marks the device as not compliant, and the policy requires compliance.",
            "Open the device in Intune to see which compliance policy fails; a device sync "
            "re-evaluates it.",
        ),
        Explanation(
            Reason.COMPLIANCE_UNKNOWN,
            "compliance not reported",
            "Intune has not reported compliance for the device (not enrolled, enrollment "
            "incomplete, or not managed by Intune), and the policy requires compliance.",
            "Check the enrollment in Intune; for co-managed devices check that the compliance "
            "workload is with Intune.",
        ),
        Explanation(
            Reason.NOT_HYBRID_JOINED,
            "not hybrid joined",
            "The device is Entra joined, not hybrid joined, and the policy requires hybrid join.",
            "Expected for cloud-only devices; otherwise check Entra Connect sync and "
            "`dsregcmd /status` on the device.",
        ),
        Explanation(
            Reason.HYBRID_JOIN_PENDING,
            "hybrid join pending",
            "Entra Connect synced the device but it has not completed its hybrid join "
            "registration (Pending): it cannot pass any device-based Conditional Access "
            "control, compliant or hybrid, until it does.",
            "On the device, as the user, sign in on the corporate network (or over VPN) and run "
            "`dsregcmd /status`; check the device is in Entra Connect's sync scope. A hybrid "
            "device deleted in Entra comes back Pending and must register again.",
        ),
        Explanation(
            Reason.NOT_JOINED,
            "not joined",
            "The device is only registered (or not joined at all), and the policy requires "
            "hybrid join.",
            "A registered (personal) device cannot be hybrid joined; it can still pass by being "
            "compliant if the policy allows either.",
        ),
    )
}

WARNINGS: dict[str, Explanation] = {
    e.code: e
    for e in (
        Explanation(
            Warning_.UNSUPPORTED_OS,
            "down-level Windows",
            "Down-level Windows (below 10): no longer listed as supported for hybrid join.",
            "Plan the upgrade; the device still passes today.",
        ),
        Explanation(
            Warning_.STALE_SIGN_IN,
            "no recent sign-in",
            "No sign-in for a long time (STALE_SIGN_IN_DAYS).",
            "Check whether the device is still in use; retire it if not.",
        ),
        Explanation(
            Warning_.COMPLIANCE_GRACE_PERIOD,
            "in grace period",
            "Noncompliant but in Intune's grace period: access ends when it expires.",
            "Fix the failing compliance setting before the grace period ends.",
        ),
        Explanation(
            Warning_.INTUNE_CHECKIN_STALE,
            "Intune check-in stale",
            "The device has not checked in with Intune for a long time: it will soon be marked "
            "noncompliant.",
            "Get the device online and syncing with Intune.",
        ),
        Explanation(
            Warning_.COMPLIANCE_MISMATCH,
            "Intune and Entra disagree",
            "Intune and Entra disagree about compliance (usually a short propagation delay).",
            "Usually resolves itself within minutes; if it persists, sync the device.",
        ),
    )
}

JOIN_TYPES = {
    "entra_joined": "Entra joined",
    "hybrid_joined": "Entra hybrid joined",
    "registered": "Entra registered (personal)",
    "unknown": "unknown join type",
}
COMPLIANCE = {
    "compliant": "compliant",
    "noncompliant": "noncompliant",
    "in_grace_period": "noncompliant, in grace period",
    "unknown": "not reported by Intune",
}
MANAGEMENT = {
    "intune": "Intune",
    "co_managed": "co-managed (Intune + Configuration Manager)",
    "unmanaged": "not managed by an MDM",
    "unknown": "unknown",
}
POLICIES = {
    Policy.COMPLIANT_OR_HYBRID.value: "a compliant device or a hybrid joined device",
    Policy.COMPLIANT.value: "a compliant device",
    Policy.HYBRID.value: "a hybrid joined device",
    Policy.COMPLIANT_AND_HYBRID.value: "a compliant and hybrid joined device",
}
SOURCES = {
    "notification": "change notification",
    "sync": "delta sync",
    "replay": "replay",
}


def reason(code: str) -> Explanation:
    """The explanation of a reason code; an unknown (newer) code still gets a readable line."""
    return REASONS.get(code) or Explanation(
        code, code, "A reason code this version does not know.", "See docs/reason-codes.md."
    )


def warning(code: str) -> Explanation:
    return WARNINGS.get(code) or Explanation(
        code, code, "A warning code this version does not know.", "See docs/reason-codes.md."
    )


def join_type(value: str) -> str:
    return JOIN_TYPES.get(value, value or "unknown join type")


def compliance(value: str) -> str:
    return COMPLIANCE.get(value, value or "unknown")


def management(value: str) -> str:
    return MANAGEMENT.get(value, value or "unknown")


def policy(value: str) -> str:
    return POLICIES.get(value, value or "unknown policy")


def source(value: str) -> str:
    return SOURCES.get(value, value or "unknown")


def reasons_in_words(codes: tuple[str, ...] | list[str]) -> str:
    """'not compliant, not hybrid joined' — for one-line listings."""
    return ", ".join(reason(c).short for c in codes)
