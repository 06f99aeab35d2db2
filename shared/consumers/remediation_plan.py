"""What a lost-eligibility alert deserves under a remediation mode: pure, no I/O.

Split from the Remediator (shared/consumers/remediation.py) so that the RemediationLog adapter, which
stores these outcomes, and the Remediator, which writes them, both depend on it and not on each
other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from shared.core.alert_view import AlertView

REMEDIABLE = ("NOT_COMPLIANT", "COMPLIANCE_UNKNOWN")
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
    NO_FIX_FOR_REASONS = "no_fix_for_reasons"
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


def plan(alert: AlertView, mode: Mode) -> Plan:
    if not alert.lost:
        return Plan(Outcome.SKIPPED, Skip.RESTORED, "the device is eligible again: nothing to fix")
    fixable = [r for r in alert.reasons if r in REMEDIABLE]
    if not fixable:
        return Plan(
            Outcome.SKIPPED,
            Skip.NO_FIX_FOR_REASONS,
            f"no automatic fix for {', '.join(alert.reasons) or 'these reasons'}",
        )
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
    what = f"Intune syncDevice for {', '.join(fixable)}"
    if mode is Mode.OFF:
        return Plan(Outcome.SKIPPED, Skip.MODE_OFF, f"REMEDIATION_MODE is off (would run {what})")
    if mode is Mode.DRY_RUN:
        return Plan(Outcome.DRY_RUN, SYNC_DEVICE, f"dry run: would run {what}")
    return Plan(Outcome.CLAIMED, SYNC_DEVICE, what)


def hour_bucket(moment: datetime) -> str:
    """The rate limit's window: the UTC clock hour, e.g. 2026112910."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H")
