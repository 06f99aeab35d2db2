"""Conditional Access eligibility of one device: pure functions, no I/O.

The rules follow Microsoft's documented behaviour of the two device grant controls (see
docs/reason-codes.md): "Require device to be marked as compliant" reads the Entra device's
`isCompliant`, which only Intune (or an approved MDM) writes; "Require Microsoft Entra hybrid joined
device" is met by `trustType == "ServerAd"`. A disabled or deleted device passes neither.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.core.device_facts import (
    INTUNE_MDM_APP_ID,
    compliance_of,
    hybrid_join_pending,
    intune_state,
    join_type_of,
)
from shared.core.models import (
    Compliance,
    DeviceSnapshot,
    Evaluation,
    JoinType,
    ManagedDeviceSnapshot,
    Management,
    Policy,
    Reason,
    Transition,
    Warning_,
)
from shared.core.policy_eligibility import CompiledPolicySet, apply_policies
from shared.core.risk import DEFAULT_AT_RISK_LEAD_HOURS, assess, candidates, error_since
from shared.core.scope import down_level_windows, hybrid_applies, targeted
from shared.core.tenant_settings import (
    DEFAULT_CHECKIN_THRESHOLD_DAYS,
    DEFAULT_CHECKIN_WARNING_DAYS,
    MIN_STALE_SIGN_IN_DAYS,
    TenantSettings,
    checkin_deadline,
    checkin_overdue,
)

# Every managementAgentType member of Graph v1.0 (microsoft-graph-docs-contrib
# `intune-devices-managementagenttype.md`), lower-cased, and who it says manages the device.
MANAGEMENT_AGENTS: dict[str, Management] = {
    "eas": Management.EXCHANGE,  # "managed by Exchange server"
    "mdm": Management.INTUNE,  # "managed by Intune MDM"
    "easmdm": Management.INTUNE,  # "both Exchange server and Intune MDM"
    "intuneclient": Management.INTUNE,  # "Intune client managed"
    "easintuneclient": Management.INTUNE,  # "EAS and Intune client dual managed"
    "configurationmanagerclient": Management.CONFIGURATION_MANAGER,  # "Configuration Manager"
    "configurationmanagerclientmdm": Management.CO_MANAGED,  # "Configuration Manager and MDM"
    "configurationmanagerclientmdmeas": Management.CO_MANAGED,  # "... MDM and Eas"
    "unknown": Management.UNKNOWN,
    "jamf": Management.JAMF,  # "The device attributes are fetched from Jamf"
    # "managed by Google's CloudDPC": the agent of Intune's Android Enterprise corporate-owned
    # enrollments (memdocs `android-dedicated-devices-fully-managed-enroll.md` provisions
    # com.google.android.apps.work.clouddpc with an Intune enrollment token): Intune manages it.
    "googleclouddevicepolicycontroller": Management.INTUNE,
}
CO_MANAGEMENT_AGENTS = frozenset(
    agent for agent, management in MANAGEMENT_AGENTS.items() if management is Management.CO_MANAGED
)


@dataclass(frozen=True, slots=True)
class EvaluationOptions:
    policy: Policy = Policy.COMPLIANT_OR_HYBRID
    stale_sign_in_days: int = 90
    # The compliance status validity period assumed while the tenant's own has never been read.
    intune_checkin_stale_days: int = DEFAULT_CHECKIN_THRESHOLD_DAYS
    # The tenant's Intune compliance settings (shared/adapters/tenant_settings.py keeps them).
    tenant: TenantSettings | None = None
    checkin_warning_days: int = DEFAULT_CHECKIN_WARNING_DAYS
    # How long before a known deadline an eligible device is reported at risk (AT_RISK_LEAD_HOURS).
    at_risk_lead: timedelta = timedelta(hours=DEFAULT_AT_RISK_LEAD_HOURS)

    def tenant_settings(self) -> TenantSettings:
        if self.tenant is not None:
            return self.tenant
        return TenantSettings(checkin_threshold_days=self.intune_checkin_stale_days)

    def stale_after(self) -> timedelta:
        # Never below Microsoft's guidance, whatever a caller passes (settings refuse it too).
        return timedelta(days=max(self.stale_sign_in_days, MIN_STALE_SIGN_IN_DAYS))


def management_of(device: DeviceSnapshot, managed: ManagedDeviceSnapshot | None) -> Management:
    agent = (managed.management_agent or "").lower() if managed else ""
    known = MANAGEMENT_AGENTS.get(agent)
    if known is not None and known is not Management.UNKNOWN:
        return known
    # No Intune record, or one whose agent says nothing: the Entra object's own MDM facts.
    if device.is_managed is False:
        return Management.UNMANAGED
    if device.is_managed and (device.mdm_app_id or "").lower() == INTUNE_MDM_APP_ID:
        return Management.INTUNE
    return Management.UNKNOWN


def compliance_workload(
    management: Management, managed: ManagedDeviceSnapshot | None
) -> str | None:
    """On a co-managed device, who runs the compliance policies workload: "intune" or
    "configuration_manager" (configurationManagerClientEnabledFeatures.compliancePolicy); None
    when the device is not co-managed or Graph did not say."""
    if management is not Management.CO_MANAGED or managed is None:
        return None
    if managed.compliance_policy_by_intune is None:
        return None
    return "intune" if managed.compliance_policy_by_intune else "configuration_manager"


def _compliance_reason(device: DeviceSnapshot) -> Reason | None:
    if down_level_windows(device):
        # "Only supports Windows 10+, iOS, Android, macOS, and Linux Ubuntu": whatever
        # isCompliant says, a down-level Windows device cannot pass the compliant control.
        return Reason.COMPLIANCE_NOT_SUPPORTED
    if device.is_compliant is True:
        return None
    return Reason.NOT_COMPLIANT if device.is_compliant is False else Reason.COMPLIANCE_UNKNOWN


def _join_reason(join_type: JoinType) -> Reason | None:
    if join_type is JoinType.HYBRID_JOINED:
        return None
    return Reason.NOT_HYBRID_JOINED if join_type is JoinType.ENTRA_JOINED else Reason.NOT_JOINED


def _missing_controls(
    policy: Policy, device: DeviceSnapshot, join_type: JoinType
) -> tuple[Reason, ...]:
    """The reasons the policy's device controls are not met; empty when they are."""
    compliance_reason = _compliance_reason(device)
    join_reason = _join_reason(join_type)
    if policy is Policy.COMPLIANT:
        failed: tuple[Reason | None, ...] = (compliance_reason,)
    elif policy is Policy.HYBRID:
        failed = (join_reason,)
    elif policy is Policy.COMPLIANT_OR_HYBRID:
        if not hybrid_applies(device):
            # The hybrid control is Windows only: on iOS, Android, macOS or Linux compliance is
            # the one way through, and "not hybrid joined" would be noise.
            failed = (compliance_reason,)
        elif compliance_reason is None or join_reason is None:
            failed = ()
        else:
            failed = (compliance_reason, join_reason)
    else:
        failed = (compliance_reason, join_reason)
    return tuple(r for r in failed if r is not None)


def _intune_disagreements(
    device: DeviceSnapshot, managed: ManagedDeviceSnapshot | None
) -> tuple[Warning_, ...]:
    """Where Intune's record and Entra's isCompliant (what CA reads) tell different stories."""
    state = intune_state(managed)
    if state == "ingraceperiod" and device.is_compliant is not True:
        return (Warning_.GRACE_PERIOD_WITHOUT_ACCESS,)
    if state in ("error", "conflict") and device.is_compliant is True:
        return (Warning_.COMPLIANCE_ERROR,)
    if (state == "compliant" and device.is_compliant is False) or (
        state == "noncompliant" and device.is_compliant is True
    ):
        return (Warning_.COMPLIANCE_MISMATCH,)
    return ()


def _without_policy(
    device: DeviceSnapshot, managed: ManagedDeviceSnapshot, tenant: TenantSettings
) -> tuple[Warning_, ...]:
    """A device with no compliance policy assigned is judged by the tenant's secureByDefault
    alone (memdocs device-compliance-get-started.md). Under the default (false) Intune marks it
    compliant: it passes "Require compliant" without having been checked against anything, worth
    a warning. With true it is not compliant, and NOT_COMPLIANT with Intune's failing setting
    RequireDeviceCompliancePolicyAssigned already says why. Raised only when Intune said so."""
    if managed.compliance_policy_assigned is not False or tenant.secure_by_default:
        return ()
    return (Warning_.NO_COMPLIANCE_POLICY,) if device.is_compliant is True else ()


def _warnings(
    device: DeviceSnapshot,
    managed: ManagedDeviceSnapshot | None,
    compliance: Compliance,
    options: EvaluationOptions,
    now: datetime,
) -> tuple[Warning_, ...]:
    found: list[Warning_] = []
    if down_level_windows(device):
        found.append(Warning_.UNSUPPORTED_OS)
    last_sign_in = device.approximate_last_sign_in
    if last_sign_in is not None and now - last_sign_in > options.stale_after():
        found.append(Warning_.STALE_SIGN_IN)
    if compliance is Compliance.IN_GRACE_PERIOD:
        found.append(Warning_.COMPLIANCE_GRACE_PERIOD)
    if managed is not None:
        tenant = options.tenant_settings()
        if checkin_overdue(managed.last_sync, now, tenant, options.checkin_warning_days):
            found.append(Warning_.INTUNE_CHECKIN_STALE)
        found.extend(_intune_disagreements(device, managed))
        found.extend(_without_policy(device, managed, tenant))
    return tuple(found)


def evaluate(
    device: DeviceSnapshot,
    managed: ManagedDeviceSnapshot | None,
    options: EvaluationOptions,
    now: datetime,
    *,
    device_json: Mapping[str, Any] | None = None,
    policies: CompiledPolicySet | None = None,
    compliance_error_since: datetime | None = None,
) -> Evaluation:
    """Decide whether the device passes the device controls, why not, and whether it is about
    to stop passing them (shared/core/risk.py). With the device's Graph JSON and the tenant's
    compiled policies, the policies decide (policy_eligibility.apply_policies), the CA_POLICY
    setting otherwise. `compliance_error_since` is the previous record's: when devicemon first saw
    Intune's record in error."""
    judged = _judged(device, managed, options, now, device_json, policies)
    since = error_since(managed, compliance_error_since, now)
    if since is not None:
        judged = replace(judged, compliance_error_since=since)
    if not judged.eligible or Warning_.NOT_TARGETED in judged.warnings:
        return judged
    risks = candidates(
        device, managed, judged.management, options.tenant_settings(), options.at_risk_lead, since
    )
    if not risks:
        return judged
    # Only a loss of compliance that would cost eligibility is a risk.
    if _eligible_if_not_compliant(device, managed, options, now, device_json, policies):
        return judged
    found = assess(risks, now)
    return replace(
        judged, risk_reasons=found.reasons, deadline=found.deadline, next_check=found.next_check
    )


def _judged(
    device: DeviceSnapshot,
    managed: ManagedDeviceSnapshot | None,
    options: EvaluationOptions,
    now: datetime,
    device_json: Mapping[str, Any] | None,
    policies: CompiledPolicySet | None,
) -> Evaluation:
    base = _by_setting(device, managed, options, now)
    if device_json is None or policies is None:
        return base
    return apply_policies(base, device, device_json, policies)


def _setting_reasons(
    device: DeviceSnapshot, policy: Policy, join_type: JoinType
) -> tuple[Reason, ...]:
    """Why a targeted device fails the CA_POLICY setting's device controls; empty when it passes."""
    if hybrid_join_pending(device):
        # Neither control can be met until the registration completes, whatever the policy.
        missing: tuple[Reason, ...] = (Reason.HYBRID_JOIN_PENDING,)
    else:
        missing = _missing_controls(policy, device, join_type)
    # accountEnabled absent is not evidence of a disabled device; Graph defaults it to true.
    disabled = device.account_enabled is False
    return ((Reason.DEVICE_DISABLED,) if disabled else ()) + missing


def _eligible_if_not_compliant(
    device: DeviceSnapshot,
    managed: ManagedDeviceSnapshot | None,
    options: EvaluationOptions,
    now: datetime,
    device_json: Mapping[str, Any] | None,
    policies: CompiledPolicySet | None,
) -> bool:
    """Whether the device would still be eligible if Entra's isCompliant turned false. Under the
    setting alone only its controls are asked (the device is targeted: evaluate checked); the
    tenant's policies judge a whole evaluation."""
    losing = replace(device, is_compliant=False)
    if device_json is None or policies is None:
        return not _setting_reasons(losing, options.policy, join_type_of(losing))
    losing_json = {**device_json, "isCompliant": False}
    return _judged(losing, managed, options, now, losing_json, policies).eligible


def _by_setting(
    device: DeviceSnapshot,
    managed: ManagedDeviceSnapshot | None,
    options: EvaluationOptions,
    now: datetime,
) -> Evaluation:
    """The verdict of the CA_POLICY setting's device controls."""
    policy = options.policy
    join_type = join_type_of(device)
    if device.deleted:
        return Evaluation(
            policy=policy,
            join_type=join_type,
            compliance=Compliance.UNKNOWN,
            management=Management.UNKNOWN,
            eligible=False,
            reasons=(Reason.DEVICE_DELETED,),
        )
    compliance = compliance_of(device, managed)
    management = management_of(device, managed)
    warnings = _warnings(device, managed, compliance, options, now)
    if not targeted(device, policy):
        # Not a device the policy asks anything of (a printer, a phone under a Windows-only
        # policy): nothing blocks it, and it never raises an alert.
        return Evaluation(
            policy=policy,
            join_type=join_type,
            compliance=compliance,
            management=management,
            eligible=True,
            warnings=(Warning_.NOT_TARGETED, *warnings),
        )
    reasons = _setting_reasons(device, policy, join_type)
    grace_expiry = (
        managed.grace_period_expires
        if compliance is Compliance.IN_GRACE_PERIOD and managed
        else None
    )
    return Evaluation(
        policy=policy,
        join_type=join_type,
        compliance=compliance,
        management=management,
        eligible=not reasons,
        reasons=reasons,
        warnings=warnings,
        grace_period_expires=grace_expiry,
        checkin_deadline=_checkin_deadline(managed, options),
    )


def _checkin_deadline(
    managed: ManagedDeviceSnapshot | None, options: EvaluationOptions
) -> datetime | None:
    """When Intune's compliance status validity period runs out without a new check-in; None for
    a device Intune does not manage or whose last check-in Graph did not say."""
    if managed is None:
        return None
    return checkin_deadline(managed.last_sync, options.tenant_settings())


def fingerprint(
    device: DeviceSnapshot, managed: ManagedDeviceSnapshot | None, evaluation: Evaluation
) -> str:
    """A digest of what matters in an observation; equal digests mean nothing worth a history row.

    Sign-in and check-in timestamps move constantly and are left out: they only count through
    the warnings they raise.
    """
    facts = (
        device.display_name,
        device.trust_type,
        device.account_enabled,
        device.is_compliant,
        device.is_managed,
        device.operating_system,
        device.operating_system_version,
        device.deleted,
        managed.compliance_state if managed else None,
        managed.management_agent if managed else None,
        evaluation.fingerprint_fields(),
    )
    return hashlib.sha256(json.dumps(facts, default=str).encode()).hexdigest()[:32]


def classify(
    previous_eligible: bool | None,
    previous_fingerprint: str | None,
    eligible: bool,
    current_fingerprint: str,
) -> Transition:
    """Relate a new evaluation to the last stored one by eligibility and digest alone; the risk
    episodes (AT_RISK, AT_RISK_CLEARED) are events.transition_of's."""
    if previous_eligible is None:
        return Transition.FIRST_SEEN
    if previous_eligible and not eligible:
        return Transition.LOST
    if not previous_eligible and eligible:
        return Transition.RESTORED
    if previous_fingerprint == current_fingerprint:
        return Transition.UNCHANGED
    return Transition.CHANGED
