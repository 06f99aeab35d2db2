"""Shapes of the two entities the simulator serves: Entra `device` and Intune `managedDevice`.

Entities are stored as plain JSON-ready dicts (camelCase keys, Graph value formats) so a
page of 200 devices is a dict projection plus one json.dumps - that is what keeps a
100,000-device delta sync cheap.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from . import vocabulary
from .odata import GUID_RE, iso_z, parse_datetime

DEVICE_TYPE = "microsoft.graph.device"
MANAGED_DEVICE_TYPE = "microsoft.graph.managedDevice"

# Entra device properties (api-reference/v1.0/resources/device.md plus the v1.0 metadata),
# in Graph's default order; createdDateTime and extensionAttributes as tenants return them.
DEVICE_PROPS: tuple[str, ...] = (
    "id",
    "deletedDateTime",
    "accountEnabled",
    "approximateLastSignInDateTime",
    "complianceExpirationDateTime",
    "createdDateTime",
    "deviceCategory",
    "deviceId",
    "deviceMetadata",
    "deviceOwnership",
    "deviceVersion",
    "displayName",
    "enrollmentProfileName",
    "enrollmentType",
    "isCompliant",
    "isManaged",
    "isManagementRestricted",
    "isRooted",
    "managementType",
    "manufacturer",
    "mdmAppId",
    "model",
    "onPremisesLastSyncDateTime",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "operatingSystem",
    "operatingSystemVersion",
    "physicalIds",
    # device.md: "alternativeSecurityIds ... Not nullable"; a hybrid device gets one when it
    # completes registration, a Pending one has none (entra-docs how-to-hybrid-join-verify)
    "alternativeSecurityIds",
    "profileType",
    "registrationDateTime",
    "systemLabels",
    "trustType",
    "extensionAttributes",
)
DEVICE_KNOWN: dict[str, str] = {name.lower(): name for name in DEVICE_PROPS}
DEVICE_DATES = (
    "deletedDateTime",
    "approximateLastSignInDateTime",
    "complianceExpirationDateTime",
    "createdDateTime",
    "onPremisesLastSyncDateTime",
    "registrationDateTime",
)

EXTENSION_ATTRIBUTES = tuple(f"extensionAttribute{i}" for i in range(1, 16))
TRUST_TYPES = vocabulary.TRUST_TYPES
MANAGEMENT_AGENTS = vocabulary.MANAGEMENT_AGENTS
COMPLIANCE_STATES = vocabulary.COMPLIANCE_STATES

# What a hybrid device looks like after Entra Connect synced it and before the device
# registered itself ("Pending" in the portal): ServerAd, no profileType, no
# alternativeSecurityIds, never registered or signed in (SupportArticles-docs
# pending-devices.md; entra-docs how-to-hybrid-join-verify.yml). It can't satisfy
# device-based Conditional Access, and a deleted hybrid device comes back like this.
PENDING_HYBRID: dict[str, Any] = {
    "trustType": "ServerAd",
    "profileType": None,
    "alternativeSecurityIds": [],
    "registrationDateTime": None,
    "approximateLastSignInDateTime": None,
    "onPremisesSyncEnabled": True,
    "isManaged": None,
    "isCompliant": None,
    "mdmAppId": None,
    "managementType": None,
}

# Intune managed device properties (api-reference/v1.0/resources/intune-devices-manageddevice.md
# and the v1.0 metadata), in the docs' order; navigation properties are not served.
MANAGED_DEVICE_PROPS: tuple[str, ...] = (
    "id",
    "userId",
    "deviceName",
    "managedDeviceOwnerType",
    "deviceActionResults",
    "enrolledDateTime",
    "lastSyncDateTime",
    "operatingSystem",
    "complianceState",
    "jailBroken",
    "managementAgent",
    "osVersion",
    "easActivated",
    "easDeviceId",
    "easActivationDateTime",
    "azureADRegistered",
    "deviceEnrollmentType",
    "activationLockBypassCode",
    "emailAddress",
    "azureADDeviceId",
    "deviceRegistrationState",
    "deviceCategoryDisplayName",
    "isSupervised",
    "exchangeLastSuccessfulSyncDateTime",
    "exchangeAccessState",
    "exchangeAccessStateReason",
    "remoteAssistanceSessionUrl",
    "remoteAssistanceSessionErrorDetails",
    "isEncrypted",
    "userPrincipalName",
    "model",
    "manufacturer",
    "imei",
    "complianceGracePeriodExpirationDateTime",
    "serialNumber",
    "phoneNumber",
    "androidSecurityPatchLevel",
    "userDisplayName",
    "configurationManagerClientEnabledFeatures",
    "wiFiMacAddress",
    "deviceHealthAttestationState",
    "subscriberCarrier",
    "meid",
    "totalStorageSpaceInBytes",
    "freeStorageSpaceInBytes",
    "managedDeviceName",
    "partnerReportedThreatState",
    "requireUserEnrollmentApproval",
    "managementCertificateExpirationDate",
    "iccid",
    "udid",
    "notes",
    "ethernetMacAddress",
    "physicalMemoryInBytes",
    "enrollmentProfileName",
    "managementState",
)
MANAGED_DEVICE_KNOWN: dict[str, str] = {name.lower(): name for name in MANAGED_DEVICE_PROPS}

# Intune's "never" is 0001-01-01 and its "no grace period" 9999-12-31, not null.
NO_GRACE_PERIOD = "9999-12-31T23:59:59Z"
NEVER = "0001-01-01T00:00:00Z"
INTUNE_MDM_APP_ID = "0000000a-0000-0000-c000-000000000000"
CONFIGMGR_AGENTS = frozenset(a for a in MANAGEMENT_AGENTS if a.startswith("configurationManager"))
# A co-managed device with its compliance workload on Intune, the state in which Intune's
# complianceState is what reaches Entra; tests set compliancePolicy False for the other one.
CO_MANAGED_FEATURES: dict[str, bool] = {
    **dict.fromkeys(vocabulary.CONFIGMGR_FEATURES, False),
    "inventory": True,
    "compliancePolicy": True,
}


class EntityError(ValueError):
    """Invalid admin input for an entity (answered 400 by the admin API)."""


def _check_enum(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise EntityError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _check_enum_ci(name: str, value: Any, allowed: tuple[str | None, ...]) -> None:
    """Documented lower-case, seen capitalised in tenants: compare without case."""
    if value is None and None in allowed:
        return
    lowered = {a.lower() for a in allowed if a is not None}
    if not isinstance(value, str) or value.lower() not in lowered:
        raise EntityError(f"{name} must be one of {list(allowed)} (any case), got {value!r}")


def alternative_security_id(device_id: str) -> dict[str, Any]:
    """The registration key a device gets when it registers (device-delta.md example: type 2,
    identityProvider null, a base64 key); derived from deviceId so generators stay seeded."""
    key = base64.b64encode(f"X509:<SHA1-TP-PUBKEY>{device_id.replace('-', '')}".encode())
    return {"type": 2, "identityProvider": None, "key": key.decode()}


def new_device(props: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """A full device from admin input: unknown keys refused, gaps filled with Graph defaults."""
    unknown = [k for k in props if k not in DEVICE_KNOWN.values()]
    if unknown:
        raise EntityError(f"unknown device properties: {unknown}")
    stamp = iso_z(now)
    device: dict[str, Any] = dict.fromkeys(DEVICE_PROPS)
    device_id = str(props.get("deviceId") or uuid.uuid4())
    device.update(
        {
            "id": str(uuid.uuid4()),
            "accountEnabled": True,
            "deviceId": device_id,
            "displayName": "DESKTOP-SIM",
            "operatingSystem": "Windows",
            "operatingSystemVersion": "10.0.22631.4317",
            "trustType": "AzureAd",
            "profileType": "RegisteredDevice",
            "registrationDateTime": stamp,
            "createdDateTime": stamp,
            "approximateLastSignInDateTime": stamp,
            "deviceVersion": 2,
            "physicalIds": [],
            "alternativeSecurityIds": [alternative_security_id(device_id)],
            "systemLabels": [],
            "extensionAttributes": dict.fromkeys(EXTENSION_ATTRIBUTES),
        }
    )
    device.update(props)
    validate_device(device)
    return device


def validate_device(device: Mapping[str, Any]) -> None:
    if not isinstance(device.get("id"), str) or not GUID_RE.match(device["id"]):
        raise EntityError(f"device id must be a GUID, got {device.get('id')!r}")
    if not isinstance(device.get("deviceId"), str) or not GUID_RE.match(device["deviceId"]):
        raise EntityError(f"deviceId must be a GUID, got {device.get('deviceId')!r}")
    _check_enum("trustType", device.get("trustType"), TRUST_TYPES)
    _check_enum("profileType", device.get("profileType"), vocabulary.PROFILE_TYPES)
    _check_enum_ci("deviceOwnership", device.get("deviceOwnership"), vocabulary.DEVICE_OWNERSHIP)
    _check_enum_ci("managementType", device.get("managementType"), vocabulary.MANAGEMENT_TYPES)
    flags = ("accountEnabled", "isCompliant", "isManaged", "isManagementRestricted", "isRooted")
    for flag in (*flags, "onPremisesSyncEnabled"):
        if device.get(flag) not in (True, False, None):
            raise EntityError(f"{flag} must be a boolean or null")
    for name in DEVICE_DATES:
        _check_date(name, device.get(name))
    for name in ("physicalIds", "systemLabels"):
        value = device.get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise EntityError(f"{name} must be a list of strings (not nullable)")
    _check_alternative_security_ids(device.get("alternativeSecurityIds"))


def _check_date(name: str, value: Any) -> None:
    if value is None:
        return
    try:
        parse_datetime(value)
    except (TypeError, ValueError, AttributeError) as exc:
        raise EntityError(f"{name} must be an ISO 8601 timestamp or null, got {value!r}") from exc


def _check_alternative_security_ids(value: Any) -> None:
    # alternativesecurityid.md: {type: Int32, identityProvider: String, key: Binary (base64)}
    if not isinstance(value, list):
        raise EntityError("alternativeSecurityIds must be a list (not nullable)")
    for entry in value:
        if (
            not isinstance(entry, dict)
            or set(entry) - {"type", "identityProvider", "key"}
            or not isinstance(entry.get("type"), int)
            or not isinstance(entry.get("key"), str)
            or not isinstance(entry.get("identityProvider"), str | None)
        ):
            raise EntityError(
                "each alternativeSecurityId is {type: int, identityProvider: str|null, "
                f"key: base64 str}}, got {entry!r}"
            )


def check_device_patch(patch: Mapping[str, Any]) -> None:
    unknown = [k for k in patch if k not in DEVICE_KNOWN.values()]
    if unknown:
        raise EntityError(f"unknown device properties: {unknown}")
    if "id" in patch:
        raise EntityError("id cannot be patched")


def new_managed_device(props: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    unknown = [k for k in props if k not in MANAGED_DEVICE_KNOWN.values()]
    if unknown:
        raise EntityError(f"unknown managedDevice properties: {unknown}")
    stamp = iso_z(now)
    device: dict[str, Any] = dict.fromkeys(MANAGED_DEVICE_PROPS)
    device.update(
        {
            "id": str(uuid.uuid4()),
            "deviceName": "DESKTOP-SIM",
            "managedDeviceOwnerType": "company",
            "deviceActionResults": [],
            "enrolledDateTime": stamp,
            "lastSyncDateTime": stamp,
            "operatingSystem": "Windows",
            "complianceState": "compliant",
            "jailBroken": "Unknown",
            "managementAgent": "mdm",
            "osVersion": "10.0.22631.4317",
            "easActivated": False,
            "easDeviceId": "",
            "easActivationDateTime": NEVER,
            "azureADRegistered": True,
            "deviceEnrollmentType": "windowsAzureADJoin",
            "emailAddress": "",
            "azureADDeviceId": "00000000-0000-0000-0000-000000000000",
            "deviceRegistrationState": "registered",
            "deviceCategoryDisplayName": "Unknown Category",
            "isSupervised": False,
            "exchangeLastSuccessfulSyncDateTime": NEVER,
            "exchangeAccessState": "none",
            "exchangeAccessStateReason": "none",
            "isEncrypted": True,
            "userPrincipalName": "",
            "model": "",
            "manufacturer": "",
            "imei": "",
            "complianceGracePeriodExpirationDateTime": NO_GRACE_PERIOD,
            "serialNumber": "",
            "phoneNumber": "",
            "androidSecurityPatchLevel": "",
            "userDisplayName": "",
            "wiFiMacAddress": "",
            "subscriberCarrier": "",
            "meid": "",
            "totalStorageSpaceInBytes": 0,
            "freeStorageSpaceInBytes": 0,
            "managedDeviceName": "",
            "partnerReportedThreatState": "unknown",
            "requireUserEnrollmentApproval": False,
            "managementCertificateExpirationDate": iso_z(now + timedelta(days=365)),
            "ethernetMacAddress": "",
            "physicalMemoryInBytes": 0,
            "enrollmentProfileName": "",
            "managementState": "managed",
        }
    )
    if props.get("managementAgent") in CONFIGMGR_AGENTS:
        device["configurationManagerClientEnabledFeatures"] = dict(CO_MANAGED_FEATURES)
    device.update(props)
    validate_managed_device(device)
    return device


_MANAGED_ENUMS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("complianceState", COMPLIANCE_STATES),
    ("managementAgent", MANAGEMENT_AGENTS),
    ("managedDeviceOwnerType", vocabulary.MANAGED_DEVICE_OWNER_TYPES),
    ("deviceEnrollmentType", vocabulary.MANAGED_ENROLLMENT_TYPES),
    ("deviceRegistrationState", vocabulary.DEVICE_REGISTRATION_STATES),
    ("managementState", vocabulary.MANAGEMENT_STATES),
    ("exchangeAccessState", vocabulary.EXCHANGE_ACCESS_STATES),
    ("exchangeAccessStateReason", vocabulary.EXCHANGE_ACCESS_STATE_REASONS),
    ("partnerReportedThreatState", vocabulary.PARTNER_THREAT_STATES),
)


def validate_managed_device(device: Mapping[str, Any]) -> None:
    if not isinstance(device.get("id"), str) or not device["id"]:
        raise EntityError("managedDevice id must be a non-empty string")
    for name, allowed in _MANAGED_ENUMS:
        _check_enum(name, device.get(name), allowed)
    for name in (
        "enrolledDateTime",
        "lastSyncDateTime",
        "easActivationDateTime",
        "exchangeLastSuccessfulSyncDateTime",
        "complianceGracePeriodExpirationDateTime",
        "managementCertificateExpirationDate",
    ):
        _check_date(name, device.get(name))
    features = device.get("configurationManagerClientEnabledFeatures")
    if features is not None and (
        not isinstance(features, dict)
        or set(features) - {*vocabulary.CONFIGMGR_FEATURES, "@odata.type"}
        or not all(isinstance(features[k], bool) for k in features if k != "@odata.type")
    ):
        raise EntityError(
            "configurationManagerClientEnabledFeatures must be null or an object of booleans "
            f"named {list(vocabulary.CONFIGMGR_FEATURES)}, got {features!r}"
        )


def check_managed_device_patch(patch: Mapping[str, Any]) -> None:
    unknown = [k for k in patch if k not in MANAGED_DEVICE_KNOWN.values()]
    if unknown:
        raise EntityError(f"unknown managedDevice properties: {unknown}")
    if "id" in patch:
        raise EntityError("id cannot be patched")


def entra_compliance(compliance_state: str) -> bool:
    """What Intune writes to the Entra device's isCompliant for a compliance state.

    In grace period the device still counts as compliant for Conditional Access.
    """
    return compliance_state in ("compliant", "inGracePeriod")
