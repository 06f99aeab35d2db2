"""Shapes of the two entities the simulator serves: Entra `device` and Intune `managedDevice`.

Entities are stored as plain JSON-ready dicts (camelCase keys, Graph value formats) so a
page of 200 devices is a dict projection plus one json.dumps - that is what keeps a
100,000-device delta sync cheap.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from .odata import GUID_RE, iso_z, now_utc

DEVICE_TYPE = "microsoft.graph.device"
MANAGED_DEVICE_TYPE = "microsoft.graph.managedDevice"

# Entra device properties the simulator knows, in Graph's default order.
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
    # device resource (v1.0): "alternativeSecurityIds ... Not nullable"; a hybrid device gets one
    # when it completes registration, a Pending one has none (entra-docs how-to-hybrid-join-verify)
    "alternativeSecurityIds",
    "profileType",
    "registrationDateTime",
    "systemLabels",
    "trustType",
    "extensionAttributes",
)
DEVICE_KNOWN: dict[str, str] = {name.lower(): name for name in DEVICE_PROPS}

EXTENSION_ATTRIBUTES = tuple(f"extensionAttribute{i}" for i in range(1, 16))
TRUST_TYPES = ("AzureAd", "ServerAd", "Workplace", None)

MANAGED_DEVICE_PROPS: tuple[str, ...] = (
    "id",
    "userId",
    "deviceName",
    "managedDeviceOwnerType",
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
    "emailAddress",
    "azureADDeviceId",
    "deviceRegistrationState",
    "deviceCategoryDisplayName",
    "isSupervised",
    "isEncrypted",
    "userPrincipalName",
    "model",
    "manufacturer",
    "serialNumber",
    "userDisplayName",
    "complianceGracePeriodExpirationDateTime",
    "managedDeviceName",
    "partnerReportedThreatState",
)
MANAGED_DEVICE_KNOWN: dict[str, str] = {name.lower(): name for name in MANAGED_DEVICE_PROPS}

COMPLIANCE_STATES = (
    "unknown",
    "compliant",
    "noncompliant",
    "conflict",
    "error",
    "inGracePeriod",
    "configManager",
)
MANAGEMENT_AGENTS = (
    "eas",
    "mdm",
    "easMdm",
    "intuneClient",
    "easIntuneClient",
    "configurationManagerClient",
    "configurationManagerClientMdm",
    "configurationManagerClientMdmEas",
    "unknown",
    "jamf",
    "googleCloudDevicePolicyController",
)
# Intune's "no grace period" value is this sentinel, not null.
NO_GRACE_PERIOD = "9999-12-31T23:59:59Z"
INTUNE_MDM_APP_ID = "0000000a-0000-0000-c000-000000000000"


class EntityError(ValueError):
    """Invalid admin input for an entity (answered 400 by the admin API)."""


def _check_enum(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise EntityError(f"{name} must be one of {list(allowed)}, got {value!r}")


def new_device(props: Mapping[str, Any]) -> dict[str, Any]:
    """A full device from admin input: unknown keys refused, gaps filled with Graph defaults."""
    unknown = [k for k in props if k not in DEVICE_KNOWN.values()]
    if unknown:
        raise EntityError(f"unknown device properties: {unknown}")
    now = iso_z(now_utc())
    device: dict[str, Any] = dict.fromkeys(DEVICE_PROPS)
    device.update(
        {
            "id": str(uuid.uuid4()),
            "accountEnabled": True,
            "deviceId": str(uuid.uuid4()),
            "displayName": "DESKTOP-SIM",
            "operatingSystem": "Windows",
            "operatingSystemVersion": "10.0.22631.4317",
            "trustType": "AzureAd",
            "profileType": "RegisteredDevice",
            "registrationDateTime": now,
            "createdDateTime": now,
            "approximateLastSignInDateTime": now,
            "deviceVersion": 2,
            "physicalIds": [],
            "alternativeSecurityIds": [],
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
    for flag in ("accountEnabled", "isCompliant", "isManaged", "onPremisesSyncEnabled"):
        if device.get(flag) not in (True, False, None):
            raise EntityError(f"{flag} must be a boolean or null")


def check_device_patch(patch: Mapping[str, Any]) -> None:
    unknown = [k for k in patch if k not in DEVICE_KNOWN.values()]
    if unknown:
        raise EntityError(f"unknown device properties: {unknown}")
    if "id" in patch:
        raise EntityError("id cannot be patched")


def new_managed_device(props: Mapping[str, Any]) -> dict[str, Any]:
    unknown = [k for k in props if k not in MANAGED_DEVICE_KNOWN.values()]
    if unknown:
        raise EntityError(f"unknown managedDevice properties: {unknown}")
    now = iso_z(now_utc())
    device: dict[str, Any] = dict.fromkeys(MANAGED_DEVICE_PROPS)
    device.update(
        {
            "id": str(uuid.uuid4()),
            "deviceName": "DESKTOP-SIM",
            "managedDeviceOwnerType": "company",
            "enrolledDateTime": now,
            "lastSyncDateTime": now,
            "operatingSystem": "Windows",
            "complianceState": "compliant",
            "jailBroken": "Unknown",
            "managementAgent": "mdm",
            "osVersion": "10.0.22631.4317",
            "easActivated": False,
            "easDeviceId": "",
            "easActivationDateTime": "0001-01-01T00:00:00Z",
            "azureADRegistered": True,
            "deviceEnrollmentType": "windowsAzureADJoin",
            "emailAddress": "",
            "azureADDeviceId": "00000000-0000-0000-0000-000000000000",
            "deviceRegistrationState": "registered",
            "deviceCategoryDisplayName": "Unknown Category",
            "isSupervised": False,
            "isEncrypted": True,
            "userPrincipalName": "",
            "model": "",
            "manufacturer": "",
            "serialNumber": "",
            "userDisplayName": "",
            "complianceGracePeriodExpirationDateTime": NO_GRACE_PERIOD,
            "managedDeviceName": "",
            "partnerReportedThreatState": "unknown",
        }
    )
    device.update(props)
    validate_managed_device(device)
    return device


def validate_managed_device(device: Mapping[str, Any]) -> None:
    if not isinstance(device.get("id"), str) or not device["id"]:
        raise EntityError("managedDevice id must be a non-empty string")
    _check_enum("complianceState", device.get("complianceState"), COMPLIANCE_STATES)
    _check_enum("managementAgent", device.get("managementAgent"), MANAGEMENT_AGENTS)


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
