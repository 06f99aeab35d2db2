"""What an alert deserves under a remediation mode: pure, no I/O.

A `lost` explained by compliance gets an Intune syncDevice. An `at_risk` gets one only for the
risks a check-in can fix (a grace period ending, an overdue check-in) and only when the device's
last check-in is old (OLD_CHECKIN): a device seen recently has just been evaluated, a sync would
repeat that. Never for INTUNE_ENTRA_MISMATCH or COMPLIANCE_ERROR_PENDING (NEVER_SYNCED says why).

Split from the Remediator (shared/consumers/remediation.py) so that the RemediationLog adapter, which
stores these outcomes, and the Remediator, which writes them, both depend on it and not on each
other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.core.alert_view import AlertView
from shared.core.models import RiskReason

REMEDIABLE = ("NOT_COMPLIANT", "COMPLIANCE_UNKNOWN")
# Risks that a check-in can end: the device reports the fix its user made during the grace
# period, or simply checks in before the tenant's compliance status validity period runs out.
RISKS_SYNCED = (RiskReason.GRACE_PERIOD_ENDING.value, RiskReason.CHECKIN_OVERDUE.value)
NEVER_SYNCED: dict[str, str] = {
    # Intune already says noncompliant; a check-in makes Intune write that verdict to Entra ID
    # sooner, ending the access the warning is about. The fix is the failing setting.
    RiskReason.INTUNE_ENTRA_MISMATCH.value: "Intune already marks the device noncompliant: a "
    "sync would only bring the loss forward",
    # A setting in Error is a policy or device problem that a check-in evaluates again with the
    # same result; it needs a person at the failing setting, and devicemon's seven-day count
    # does not restart with a sync.
    RiskReason.COMPLIANCE_ERROR_PENDING.value: "a setting in Error needs a person at the "
    "failing setting; a sync repeats the same evaluation",
}
# Intune's routine check-in comes about every 8 hours on every platform (memdocs
# intune/configuration/device-profile-troubleshoot.md, "Estimated frequencies"). A last check-in
# older than that means the device missed at least one routine check-in: a sync can bring news
# Intune does not have. Within it, the next routine check-in is due anyway.
OLD_CHECKIN = timedelta(hours=8)
SYNC_DEVICE = "syncDevice"


class Mode(StrEnum):
    OFF = "off"
    DRY_RUN = "dry-run"
    ON = "on"


class Outcome(StrEnum):
    CLAIMED = "claimed"  # in flight: the alert is ours, no budget taken yet
    ACTING = "acting"  # in flight: budget taken, the Graph call is (about to be) sent
    RETRY = "retry"  # in flight: Graph failed transiently; the redelivery calls again
    ACTED = "acted"
    DRY_RUN = "dry_run"
    SKIPPED = "skipped"
    RATE_LIMITED = "rate_limited"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


FINAL = frozenset(
    {
        Outcome.ACTED,
        Outcome.DRY_RUN,
        Outcome.SKIPPED,
        Outcome.RATE_LIMITED,
        Outcome.FAILED,
        Outcome.INTERRUPTED,
    }
)


class Skip(StrEnum):
    RESTORED = "restored"
    RISK_CLEARED = "risk_cleared"
    NO_FIX_FOR_REASONS = "no_fix_for_reasons"
    CHECKIN_RECENT = "checkin_recent"
    CHECKIN_UNKNOWN = "checkin_unknown"
    NOT_INTUNE_MANAGED = "not_intune_managed"
    COMPLIANCE_NOT_WITH_INTUNE = "compliance_not_with_intune"
    MODE_OFF = "mode_off"


@dataclass(frozen=True, slots=True)
class Plan:
    outcome: Outcome  # SKIPPED, DRY_RUN or CLAIMED (= act)
    code: str  # Skip value, or the action's name
    reason: str  # in plain words, recorded with the decision

    @property
    def acts(self) -> bool:
        return self.outcome is Outcome.CLAIMED


def _fixable(alert: AlertView) -> tuple[list[str], Plan | None]:
    """The alert's codes a sync may fix, or why nothing is done whatever the device."""
    if alert.cleared:
        return [], Plan(Outcome.SKIPPED, Skip.RISK_CLEARED, "no longer at risk: nothing to fix")
    if not (alert.lost or alert.at_risk):
        return [], Plan(
            Outcome.SKIPPED, Skip.RESTORED, "the device is eligible again: nothing to fix"
        )
    if alert.at_risk:
        never = [f"{r} ({NEVER_SYNCED[r]})" for r in alert.risk_reasons if r in NEVER_SYNCED]
        if never:
            return [], Plan(
                Outcome.SKIPPED, Skip.NO_FIX_FOR_REASONS, f"never synced for {'; '.join(never)}"
            )
        codes, candidates = alert.risk_reasons, RISKS_SYNCED
    else:
        codes, candidates = alert.reasons, REMEDIABLE
    fixable = [r for r in codes if r in candidates]
    if not fixable:
        return [], Plan(
            Outcome.SKIPPED,
            Skip.NO_FIX_FOR_REASONS,
            f"no automatic fix for {', '.join(codes) or 'these reasons'}",
        )
    return fixable, None


def wants_checkin(alert: AlertView) -> bool:
    """Whether the plan needs the device's last check-in: an at_risk alert that nothing else
    rules out (so the look-up is spent on candidates only)."""
    fixable, ruled_out = _fixable(alert)
    return alert.at_risk and ruled_out is None and _not_intune(alert, fixable) is None


def age(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24} days {hours % 24} hours" if hours >= 48 else f"{hours} hours"


def plan(
    alert: AlertView,
    mode: Mode,
    last_checkin: datetime | None = None,
    now: datetime | None = None,
) -> Plan:
    """`last_checkin` (Intune's lastSyncDateTime) and `now` decide for at_risk alerts only."""
    fixable, ruled_out = _fixable(alert)
    if ruled_out is not None:
        return ruled_out
    not_intune = _not_intune(alert, fixable)
    if not_intune is not None:
        return not_intune
    what = f"Intune syncDevice for {', '.join(fixable)}"
    if alert.at_risk:
        if last_checkin is None or now is None:
            return Plan(
                Outcome.SKIPPED,
                Skip.CHECKIN_UNKNOWN,
                f"{', '.join(fixable)}, but devicemon holds no last check-in for the device: "
                "not synced blind",
            )
        since = now - last_checkin
        if since < OLD_CHECKIN:
            return Plan(
                Outcome.SKIPPED,
                Skip.CHECKIN_RECENT,
                f"{', '.join(fixable)}, but the device checked in {age(since)} ago (under "
                f"{age(OLD_CHECKIN)}, Intune's routine check-in): a sync adds nothing",
            )
        what += f" (last check-in {age(since)} ago)"
    if mode is Mode.OFF:
        return Plan(Outcome.SKIPPED, Skip.MODE_OFF, f"REMEDIATION_MODE is off (would run {what})")
    if mode is Mode.DRY_RUN:
        return Plan(Outcome.DRY_RUN, SYNC_DEVICE, f"dry run: would run {what}")
    return Plan(Outcome.CLAIMED, SYNC_DEVICE, what)


def _not_intune(alert: AlertView, fixable: list[str]) -> Plan | None:
    """Why an Intune syncDevice cannot help this device, if it cannot."""
    if alert.management == "co_managed" and alert.compliance_workload != "intune":
        # An Intune sync re-evaluates Intune's compliance policies only; with the workload on
        # Configuration Manager (configurationManagerClientEnabledFeatures.compliancePolicy
        # false), or not known to be on Intune, it changes nothing.
        where = (
            "with Configuration Manager"
            if alert.compliance_workload == "configuration_manager"
            else "not known to be with Intune"
        )
        return Plan(
            Outcome.SKIPPED,
            Skip.COMPLIANCE_NOT_WITH_INTUNE,
            f"{', '.join(fixable)}, but the co-managed device's compliance workload is {where}",
        )
    if alert.management not in ("intune", "co_managed") or not alert.managed_device_id:
        # Exchange, Configuration Manager alone, Jamf: an Intune syncDevice is not theirs.
        return Plan(
            Outcome.SKIPPED,
            Skip.NOT_INTUNE_MANAGED,
            f"{', '.join(fixable)}, but Intune does not manage the device "
            f"(management {alert.management or 'unknown'}"
            f"{'' if alert.managed_device_id else ', no Intune record'})",
        )
    return None


def hour_bucket(moment: datetime) -> str:
    """The rate limit's window: the UTC clock hour, e.g. 2026112910."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H")
