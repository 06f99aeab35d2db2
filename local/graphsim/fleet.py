"""Deterministic generator of a realistic mixed device fleet (the `generate` admin call).

Mix (by design, roughly what a mid-size Windows-heavy tenant looks like):
- trust: 50% Entra joined (AzureAd), 30% hybrid joined (ServerAd), 20% registered (Workplace);
- OS: joined/hybrid are Windows 10/11; registered devices are mostly iOS/Android/macOS;
- managed: ~90% of joined, ~85% of hybrid, ~40% of registered; ~88% of managed compliant;
- ~3% disabled, ~8% stale sign-ins, some Intune grace periods, some co-managed (ConfigMgr);
- every registered device has its alternativeSecurityId; `pending_fraction` of the hybrid
  devices are Pending instead (synced, never registered: entities.PENDING_HYBRID).

Speed matters (100,000 devices in about a second): timestamps come from precomputed
day/time-of-day tables instead of datetime formatting, GUIDs from one getrandbits call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .entities import (
    CO_MANAGED_FEATURES,
    EXTENSION_ATTRIBUTES,
    INTUNE_MDM_APP_ID,
    NEVER,
    NO_GRACE_PERIOD,
    PENDING_HYBRID,
    alternative_security_id,
)

WINDOWS_VERSIONS = (
    (0.30, "10.0.19045.5011"),  # Windows 10 22H2
    (0.50, "10.0.22621.4317"),  # Windows 11 22H2 (cumulative share 0.50)
    (0.85, "10.0.22631.4460"),  # Windows 11 23H2
    (1.00, "10.0.26100.2314"),  # Windows 11 24H2
)
HARDWARE = (
    ("Microsoft Corporation", "Surface Laptop 5"),
    ("Microsoft Corporation", "Surface Pro 9"),
    ("Dell Inc.", "Latitude 7440"),
    ("Dell Inc.", "OptiPlex 7010"),
    ("LENOVO", "21HD0057GE"),
    ("HP", "HP EliteBook 840 G10 Notebook PC"),
)
MOBILE = (
    ("iOS", "17.6.1", "Apple", "iPhone 15"),
    ("iOS", "18.1", "Apple", "iPhone 14 Pro"),
    ("Android", "14.0", "samsung", "SM-S918B"),
    ("Android", "13.0", "Google", "Pixel 7"),
    ("MacMDM", "14.6.1", "Apple", "MacBookPro18,1"),
    ("Linux", "22.04", "Dell Inc.", "XPS 13 9315"),  # Ubuntu: the one Linux CA covers
)
MAX_AGE_DAYS = 1100
_VARIANT = "89ab"


@dataclass
class FleetResult:
    devices: list[dict[str, Any]]
    managed: list[dict[str, Any]]


def _guid(rng: random.Random) -> str:
    """A version-4 shaped GUID from the seeded generator (uuid.UUID is 3x slower)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


class _Clock:
    """ISO timestamps relative to now, as table lookups."""

    def __init__(self, now: datetime) -> None:
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        self.now = now
        self.now_seconds = now.hour * 3600 + now.minute * 60 + now.second
        self.days_ago = [
            (today - timedelta(days=d)).strftime("%Y-%m-%dT") for d in range(MAX_AGE_DAYS + 1)
        ]
        self.days_ahead = [(today + timedelta(days=d)).strftime("%Y-%m-%dT") for d in range(8)]
        self.time_of_day = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)]

    def ago(self, days: int, minute: int, second: int) -> str:
        """`days` days ago at minute-of-day `minute` (today: never later than now)."""
        if days == 0:
            minute = min(minute, self.now_seconds // 60)
        return f"{self.days_ago[days]}{self.time_of_day[minute]}{second:02d}Z"

    def ahead(self, days: int, minute: int) -> str:
        return f"{self.days_ahead[days]}{self.time_of_day[minute]}00Z"


def generate_fleet(
    count: int,
    seed: int,
    *,
    with_managed: bool = True,
    domain: str = "contoso.onmicrosoft.com",
    pending_fraction: float = 0.0,
    now: datetime | None = None,
) -> FleetResult:
    rng = random.Random(seed)
    rand = rng.random
    clock = _Clock((now or datetime.now(UTC)).replace(microsecond=0))
    devices: list[dict[str, Any]] = []
    managed: list[dict[str, Any]] = []
    users = max(count // 2, 1)
    for index in range(count):
        roll = rand()
        trust = "AzureAd" if roll < 0.5 else ("ServerAd" if roll < 0.8 else "Workplace")
        if trust == "Workplace" and rand() < 0.7:
            os_name, os_version, manufacturer, model = MOBILE[int(rand() * len(MOBILE))]
        else:
            os_name = "Windows"
            pick = rand()
            os_version = next(v for share, v in WINDOWS_VERSIONS if pick < share)
            manufacturer, model = HARDWARE[int(rand() * len(HARDWARE))]
        managed_share = 0.9 if trust == "AzureAd" else (0.85 if trust == "ServerAd" else 0.4)
        is_managed = rand() < managed_share
        # Drawn only when asked for, so the default fleet of a seed never changes.
        pending = trust == "ServerAd" and pending_fraction > 0 and rand() < pending_fraction
        is_managed = is_managed and not pending
        compliance_roll = rand()
        age_days = 1 + int(rand() * (MAX_AGE_DAYS - 1))
        registered = clock.ago(age_days, int(rand() * 1440), int(rand() * 60))
        # ~8% stale devices (no sign-in for 90+ days) - the classic clean-up population.
        seen_days = 90 + int(rand() * 310) if rand() < 0.08 else int(rand() * 30)
        last_sign_in = clock.ago(min(seen_days, age_days), int(rand() * 1440), int(rand() * 60))
        if trust == "ServerAd":
            name = f"CONTOSO-PC-{index:06d}"
        elif os_name == "Windows":
            name = f"DESKTOP-{rng.getrandbits(28):07X}"
        else:
            name = f"{model.split(',')[0].replace(' ', '')}-{index:06d}"
        device_id = _guid(rng)
        hybrid = trust == "ServerAd"
        if trust == "AzureAd":
            enrollment = "windowsAzureADJoin"
        elif hybrid:
            enrollment = "windowsCoManagement"
        else:
            enrollment = "userEnrollment"
        device: dict[str, Any] = {
            "id": _guid(rng),
            "deletedDateTime": None,
            "accountEnabled": rand() >= 0.03,
            "approximateLastSignInDateTime": last_sign_in,
            "complianceExpirationDateTime": None,
            "createdDateTime": registered,
            "deviceCategory": None,
            "deviceId": device_id,
            "deviceMetadata": None,
            "deviceOwnership": "Personal" if trust == "Workplace" else "Company",
            "deviceVersion": 2,
            "displayName": name,
            "enrollmentProfileName": None,
            "enrollmentType": enrollment if is_managed else None,
            "isCompliant": (compliance_roll < 0.88) if is_managed else None,
            "isManaged": is_managed,
            "isManagementRestricted": None,
            "isRooted": False if os_name in ("iOS", "Android") else None,
            "managementType": "MDM" if is_managed else None,
            "manufacturer": manufacturer,
            "mdmAppId": INTUNE_MDM_APP_ID if is_managed else None,
            "model": model,
            "onPremisesLastSyncDateTime": clock.ago(0, int(rand() * 1440), 0) if hybrid else None,
            "onPremisesSecurityIdentifier": None,
            "onPremisesSyncEnabled": True if hybrid else None,
            "operatingSystem": os_name,
            "operatingSystemVersion": os_version,
            "physicalIds": [],
            "alternativeSecurityIds": [alternative_security_id(device_id)],
            "profileType": "RegisteredDevice",
            "registrationDateTime": registered,
            "systemLabels": [],
            "trustType": trust,
            "extensionAttributes": dict.fromkeys(EXTENSION_ATTRIBUTES),
        }
        if pending:
            device.update(PENDING_HYBRID)
            device["alternativeSecurityIds"] = []
        devices.append(device)
        if not (with_managed and is_managed):
            continue
        if compliance_roll < 0.83:
            state = "compliant"
        elif compliance_roll < 0.88:
            state = "inGracePeriod"
        elif compliance_roll < 0.97:
            state = "noncompliant"
        else:
            state = ("error", "conflict", "unknown")[int(rand() * 3)]
        grace = (
            clock.ahead(1 + int(rand() * 6), int(rand() * 1440))
            if state == "inGracePeriod"
            else NO_GRACE_PERIOD
        )
        user = f"user{int(rand() * users):06d}"
        upn = f"{user}@{domain}"
        managed_id, user_id = _guid(rng), _guid(rng)
        last_sync = clock.ago(int(rand() * 3), int(rand() * 1440), 0)
        agent = "configurationManagerClientMdm" if hybrid and rand() < 0.4 else "mdm"
        encrypted = rand() < 0.95
        serial = f"{rng.getrandbits(48):012X}"
        managed.append(
            {
                "id": managed_id,
                "userId": user_id,
                "deviceName": name,
                "managedDeviceOwnerType": "personal" if trust == "Workplace" else "company",
                "deviceActionResults": [],
                "enrolledDateTime": registered,
                "lastSyncDateTime": last_sync,
                "operatingSystem": "macOS" if os_name == "MacMDM" else os_name,
                "complianceState": state,
                "jailBroken": "False" if os_name in ("iOS", "Android") else "Unknown",
                "managementAgent": agent,
                "osVersion": os_version,
                "easActivated": False,
                "easDeviceId": "",
                "easActivationDateTime": NEVER,
                "azureADRegistered": True,
                "deviceEnrollmentType": enrollment,
                "activationLockBypassCode": None,
                "emailAddress": upn,
                "azureADDeviceId": device_id,
                "deviceRegistrationState": "registered",
                "deviceCategoryDisplayName": "Unknown Category",
                "isSupervised": False,
                "exchangeLastSuccessfulSyncDateTime": NEVER,
                "exchangeAccessState": "none",
                "exchangeAccessStateReason": "none",
                "remoteAssistanceSessionUrl": None,
                "remoteAssistanceSessionErrorDetails": None,
                "isEncrypted": encrypted,
                "userPrincipalName": upn,
                "model": model,
                "manufacturer": manufacturer,
                "imei": "",
                "complianceGracePeriodExpirationDateTime": grace,
                "serialNumber": serial,
                "phoneNumber": "",
                "androidSecurityPatchLevel": "",
                "userDisplayName": user,
                "configurationManagerClientEnabledFeatures": dict(CO_MANAGED_FEATURES)
                if agent == "configurationManagerClientMdm"
                else None,
                "wiFiMacAddress": "",
                "deviceHealthAttestationState": None,
                "subscriberCarrier": "",
                "meid": "",
                "totalStorageSpaceInBytes": 0,
                "freeStorageSpaceInBytes": 0,
                "managedDeviceName": f"{user}_{os_name}_{index}",
                "partnerReportedThreatState": "unknown",
                "requireUserEnrollmentApproval": False,
                "managementCertificateExpirationDate": clock.ahead(7, 0),
                "iccid": None,
                "udid": None,
                "notes": None,
                "ethernetMacAddress": "",
                "physicalMemoryInBytes": 0,
                "enrollmentProfileName": "",
                "managementState": "managed",
            }
        )
    return FleetResult(devices, managed)
