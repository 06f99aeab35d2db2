"""What an Entra device and its Intune record say on their own: join type, a pending hybrid join,
compliance as Conditional Access reads it. Pure.

Kept apart from evaluation.py because the tenant's policy verdicts (ca_verdicts.py) read the device
the same way, and evaluation in turn applies those verdicts.
"""

from __future__ import annotations

from shared.core.models import Compliance, DeviceSnapshot, JoinType, ManagedDeviceSnapshot

# Intune's own first-party application id, as written in device.mdmAppId.
INTUNE_MDM_APP_ID = "0000000a-0000-0000-c000-000000000000"
_TRUST_TYPES = {
    "azuread": JoinType.ENTRA_JOINED,
    "serverad": JoinType.HYBRID_JOINED,
    "workplace": JoinType.REGISTERED,
}


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


def intune_state(managed: ManagedDeviceSnapshot | None) -> str:
    return (managed.compliance_state or "").lower() if managed else ""


def compliance_of(device: DeviceSnapshot, managed: ManagedDeviceSnapshot | None) -> Compliance:
    """Compliance as Conditional Access sees it: Entra's isCompliant. Intune's grace period counts
    only while Entra still says compliant; once isCompliant is false access has ended, whatever
    Intune's record says."""
    if device.is_compliant is True:
        if intune_state(managed) == "ingraceperiod":
            return Compliance.IN_GRACE_PERIOD
        return Compliance.COMPLIANT
    if device.is_compliant is False:
        return Compliance.NONCOMPLIANT
    return Compliance.UNKNOWN
