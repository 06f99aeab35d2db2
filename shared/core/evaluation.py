"""Conditional Access eligibility of one device: pure functions, no I/O.

The rules follow Microsoft's documented behaviour of the two device grant controls (see
docs/reason-codes.md): "Require device to be marked as compliant" reads the Entra device's
`isCompliant`, which only Intune (or an approved MDM) writes; "Require Microsoft Entra hybrid joined
device" is met by `trustType == "ServerAd"`. A disabled or deleted device passes neither.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

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
from shared.core.scope import down_level_windows, hybrid_applies, targeted
from shared.core.tenant_settings import (
    DEFAULT_CHECKIN_THRESHOLD_DAYS,
    DEFAULT_CHECKIN_WARNING_DAYS,
    MIN_STALE_SIGN_IN_DAYS,
    TenantSettings,
    checkin_deadline,
    checkin_overdue,
)

# AT_RISK_LEAD_HOURS: the default warning lead before a deadline (issue 12: 72 h), and its bounds.
DEFAULT_AT_RISK_LEAD_HOURS = 72
MIN_AT_RISK_LEAD_HOURS = 1
MAX_AT_RISK_LEAD_HOURS = 720
# Intune's own first-party application id, as written in device.mdmAppId.
INTUNE_MDM_APP_ID = "0000000a-0000-0000-c000-000000000000"
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
_TRUST_TYPES = {
    "azuread": JoinType.ENTRA_JOINED,
    "serverad": JoinType.HYBRID_JOINED,
    "workplace": JoinType.REGISTERED,
}


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


def join_type_of(device: DeviceSnapshot) -> JoinType:
    return _TRUST_TYPES.get((device.trust_type or "").lower(), JoinType.UNKNOWN)


def hybrid_join_pending(device: DeviceSnapshot) -> bool:
    """Synced by Entra Connect but not registered yet: trustType ServerAd, a profileType other
    than RegisteredDevice and no alternativeSecurityIds. Such a device "can't complete any ...
    authentication requests, such as ... applying device-based Conditional Access policies"
    (SupportArticles-docs `pending-devices.md`; entra-docs `how-to-hybrid-join-verify.yml`).
    Judged only on what Graph sent: without profileType nothing says the join is pending."""
    if join_type_of(device) is not JoinType.HYBRID_JOINED or device.profile_type is None:
        return False
    registered = device.profile_type.lower() == "registereddevice"
    return not registered and not device.alternative_security_ids


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


def _intune_state(managed: ManagedDeviceSnapshot | None) -> str:
    return (managed.compliance_state or "").lower() if managed else ""


def compliance_of(device: DeviceSnapshot, managed: ManagedDeviceSnapshot | None) -> Compliance:
    """Compliance as Conditional Access sees it: Entra's isCompliant. Intune's grace period counts
    only while Entra still says compliant; once isCompliant is false access has ended, whatever
    Intune's record says."""
    if device.is_compliant is True:
        if _intune_state(managed) == "ingraceperiod":
            return Compliance.IN_GRACE_PERIOD
        return Compliance.COMPLIANT
    if device.is_compliant is False:
        return Compliance.NONCOMPLIANT
    return Compliance.UNKNOWN


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
    state = _intune_state(managed)
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
) -> Evaluation:
    """Decide whether the device passes the policy's device controls, and why not."""
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
    if hybrid_join_pending(device):
        # Neither control can be met until the registration completes, whatever the policy.
        missing: tuple[Reason, ...] = (Reason.HYBRID_JOIN_PENDING,)
    else:
        missing = _missing_controls(policy, device, join_type)
    # accountEnabled absent is not evidence of a disabled device; Graph defaults it to true.
    disabled = device.account_enabled is False
    reasons = ((Reason.DEVICE_DISABLED,) if disabled else ()) + missing
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
    """Relate a new evaluation to the last stored one. Only LOST and RESTORED raise alerts."""
    if previous_eligible is None:
        return Transition.FIRST_SEEN
    if previous_eligible and not eligible:
        return Transition.LOST
    if not previous_eligible and eligible:
        return Transition.RESTORED
    if previous_fingerprint == current_fingerprint:
        return Transition.UNCHANGED
    return Transition.CHANGED
