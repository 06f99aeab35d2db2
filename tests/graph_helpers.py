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


def hybrid_fleet(count: int) -> list[dict[str, Any]]:
    """`count` registered hybrid joined Windows devices with no Intune record (eligible by their
    join alone under compliant_or_hybrid): the fleet of the mass-event tests and benchmarks."""
    return [
        {
            "id": str(uuid.uuid4()),
            "deviceId": str(uuid.uuid4()),
            "displayName": f"BRANCH-PC-{n:04d}",
            "trustType": "ServerAd",
            "profileType": "RegisteredDevice",
            "isCompliant": None,
            "isManaged": False,
            "accountEnabled": True,
            "operatingSystem": "Windows",
            "operatingSystemVersion": "10.0.22631.4460",
        }
        for n in range(count)
    ]
