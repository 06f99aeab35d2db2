"""Reason and warning codes, join types and policies in plain words. Pure.

Written once, from docs/reason-codes.md, for every place a person reads them: the CLI, the HTML
report, the read API's documentation. The wording matches the Teams cards (shared/consumers/teams_cards.py)
so that an operator sees the same sentence wherever a code appears.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.core.models import Policy, Reason, RiskReason, Warning_


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
            "Entra joined and registered devices are soft-deleted where device soft delete "
            "(preview) is on: restore it within 30 days with Microsoft Graph or PowerShell (the "
            "admin center cannot). Hybrid joined devices are deleted for good: Entra Connect "
            "syncs the computer back as a Pending device, which must register again.",
        ),
        Explanation(
            Reason.DEVICE_DISABLED,
            "disabled in Entra ID",
            "The device object is disabled in Microsoft Entra ID.",
            "Check the Entra audit log for who disabled it; enable it again if it was a mistake "
            "(a synced hybrid device is enabled in on-premises Active Directory, not in Entra).",
        ),
        Explanation(
            Reason.NOT_COMPLIANT,
            "not compliant",
            "Intune marks the device as not compliant.",
            "Open the device in Intune to see which compliance policy fails; a device sync "
            "re-evaluates it.",
        ),
        Explanation(
            Reason.COMPLIANCE_UNKNOWN,
            "compliance not reported",
            "No compliance is reported for the device (not enrolled in Intune, enrollment "
            "incomplete, or managed by something that does not report compliance).",
            "Check the enrollment in Intune; for co-managed devices check that the compliance "
            "workload is with Intune.",
        ),
        Explanation(
            Reason.COMPLIANCE_NOT_SUPPORTED,
            "OS cannot be compliant",
            "The device runs Windows before Windows 10, which the compliant control does not "
            "support: it cannot pass that control whatever Intune reports.",
            "Upgrade or replace the device; meanwhile only the hybrid join control (if the "
            "policy accepts it) lets a down-level Windows device through.",
        ),
        Explanation(
            Reason.NOT_HYBRID_JOINED,
            "not hybrid joined",
            "The device is Entra joined, not hybrid joined.",
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
            "`dsregcmd /status`; check the device is in Entra Connect's sync scope. A device "
            "that was registered before (its object deleted and synced back) stays Pending "
            "until it leaves and joins again: `dsregcmd /leave` as administrator, then restart.",
        ),
        Explanation(
            Reason.NOT_JOINED,
            "not joined",
            "The device is only registered (or not joined at all), so it is not hybrid joined.",
            "A registered device cannot be hybrid joined; it can still pass by being compliant "
            "if the policy accepts either.",
        ),
        Explanation(
            Reason.BLOCKED_BY_POLICY,
            "blocked by a policy",
            "An enforced Conditional Access policy whose grant is Block covers the device.",
            "Check the blocking policy's scope (platforms, device filter) in the Entra admin "
            "center; exclude the device there if the block is not meant for it.",
        ),
    )
}

WARNINGS: dict[str, Explanation] = {
    e.code: e
    for e in (
        Explanation(
            Warning_.UNSUPPORTED_OS,
            "down-level Windows",
            "Down-level Windows (below 10): no longer listed as supported for hybrid join, and "
            "never able to pass the compliant control.",
            "Plan the upgrade.",
        ),
        Explanation(
            Warning_.STALE_SIGN_IN,
            "no recent sign-in",
            "No sign-in for a long time (STALE_SIGN_IN_DAYS, never under 21 days: Entra "
            "refreshes the sign-in time only about every 14 days).",
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
            "The device's last Intune check-in is close to the end of the tenant's compliance "
            "status validity period: Intune marks it noncompliant when the period ends.",
            "Get the device online and syncing with Intune.",
        ),
        Explanation(
            Warning_.COMPLIANCE_MISMATCH,
            "Intune and Entra disagree",
            "Intune and Entra disagree about compliance (usually a short propagation delay).",
            "Usually resolves itself within minutes; if it persists, sync the device.",
        ),
        Explanation(
            Warning_.COMPLIANCE_ERROR,
            "Intune compliance error",
            "Entra still marks the device compliant, but Intune reports an error or a conflict "
            "evaluating its compliance: a setting in error keeps the state for up to 7 days, "
            "then the device turns noncompliant at once, without a grace period.",
            "Open the device's compliance in Intune and fix the setting in error or the "
            "conflicting policies before the state runs out.",
        ),
        Explanation(
            Warning_.GRACE_PERIOD_WITHOUT_ACCESS,
            "grace period, no access",
            "Intune reports a grace period, but Entra does not mark the device compliant: "
            "Conditional Access reads Entra, so access has already ended; the grace period "
            "does not keep it.",
            "Treat it as noncompliant now: fix the failing setting and sync the device.",
        ),
        Explanation(
            Warning_.NOT_TARGETED,
            "not targeted",
            "No device control of the policy applies to this device (a printer, a secure VM, "
            "a shared or IoT device, or a platform the policy's controls do not support): "
            "devicemon does not judge it and never alerts on it.",
            "Nothing, if the policy indeed leaves it out; if it does target such devices, "
            "devicemon's scope is narrower than the policy's (docs/reason-codes.md, Scope).",
        ),
        Explanation(
            Warning_.NO_COMPLIANCE_POLICY,
            "no compliance policy",
            "Intune has no compliance policy assigned to the device and the tenant marks such "
            "devices compliant: it passes 'Require compliant' without having been checked.",
            "Assign a compliance policy for the device's platform, or set 'Mark devices with no "
            "compliance policy assigned as' to Not compliant.",
        ),
        Explanation(
            Warning_.POLICY_NOT_UNDERSTOOD,
            "policy not understood",
            "An enforced Conditional Access policy could not be decided for this device (a "
            "device filter or control devicemon does not understand): the CA_POLICY setting "
            "decided instead.",
            "Run `devicemon policies` to see what was not understood; keep CA_POLICY in step "
            "with that policy meanwhile.",
        ),
    )
}

RISKS: dict[str, Explanation] = {
    e.code: e
    for e in (
        Explanation(
            RiskReason.GRACE_PERIOD_ENDING,
            "grace period ending",
            "Intune marks the device noncompliant but in its grace period; Entra still says "
            "compliant until the grace period expires, then access ends.",
            "Fix the failing compliance setting and sync the device before the deadline.",
        ),
        Explanation(
            RiskReason.CHECKIN_OVERDUE,
            "check-in overdue",
            "The device has not checked in with Intune for most of the tenant's compliance "
            "status validity period; when it runs out Intune marks the device noncompliant.",
            "Get the device online and syncing with Intune (Company Portal, Settings > Accounts "
            "> Access work or school > Sync) before the deadline.",
        ),
        Explanation(
            RiskReason.COMPLIANCE_ERROR_PENDING,
            "compliance error pending",
            "Intune reports an error evaluating the device's compliance while Entra still says "
            "compliant; a setting in error keeps its state up to seven days, then the device "
            "turns noncompliant without a grace period.",
            "Open the device's compliance in Intune and fix the setting in error before the "
            "deadline.",
        ),
        Explanation(
            RiskReason.INTUNE_ENTRA_MISMATCH,
            "Intune says noncompliant",
            "Intune marks the device noncompliant while Entra still says compliant: access "
            "ends as soon as Entra catches up.",
            "Fix the failing compliance setting now; sync the device so both agree.",
        ),
    )
}

JOIN_TYPES = {
    "entra_joined": "Entra joined",
    "hybrid_joined": "Entra hybrid joined",
    "registered": "Entra registered",
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
    "configuration_manager": "Configuration Manager only",
    "exchange": "Exchange ActiveSync only",
    "jamf": "Jamf",
    "unmanaged": "not managed by an MDM",
    "unknown": "unknown",
}
OWNERSHIP = {"company": "company-owned", "personal": "personal"}
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


def risk(code: str) -> Explanation:
    return RISKS.get(code) or Explanation(
        code, code, "A risk code this version does not know.", "See docs/reason-codes.md."
    )


def join_type(value: str, ownership: str | None = None) -> str:
    """'Entra registered' or, when Intune set deviceOwnership, 'Entra registered, personal'."""
    words = JOIN_TYPES.get(value, value or "unknown join type")
    owned = OWNERSHIP.get((ownership or "").lower())
    return f"{words}, {owned}" if owned else words


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
