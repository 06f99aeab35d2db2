"""Health verdict from the bookkeeping rows: pure, so every combination is tested."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.adapters.bookkeeping import SubscriptionRecord, SyncState
from shared.adapters.ca_policies import PERMISSION, StoredPolicies
from shared.adapters.policy_source import EligibilitySource, in_force, understood


@dataclass(frozen=True, slots=True)
class Delivery:
    """Whether what devicemon decided reached anyone: alerts stranded in the outbox, failed
    attempts at queue messages, dead letters. None: that signal could not be read."""

    pending_overdue: int | None = 0
    oldest_pending_at: datetime | None = None
    pending_after: timedelta = timedelta(minutes=2)
    failures: int | None = 0
    failure_window: timedelta = timedelta(minutes=15)
    max_failures: int = 10
    dead_letters: dict[str, int] | None = field(default_factory=dict)
    unreadable: tuple[str, ...] = ()  # why a signal is None

    def problems(self) -> tuple[list[str], list[str]]:
        """(what makes health unhealthy, what makes it degraded)."""
        critical: list[str] = []
        degraded: list[str] = list(self.unreadable)
        for entity, count in sorted((self.dead_letters or {}).items()):
            if count:
                more = "+" if count >= 100 else ""
                critical.append(
                    f"{count}{more} dead-lettered message(s) on {entity}: see `devicemon dlq show`"
                )
        if self.pending_overdue:
            minutes = int(self.pending_after.total_seconds() // 60)
            degraded.append(
                f"{self.pending_overdue} alert(s) committed but not published for over "
                f"{minutes} min (the sweep retries them)"
            )
        if self.failures is not None and self.failures > self.max_failures:
            minutes = int(self.failure_window.total_seconds() // 60)
            degraded.append(
                f"{self.failures} failed processing attempts in the last {minutes} min "
                f"(threshold {self.max_failures})"
            )
        return critical, degraded


@dataclass(frozen=True, slots=True)
class PermissionCheck:
    """What the last Graph read needing an optional permission found. Without the permission
    devicemon still detects and alerts, but says less: health names what is lost and the fix."""

    permission: str
    feature: str  # what devicemon cannot do without it, for people
    missing: bool
    detail: str = ""
    checked_at: datetime | None = None

    def problem(self) -> str:
        return (
            f"Graph permission {self.permission} is missing: {self.feature}. Grant it "
            "(docs/deploy.md, `python infra/hooks/devicemon_hooks.py grant-graph`)"
        )

    def report(self) -> dict[str, Any]:
        return {
            "permission": self.permission,
            "feature": self.feature,
            "status": "missing" if self.missing else "granted",
            "detail": self.detail or None,
            "checkedAt": _iso(self.checked_at),
        }


@dataclass(frozen=True, slots=True)
class EligibilityMode:
    """What judges devices: the tenant's Conditional Access policies or the CA_POLICY setting,
    from ELIGIBILITY_SOURCE and the stored read (shared/adapters/policy_source.py)."""

    source: str  # ELIGIBILITY_SOURCE
    ca_policy: str  # CA_POLICY, what judges in the fallback
    stored: StoredPolicies | None  # None: the policies were never read

    def _why(self, why: str) -> str:
        stored = self.stored
        setting = f"the CA_POLICY setting ({self.ca_policy}) judges devices"
        if why == "setting":
            return f"ELIGIBILITY_SOURCE=ca_policy_setting: {setting}"
        if why == "neverRead" or stored is None:
            return (
                f"the policies have never been read (the policy timer has not run yet): {setting}"
            )
        attempt = f"{_iso(stored.read_at)}"
        if why == "permissionMissing":
            return f"Graph refused the read at {attempt} ({PERMISSION} missing): {setting}"
        if why == "readFailed":
            return f"no read has succeeded yet (last attempt {attempt}: {stored.detail}): {setting}"
        if why == "noDevicePolicy":
            return (
                f"no enforced policy read at {_iso(stored.last_success_at)} asks anything of "
                f"devices (no device control, no device-scoped block): {setting}"
            )
        judged = f"the tenant's policies read at {_iso(stored.last_success_at)} judge devices"
        if stored.read_at != stored.last_success_at:
            return f"{judged} (the last attempt, {attempt}, failed: {stored.detail}; they are kept)"
        return judged

    def report(self) -> dict[str, Any]:
        force = in_force(self.stored, self.source)
        stored = self.stored
        policies = force.policies.policies if force.policies is not None else ()
        known = sum(1 for policy in policies if understood(policy))
        return {
            "mode": force.mode.value,
            "source": self.source,
            "why": force.why,
            "explanation": self._why(force.why),
            "caPolicy": self.ca_policy,
            "readAt": _iso(stored.last_success_at) if stored else None,
            "lastAttemptAt": _iso(stored.read_at) if stored else None,
            "lastAttemptStatus": stored.status.value if stored else None,
            "policies": None
            if force.policies is None
            else {
                "total": len(policies),
                "understood": known,
                "notUnderstood": len(policies) - known,
                "digest": force.digest,
            },
        }

    def problem(self) -> str | None:
        """Degraded: the policies were asked for (ELIGIBILITY_SOURCE=ca_policies) and do not
        judge. Under `auto` a refused read is already named by the permission check."""
        force = in_force(self.stored, self.source)
        if self.source != EligibilitySource.CA_POLICIES or force.policies is not None:
            return None
        return f"ELIGIBILITY_SOURCE=ca_policies, but {self._why(force.why)}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def abandoned_run(sync: SyncState, now: datetime) -> str | None:
    """A run that took the lease and neither finished nor released it: its process stopped
    (the lease is renewed while a run lives). The next run resumes from the saved cursor."""
    if not sync.lease_owner or sync.lease_until is None or sync.lease_until > now:
        return None
    started = sync.run_started_at
    if sync.last_success_at is not None and (started is None or started <= sync.last_success_at):
        return None
    since = f" started {_iso(started)}" if started else ""
    return (
        f"a delta sync run{since} stopped without finishing (its lease expired "
        f"{_iso(sync.lease_until)}); the next run resumes from the saved cursor"
    )


NOTIFIED = "notifications+delta"
DELTA_ONLY = "delta-only"


def detection_mode(subscription: SubscriptionRecord, now: datetime) -> dict[str, Any]:
    """How the tenant's changes reach devicemon, in words an operator can act on.

    Graph does not list /devices among the resources that support change notifications, so a
    tenant may refuse the subscription; then the delta sync is the only source and detection
    takes up to one sync interval instead of seconds. Either way every change is seen."""
    tried = _iso(subscription.last_checked_at)
    error = subscription.last_error or None
    live = subscription.status == "active" and (
        subscription.expires_at is not None and subscription.expires_at > now
    )
    if live:
        explanation = (
            f"Graph notifies devicemon of device changes (subscription {subscription.subscription_id}"
            f" until {_iso(subscription.expires_at)}): a change is caught within seconds; the delta "
            "sync catches, every round, whatever a notification missed"
        )
    elif subscription.status == "refused":
        explanation = (
            f"Graph refused the /devices subscription ({error}), last tried {tried}: changes are "
            "caught by the delta sync alone, within one sync interval; the subscription upkeep "
            "tries again on its schedule"
        )
    elif subscription.status == "active":
        explanation = (
            f"the subscription expired {_iso(subscription.expires_at)} without renewal, last "
            f"checked {tried}: changes are caught by the delta sync alone, within one sync interval"
        )
    elif subscription.status == "error":
        explanation = (
            f"the subscription could not be kept ({error}), last tried {tried}: changes are "
            "caught by the delta sync alone, within one sync interval"
        )
    else:
        explanation = (
            "no subscription has been set up yet: changes are caught by the delta sync alone, "
            "within one sync interval"
        )
    return {
        "mode": NOTIFIED if live else DELTA_ONLY,
        "explanation": explanation,
        "subscriptionError": error,
        "lastTriedAt": tried,
        "lastErrorAt": _iso(subscription.last_error_at),
    }


# A deadline row still waiting this long after it came due means the deadline timer is not
# running (it reads the index every minute and hands rows over within seconds).
DEADLINE_OVERDUE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class EarlyWarning:
    """The timers that see a device coming to its deadline (issue 12): the Intune watch, whose
    last finished run is recorded in its table, and the deadline timer, whose failure shows as
    rows left in the deadline index past their due time. Either one stopped: devicemon still
    reports what changes in Entra, but warns late or not at all, and reports a grace period's
    end at the next Entra change rather than within a minute: degraded."""

    intune_enabled: bool
    watch_finished_at: datetime | None
    watch_stale_after: timedelta
    oldest_overdue: datetime | None  # the oldest deadline row due before now - the grace

    def problems(self, now: datetime) -> list[str]:
        found = []
        # A watch that never finished a run is reported (lastFinishedAt null) but is no problem
        # yet: a new deployment's first run is up to one interval away, and nothing records
        # when devicemon started watching.
        finished = self.watch_finished_at
        if self.intune_enabled and finished is not None and now - finished > self.watch_stale_after:
            minutes = int((now - finished).total_seconds() // 60)
            found.append(
                f"the Intune watch last finished a run {minutes} min ago: grace periods "
                "and check-ins are seen late"
            )
        if self.oldest_overdue is not None:
            minutes = int((now - self.oldest_overdue).total_seconds() // 60)
            found.append(
                f"a device deadline came due {minutes} min ago and is still waiting: the "
                "deadline timer is not running (at_risk and lost at deadlines are late)"
            )
        return found

    def report(self, now: datetime) -> dict[str, Any]:
        return {
            "intuneWatch": {
                "enabled": self.intune_enabled,
                "lastFinishedAt": _iso(self.watch_finished_at),
                "staleAfterSeconds": round(self.watch_stale_after.total_seconds()),
            },
            "deadlines": {
                "oldestOverdueAt": _iso(self.oldest_overdue),
                "overdueAfterSeconds": round(DEADLINE_OVERDUE_AFTER.total_seconds()),
            },
        }


def assess(
    sync: SyncState,
    subscription: SubscriptionRecord,
    *,
    now: datetime,
    stale_after: timedelta,
    devices: int | None,
    ineligible: int | None,
    delivery: Delivery | None = None,
    permissions: tuple[PermissionCheck, ...] = (),
    eligibility: EligibilityMode | None = None,
    early_warning: EarlyWarning | None = None,
) -> dict[str, Any]:
    """healthy: sync fresh, notifications live, every alert delivered.
    degraded: devicemon still sees and reports every change, but late or at risk:
    notifications unavailable (refused, failing, expired, never set up), alerts pending past
    the sweep's age, failed attempts over the threshold, or a delivery signal unreadable.
    A Graph permission that an optional feature needs and that Graph refused is degraded too:
    alerts still flow, but say less than they should (which permission, and what is lost).
    So is ELIGIBILITY_SOURCE=ca_policies while the policies cannot be read (the CA_POLICY
    setting judges instead). `eligibility` None: the policy table could not be read. So is an
    early-warning timer that stopped (EarlyWarning).
    unhealthy: changes may go unseen or unreported: the sync is stale or never succeeded, or
    messages sit in a dead-letter queue (nothing retries them without an operator)."""
    delivery = delivery or Delivery()
    lag = (now - sync.last_success_at) if sync.last_success_at else None
    sync_fresh = lag is not None and lag <= stale_after
    detection = detection_mode(subscription, now)
    subscription_live = detection["mode"] == NOTIFIED
    problems = []
    if not sync_fresh:
        problems.append(
            "delta sync has never succeeded"
            if lag is None
            else f"last successful delta sync {int(lag.total_seconds() // 60)} min ago"
        )
    if not subscription_live:
        problems.append(
            f"change notifications unavailable ({subscription.status}{': ' + subscription.last_error if subscription.last_error else ''})"
        )
    abandoned = abandoned_run(sync, now)
    if abandoned:
        problems.append(abandoned)
    critical, degraded = delivery.problems()
    degraded += [check.problem() for check in permissions if check.missing]
    mode_problem = eligibility.problem() if eligibility is not None else None
    if mode_problem:
        degraded.append(mode_problem)
    if early_warning is not None:
        degraded += early_warning.problems(now)
    problems = critical + problems + degraded
    if not sync_fresh or critical:
        status = "unhealthy"
    elif not subscription_live or degraded or abandoned:
        status = "degraded"
    else:
        status = "healthy"
    return {
        "status": status,
        "checkedAt": _iso(now),
        "problems": problems,
        "detection": detection,
        "permissions": [check.report() for check in permissions],
        "eligibility": eligibility.report() if eligibility is not None else None,
        "earlyWarning": early_warning.report(now) if early_warning is not None else None,
        "sync": {
            "lastSuccessAt": _iso(sync.last_success_at),
            "lagSeconds": round(lag.total_seconds()) if lag is not None else None,
            "staleAfterSeconds": round(stale_after.total_seconds()),
            "phase": sync.phase,
            "running": bool(sync.lease_owner) and (sync.lease_until or now) > now,
            "leaseUntil": _iso(sync.lease_until),
            "abandonedRun": abandoned is not None,
            "lastRunPages": sync.last_run_pages,
            "lastRunChanges": sync.last_run_changes,
            "lastRunSeconds": sync.last_run_seconds,
            "fullResyncs": sync.full_resyncs,
            "lastError": sync.last_error or None,
            "lastErrorAt": _iso(sync.last_error_at),
        },
        "subscription": {
            "status": subscription.status,
            "id": subscription.subscription_id or None,
            "expiresAt": _iso(subscription.expires_at),
            "lastRenewedAt": _iso(subscription.last_renewed_at),
            "lastCheckedAt": _iso(subscription.last_checked_at),
            "lastError": subscription.last_error or None,
        },
        "devices": {"total": devices, "ineligible": ineligible},
        "alerts": {
            "pendingOverdue": delivery.pending_overdue,
            "oldestPendingAt": _iso(delivery.oldest_pending_at),
            "sweepAfterSeconds": round(delivery.pending_after.total_seconds()),
        },
        "processing": {
            "failures": delivery.failures,
            "windowSeconds": round(delivery.failure_window.total_seconds()),
            "maxFailures": delivery.max_failures,
        },
        "deadLetters": delivery.dead_letters,
    }
