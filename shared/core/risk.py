"""When an eligible device will lose eligibility, and when to look at it again. Pure.

A risk is a loss already under way that Entra's `isCompliant` does not show yet. Whether it
matters is not decided here: evaluation.py judges the device again as if `isCompliant` had turned
false and keeps these risks only when that counterfactual is ineligible (a hybrid joined device
under COMPLIANT_OR_HYBRID loses nothing when its grace period ends). Each risk has a deadline
(when access ends; None when nobody can say) and the instant it starts to count, its warning time.
The rules, named in docs/reason-codes.md (Risks):

- GRACE_PERIOD_ENDING: Intune's complianceState `inGracePeriod` while Entra still says compliant;
  the grace schedule lets the user "become compliant without being marked as non-compliant" until
  the grace expiry (memdocs intune/protect/actions-for-noncompliance.md). Deadline: the expiry.
- CHECKIN_OVERDUE: an Intune-managed device stops checking in; the built-in policy marks it not
  compliant once the tenant's compliance status validity period has run out since lastSyncDateTime
  (memdocs device-compliance-get-started.md). Warned min(lead, half the period) ahead, for the
  reason INTUNE_CHECKIN_STALE is (tenant_settings.checkin_warning_lead).
- COMPLIANCE_ERROR_PENDING: Intune's complianceState `error` while Entra says compliant; a setting
  in Error keeps its state up to seven days, then the device is noncompliant without grace
  (memdocs compliance-policy-monitor.md). Graph does not say when the error began: devicemon counts
  from when it first saw it (`error_since`), which may be later than Intune's.
- INTUNE_ENTRA_MISMATCH: Intune says `noncompliant` while Entra still says compliant: Entra is
  catching up, at once, at no known instant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.core.device_facts import intune_state
from shared.core.models import DeviceSnapshot, ManagedDeviceSnapshot, Management, RiskReason
from shared.core.tenant_settings import TenantSettings, checkin_deadline

# AT_RISK_LEAD_HOURS: the default warning lead before a deadline (issue 12: 72 h), and its bounds.
DEFAULT_AT_RISK_LEAD_HOURS = 72
MIN_AT_RISK_LEAD_HOURS = 1
MAX_AT_RISK_LEAD_HOURS = 720
# memdocs compliance-policy-monitor.md: Error keeps the state "up to seven days".
ERROR_STATE_LIMIT = timedelta(days=7)
# After a deadline passes with the device still eligible, Intune may not have written Entra yet:
# look again a few times; later the Intune watch and the delta sync see the change.
FOLLOW_UPS = (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
# Who runs Intune's compliance evaluation, so that Intune's validity period applies.
_INTUNE_COMPLIANCE = (Management.INTUNE, Management.CO_MANAGED)


@dataclass(frozen=True, slots=True)
class Risk:
    reason: RiskReason
    deadline: datetime | None
    # When the risk starts to count (the deadline minus the lead); None: at once.
    active_from: datetime | None

    def active(self, now: datetime) -> bool:
        return self.active_from is None or self.active_from <= now


@dataclass(frozen=True, slots=True)
class Assessment:
    reasons: tuple[RiskReason, ...] = ()
    deadline: datetime | None = None
    next_check: datetime | None = None


def error_since(
    managed: ManagedDeviceSnapshot | None, previous: datetime | None, now: datetime
) -> datetime | None:
    """Since when devicemon has seen Intune's record in error: the previous record's instant while
    it stays in error (the previous one is only ever set in error), now when it just entered it,
    None out of it."""
    if intune_state(managed) != "error":
        return None
    return previous if previous is not None else now


def candidates(
    device: DeviceSnapshot,
    managed: ManagedDeviceSnapshot | None,
    management: Management,
    tenant: TenantSettings,
    lead: timedelta,
    since_error: datetime | None,
) -> tuple[Risk, ...]:
    """Every risk the facts show, active or not yet, before asking whether it would cost
    eligibility. Only a device Entra marks compliant has compliance left to lose."""
    if managed is None or device.is_compliant is not True:
        return ()
    state = intune_state(managed)
    found: list[Risk] = []
    expiry = managed.grace_period_expires
    if state == "ingraceperiod" and expiry is not None:
        found.append(Risk(RiskReason.GRACE_PERIOD_ENDING, expiry, expiry - lead))
    deadline = checkin_deadline(managed.last_sync, tenant)
    if deadline is not None and management in _INTUNE_COMPLIANCE:
        warn = min(lead, tenant.validity_period / 2)
        found.append(Risk(RiskReason.CHECKIN_OVERDUE, deadline, deadline - warn))
    if state == "error" and since_error is not None:
        limit = since_error + ERROR_STATE_LIMIT
        found.append(Risk(RiskReason.COMPLIANCE_ERROR_PENDING, limit, limit - lead))
    if state == "noncompliant":
        found.append(Risk(RiskReason.INTUNE_ENTRA_MISMATCH, None, None))
    return tuple(found)


def _checks(risk: Risk, now: datetime) -> Iterable[datetime]:
    """The instants at which this risk asks for another look."""
    if not risk.active(now):
        assert risk.active_from is not None
        yield risk.active_from
    elif risk.deadline is not None:
        yield risk.deadline
        yield from (risk.deadline + after for after in FOLLOW_UPS)


def assess(risks: Iterable[Risk], now: datetime) -> Assessment:
    """The active risks in RiskReason order, the earliest deadline among them, and the next
    instant after `now` at which the device must be evaluated again (None: nothing is due). A
    passed deadline keeps its risk active: until an evaluation shows the loss, the device is still
    about to lose access."""
    risks = tuple(risks)
    active = [r for r in risks if r.active(now)]
    order = list(RiskReason)
    reasons = tuple(sorted({r.reason for r in active}, key=order.index))
    deadlines = [r.deadline for r in active if r.deadline is not None]
    due = [at for r in risks for at in _checks(r, now) if at > now]
    return Assessment(reasons, min(deadlines, default=None), min(due, default=None))
