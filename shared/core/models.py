"""The domain's vocabulary: what we observe of a device, and what we conclude from it.

Everything here is plain data (frozen dataclasses and string enums) so evaluation stays pure and
the stored/published forms are stable strings users can filter on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class Policy(StrEnum):
    """Which device controls the organisation's Conditional Access policy requires, and how it
    combines them. With both grant controls ticked, the portal's "Require all the selected
    controls" (its default) is COMPLIANT_AND_HYBRID and "Require one of the selected controls" is
    COMPLIANT_OR_HYBRID (entra-docs `concept-conditional-access-grant.md`)."""

    COMPLIANT_OR_HYBRID = "compliant_or_hybrid"
    COMPLIANT = "compliant"
    HYBRID = "hybrid"
    COMPLIANT_AND_HYBRID = "compliant_and_hybrid"


class JoinType(StrEnum):
    ENTRA_JOINED = "entra_joined"
    HYBRID_JOINED = "hybrid_joined"
    REGISTERED = "registered"
    UNKNOWN = "unknown"


class Compliance(StrEnum):
    COMPLIANT = "compliant"
    NONCOMPLIANT = "noncompliant"
    IN_GRACE_PERIOD = "in_grace_period"
    UNKNOWN = "unknown"


class Management(StrEnum):
    """Who manages the device, from Intune's managementAgent (evaluation.MANAGEMENT_AGENTS)."""

    INTUNE = "intune"
    CO_MANAGED = "co_managed"  # Intune and Configuration Manager
    CONFIGURATION_MANAGER = "configuration_manager"  # Configuration Manager alone
    EXCHANGE = "exchange"  # Exchange ActiveSync alone
    JAMF = "jamf"  # attributes fetched from Jamf
    UNMANAGED = "unmanaged"
    UNKNOWN = "unknown"


class Reason(StrEnum):
    """Why a device does not pass device-based CA. Stable strings: see docs/reason-codes.md."""

    DEVICE_DELETED = "DEVICE_DELETED"
    DEVICE_DISABLED = "DEVICE_DISABLED"
    NOT_COMPLIANT = "NOT_COMPLIANT"
    COMPLIANCE_UNKNOWN = "COMPLIANCE_UNKNOWN"
    NOT_HYBRID_JOINED = "NOT_HYBRID_JOINED"
    NOT_JOINED = "NOT_JOINED"
    HYBRID_JOIN_PENDING = "HYBRID_JOIN_PENDING"
    COMPLIANCE_NOT_SUPPORTED = "COMPLIANCE_NOT_SUPPORTED"
    # A policy whose grant is Block covers the device (policy mode only: shared/core/ca_policies.py).
    BLOCKED_BY_POLICY = "BLOCKED_BY_POLICY"


class Warning_(StrEnum):
    """Conditions worth knowing that do not change eligibility (yet)."""

    UNSUPPORTED_OS = "UNSUPPORTED_OS"
    STALE_SIGN_IN = "STALE_SIGN_IN"
    COMPLIANCE_GRACE_PERIOD = "COMPLIANCE_GRACE_PERIOD"
    INTUNE_CHECKIN_STALE = "INTUNE_CHECKIN_STALE"
    COMPLIANCE_MISMATCH = "COMPLIANCE_MISMATCH"
    COMPLIANCE_ERROR = "COMPLIANCE_ERROR"
    GRACE_PERIOD_WITHOUT_ACCESS = "GRACE_PERIOD_WITHOUT_ACCESS"
    NOT_TARGETED = "NOT_TARGETED"
    NO_COMPLIANCE_POLICY = "NO_COMPLIANCE_POLICY"
    # An enforced CA policy could not be decided for this device; the CA_POLICY setting decided.
    POLICY_NOT_UNDERSTOOD = "POLICY_NOT_UNDERSTOOD"


class RiskReason(StrEnum):
    """Why an eligible device will lose eligibility unless something changes (shared/core/risk.py;
    docs/reason-codes.md). Stable strings, like Reason."""

    GRACE_PERIOD_ENDING = "GRACE_PERIOD_ENDING"
    CHECKIN_OVERDUE = "CHECKIN_OVERDUE"
    COMPLIANCE_ERROR_PENDING = "COMPLIANCE_ERROR_PENDING"
    INTUNE_ENTRA_MISMATCH = "INTUNE_ENTRA_MISMATCH"


class Transition(StrEnum):
    """How an evaluation relates to the previous one for the same device."""

    FIRST_SEEN = "first_seen"
    LOST = "lost"
    RESTORED = "restored"
    CHANGED = "changed"  # still ineligible or still eligible, but reasons/warnings/facts moved
    UNCHANGED = "unchanged"
    AT_RISK = "at_risk"  # still eligible, but a risk episode began: it will lose access at a time
    AT_RISK_CLEARED = "at_risk_cleared"  # still eligible, and the episode ended without a loss


class Source(StrEnum):
    """What made devicemon look at the device."""

    NOTIFICATION = "notification"
    SYNC = "sync"
    REPLAY = "replay"
    DEADLINE = "deadline"  # the deadline scheduler re-evaluating at a warning time or deadline
    INTUNE_WATCH = "intune_watch"  # the Intune watch saw the managed device's facts move


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    """The Entra device object as Graph returned it, normalised. `deleted` when Graph said 404."""

    object_id: str
    device_id: str | None = None
    display_name: str | None = None
    account_enabled: bool | None = None
    is_compliant: bool | None = None
    is_managed: bool | None = None
    trust_type: str | None = None
    operating_system: str | None = None
    operating_system_version: str | None = None
    approximate_last_sign_in: datetime | None = None
    registration_time: datetime | None = None
    mdm_app_id: str | None = None
    # What tells a registered hybrid join from a pending one: profile_type "" when Graph sent
    # null, None when it was not read (an old snapshot, a partial delta item).
    profile_type: str | None = None
    alternative_security_ids: int | None = None
    # deviceOwnership as Intune sets it ("company", "personal", "unknown"), lower-cased.
    device_ownership: str | None = None
    # onPremisesSyncEnabled: true while Entra Connect syncs the object from on-premises AD.
    on_premises_sync: bool | None = None
    deleted: bool = False
    # How Graph said the device went, when it said: delta's @removed.reason, "changed" (soft
    # deleted, restorable) or "deleted" (gone for good). None after a bare 404.
    removed_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ManagedDeviceSnapshot:
    """The Intune managed device linked by azureADDeviceId."""

    managed_device_id: str
    compliance_state: str | None = None
    management_agent: str | None = None
    grace_period_expires: datetime | None = None
    last_sync: datetime | None = None
    user_principal_name: str | None = None
    # configurationManagerClientEnabledFeatures.compliancePolicy: on a co-managed device, whether
    # the compliance policies workload is with Intune (None when Graph did not say).
    compliance_policy_by_intune: bool | None = None
    # Whether any compliance policy is assigned: False only when Intune said none is (the
    # built-in policy's RequireDeviceCompliancePolicyAssigned setting); None when not read.
    compliance_policy_assigned: bool | None = None


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """A Conditional Access policy named in a verdict: one the device fails (blocking, or failing
    in report-only), the reasons it fails, and the conditions devicemon does not judge (users,
    applications...) on which whether it applies to a sign-in still depends."""

    policy_id: str
    display_name: str
    reasons: tuple[str, ...] = ()
    conditional_on: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.policy_id,
            "displayName": self.display_name,
            "reasons": list(self.reasons),
            "conditionalOn": list(self.conditional_on),
        }

    @classmethod
    def from_json(cls, value: object) -> PolicyRef:
        if not isinstance(value, dict):
            raise ValueError(f"a policy reference must be an object: {value!r}")
        return cls(
            policy_id=str(value.get("id") or ""),
            display_name=str(value.get("displayName") or ""),
            reasons=tuple(str(r) for r in value.get("reasons") or ()),
            conditional_on=tuple(str(c) for c in value.get("conditionalOn") or ()),
        )


# Evaluation.judged_by: who decided eligibility.
JUDGED_BY_SETTING = "ca_policy_setting"  # the CA_POLICY setting
JUDGED_BY_POLICIES = "ca_policies"  # the tenant's compiled Conditional Access policies


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The verdict on one observation of one device under one policy."""

    policy: Policy
    join_type: JoinType
    compliance: Compliance
    management: Management
    eligible: bool
    reasons: tuple[Reason, ...] = ()
    warnings: tuple[Warning_, ...] = ()
    grace_period_expires: datetime | None = None
    # lastSyncDateTime + the tenant's compliance status validity period: when Intune marks the
    # device not compliant unless it checks in. Left out of the fingerprint: it moves with every
    # check-in, and only the INTUNE_CHECKIN_STALE warning it leads to is worth a history row.
    checkin_deadline: datetime | None = None
    # Why an eligible device will lose eligibility (shared/core/risk.py), and the earliest known
    # instant it does among the active risks (None when unknown, e.g. a mismatch alone).
    risk_reasons: tuple[RiskReason, ...] = ()
    deadline: datetime | None = None
    # When the deadline scheduler must look again: a warning time, a deadline, or a follow-up
    # after a passed one. Not in the fingerprint: a schedule alone is no history.
    next_check: datetime | None = None
    # When devicemon first saw Intune's record in error (not when Intune set it).
    compliance_error_since: datetime | None = None
    blocking_policies: tuple[PolicyRef, ...] = ()
    report_only_failures: tuple[PolicyRef, ...] = ()
    judged_by: str = JUDGED_BY_SETTING

    @property
    def at_risk(self) -> bool:
        return bool(self.risk_reasons)

    def fingerprint_fields(self) -> tuple[object, ...]:
        return (
            self.policy.value,
            self.join_type.value,
            self.compliance.value,
            self.management.value,
            self.eligible,
            tuple(r.value for r in self.reasons),
            tuple(w.value for w in self.warnings),
            self.grace_period_expires.isoformat() if self.grace_period_expires else None,
            *self._risk_and_policy_fields(),
        )

    def _risk_and_policy_fields(self) -> tuple[object, ...]:
        # Appended only when set, so that a verdict without them keeps the digest rows stored
        # before these fields existed carry (no spurious `changed` row after an upgrade).
        fields = (
            tuple(r.value for r in self.risk_reasons),
            self.deadline.isoformat() if self.deadline else None,
            self.compliance_error_since.isoformat() if self.compliance_error_since else None,
            # Names too: a renamed policy is re-judged (its digest moves) and the stored verdict
            # must then say the new name, not keep the old one until the device next changes.
            tuple((p.policy_id, p.display_name, p.reasons) for p in self.blocking_policies),
            tuple((p.policy_id, p.display_name, p.reasons) for p in self.report_only_failures),
            self.judged_by,
        )
        empty = ((), None, None, (), (), JUDGED_BY_SETTING)
        return () if fields == empty else fields


@dataclass(frozen=True, slots=True)
class Observation:
    """A device, its Intune record and the verdict: what one processing run saw."""

    device: DeviceSnapshot
    managed: ManagedDeviceSnapshot | None
    evaluation: Evaluation
    observed_at: datetime
    source: Source
    correlation_id: str = ""


def utc_now() -> datetime:
    """The clock every component defaults to (tests inject their own)."""
    return datetime.now(UTC)
