"""Building devices in the Graph simulator for tests and the demo."""

from __future__ import annotations

import uuid
from typing import Any

from local.graphsim.admin import SimAdmin


def add_device(
    sim: SimAdmin,
    *,
    name: str = "LAPTOP-0042",
    trust_type: str | None = "AzureAd",
    compliant: bool | None = True,
    enabled: bool = True,
    os_version: str = "10.0.22631.4460",
    intune: bool = True,
    upn: str = "adele.vance@contoso.example",
) -> dict[str, Any]:
    """A device (and, with `intune`, its managed device) without sending notifications."""
    device = {
        "id": str(uuid.uuid4()),
        "deviceId": str(uuid.uuid4()),
        "displayName": name,
        "trustType": trust_type,
        "isCompliant": compliant,
        "isManaged": intune,
        "accountEnabled": enabled,
        "operatingSystem": "Windows",
        "operatingSystemVersion": os_version,
    }
    if intune:
        device["mdmAppId"] = "0000000a-0000-0000-c000-000000000000"
    sim.upsert_device(notify=False, **device)
    if intune:
        managed = sim.upsert_managed_device(
            azureADDeviceId=device["deviceId"],
            deviceName=name,
            complianceState="compliant" if compliant else "noncompliant",
            userPrincipalName=upn,
        )
        device["managedId"] = managed["id"]
    return device
