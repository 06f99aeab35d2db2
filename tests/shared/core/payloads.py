"""Graph payloads from Microsoft's documentation for the core tests of issue 13, and the alert a
loss of such a device publishes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.core.evaluation import EvaluationOptions, evaluate
from shared.core.events import PreviousVerdict, build_alert
from shared.core.models import DeviceSnapshot, ManagedDeviceSnapshot, Policy, Source, Transition

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# microsoft-graph-docs-contrib device-get's example (id, deviceId, name, OS), an Entra joined
# Windows device that Intune marks noncompliant.
DEVICE_GET: dict[str, Any] = {
    "id": "000005c3-b7a6-4c61-89fc-80bf5ccfc366",
    "deviceId": "6fa60d52-01e7-4b18-8055-4759461fc16b",
    "displayName": "DESKTOP-858MANH",
    "accountEnabled": True,
    "isCompliant": False,
    "isManaged": True,
    "trustType": "AzureAd",
    "operatingSystem": "Windows",
    "operatingSystemVersion": "10.0.19043.1165",
    "profileType": "RegisteredDevice",
}


def lost_alert(
    device: DeviceSnapshot,
    managed: ManagedDeviceSnapshot | None = None,
    policy: Policy = Policy.COMPLIANT_OR_HYBRID,
    previous: PreviousVerdict | None = None,
    version: int = 2,
) -> dict[str, Any]:
    """The `lost` alert for the device as evaluated now, after an eligible verdict."""
    return build_alert(
        transition=Transition.LOST,
        version=version,
        device=device,
        managed=managed,
        evaluation=evaluate(device, managed, EvaluationOptions(policy), NOW),
        previous=previous or PreviousVerdict(True, (), NOW),
        source=Source.SYNC,
        detected_at=NOW,
        correlation_id="c",
        event_source="urn:devicemon",
    )
