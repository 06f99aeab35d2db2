"""Alerts as the topic carries them, for the consumers' tests: valid against docs/alert.schema.json."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import jsonschema
from azure.functions.servicebus import ServiceBusMessage

ALERT_SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "docs" / "alert.schema.json").read_text()
)
T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
# Built once: jsonschema.validate() checks the schema itself on every call (~0.4 s each); the
# schema is checked here, once per run.
_VALIDATOR_CLASS = jsonschema.validators.validator_for(ALERT_SCHEMA)
_VALIDATOR_CLASS.check_schema(ALERT_SCHEMA)
ALERT_VALIDATOR = _VALIDATOR_CLASS(ALERT_SCHEMA)
# The same, also checking `format` (date-time, uri...) as the event builders' tests do.
ALERT_FORMAT_VALIDATOR = _VALIDATOR_CLASS(ALERT_SCHEMA, format_checker=jsonschema.FormatChecker())


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def make_alert(
    *,
    lost: bool = True,
    reasons: tuple[str, ...] = ("NOT_COMPLIANT",),
    at: datetime = T0,
    name: str | None = "LAPTOP-0042",
    object_id: str | None = None,
    device_id: str | None = "6fa60d52-01e7-4b18-8055-4759461fc16b",
    join_type: str = "entra_joined",
    management: str = "intune",
    managed_device_id: str | None = "7d0c3f5a-2b1e-4c8d-9e6f-0a1b2c3d4e5f",
    upn: str | None = "adele.vance@contoso.example",
    warnings: tuple[str, ...] = (),
    compliance: str | None = None,
    grace: datetime | None = None,
    source: str = "notification",
    alert_id: str | None = None,
    version: int = 2,
) -> dict[str, Any]:
    object_id = object_id or str(uuid.uuid4())
    current = list(reasons) if lost else []
    previous = [] if lost else list(reasons)
    alert = {
        "specversion": "1.0",
        "id": alert_id or str(uuid.uuid4()),
        "source": "urn:devicemon",
        "type": "devicemon.eligibility.lost" if lost else "devicemon.eligibility.restored",
        "subject": f"devices/{object_id}",
        "time": iso(at),
        "datacontenttype": "application/json",
        "data": {
            "device": {
                "objectId": object_id,
                "deviceId": device_id,
                "displayName": name,
                "joinType": join_type,
                "trustType": {"entra_joined": "AzureAd", "hybrid_joined": "ServerAd"}.get(
                    join_type, "Workplace"
                ),
                "operatingSystem": "Windows",
                "operatingSystemVersion": "10.0.22631.4460",
                "management": management,
                "managedDeviceId": managed_device_id,
                "userPrincipalName": upn,
            },
            "previous": {
                "eligible": lost,
                "reasons": previous,
                "evaluatedAt": iso(at - timedelta(hours=12)),
            },
            "current": {
                "eligible": not lost,
                "reasons": current,
                "warnings": list(warnings),
                "compliance": compliance or ("noncompliant" if lost else "compliant"),
                "gracePeriodExpires": iso(grace) if grace else None,
            },
            "policy": "compliant_or_hybrid",
            "severity": "high" if lost else "info",
            "detection": {"source": source, "detectedAt": iso(at), "correlationId": "corr-1"},
            "stateVersion": version,
        },
    }
    ALERT_VALIDATOR.validate(alert)
    return alert


def as_message(alert: dict[str, Any] | str, delivery_count: int = 0) -> func.ServiceBusMessage:
    """The message the Functions worker hands a topic trigger."""
    body = alert if isinstance(alert, str) else json.dumps(alert)
    message_id = alert["id"] if isinstance(alert, dict) else str(uuid.uuid4())
    return ServiceBusMessage(
        body=body.encode(),
        message_id=message_id,
        delivery_count=delivery_count,
        content_type="application/cloudevents+json; charset=utf-8",
        application_properties={},
        user_properties={},
    )
