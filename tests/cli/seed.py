"""A small fleet in the Graph simulator, run through the real pipeline into Table storage, for
the CLI and read API tests (tests/shared/processing/test_pipeline.py shows the same path)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from typing import Any

from local.graphsim.admin import SimAdmin
from shared.core.changes import DeviceChange
from shared.core.models import Source
from shared.runtime import Runtime
from shared.settings import Settings
from tests.conftest import CLIENT_STATE
from tests.graph_helpers import add_device

# After seeding: 7 devices, 4 eligible, 3 ineligible (LAPTOP-0042 lost its compliance).
ELIGIBLE, INELIGIBLE = 4, 3
# registrationDateTime and approximateLastSignInDateTime of the two devices named SHARED-PC.
TWINS = {
    "SHARED-PC#1": ("2024-02-05T09:12:00Z", "2025-04-20T07:30:00Z"),
    "SHARED-PC#2": ("2026-10-01T14:03:00Z", "2026-11-24T08:00:00Z"),
}


@dataclass(frozen=True)
class Fleet:
    ids: dict[str, str]  # name -> object id ("SHARED-PC" twice: "SHARED-PC#1", "SHARED-PC#2")
    device_ids: dict[str, str]  # name -> Graph deviceId


def isolated_settings(stack: Any, tenant: str) -> Settings:
    """Settings of their own (tenant, tables, queue, topic) on the running local stack."""
    suffix = uuid.uuid4().hex[:10]
    return Settings(
        client_state=CLIENT_STATE,
        allowed_tenant_ids=frozenset({tenant}),
        device_changes_queue=f"device-changes-{suffix}",
        device_alerts_topic=f"device-alerts-{suffix}",
        service_bus_connection_string=stack.service_bus_connection,
        tables_connection_string=stack.tables_connection,
        table_prefix=f"f{suffix}",
        graph_base_url=stack.graph_url(tenant),
        graph_credential="simulator",
    )


def change(object_id: str) -> DeviceChange:
    message_id = uuid.uuid4().hex
    return DeviceChange(object_id, "updated", Source.SYNC, message_id, message_id, "2026-11-29")


async def seed_fleet(runtime: Runtime, sim: SimAdmin) -> Fleet:
    pipeline = await runtime.pipeline()
    made = {
        "LAPTOP-0042": add_device(sim, name="LAPTOP-0042"),
        "DESKTOP-HR-07": add_device(
            sim, name="DESKTOP-HR-07", trust_type="ServerAd", compliant=None, intune=False
        ),
        "PIXEL-BYOD-19": add_device(
            sim, name="PIXEL-BYOD-19", trust_type="Workplace", compliant=False
        ),
        "KIOSK-LOBBY": add_device(
            sim,
            name="KIOSK-LOBBY",
            trust_type="ServerAd",
            compliant=None,
            intune=False,
            os_version="6.3.9600",
        ),
        "SHARED-PC#1": add_device(sim, name="SHARED-PC"),
        "SHARED-PC#2": add_device(sim, name="shared-pc"),
        "CAD-WS-11": add_device(sim, name="CAD-WS-11", trust_type="ServerAd", enabled=False),
    }
    # Two devices named alike, told apart by when they registered and last signed in: the old
    # one registered in 2024 and has not been seen since spring 2025.
    for twin, (registered, signed_in) in TWINS.items():
        sim.patch_device(
            made[twin]["id"],
            notify=False,
            registrationDateTime=registered,
            approximateLastSignInDateTime=signed_in,
        )
    sim.patch_device(
        made["PIXEL-BYOD-19"]["id"],
        notify=False,
        operatingSystem="Android",
        operatingSystemVersion="14",
    )
    for device in made.values():
        await pipeline.process(change(device["id"]))
    laptop = made["LAPTOP-0042"]
    sim.patch_managed_device(laptop["managedId"], complianceState="noncompliant")
    await pipeline.process(change(laptop["id"]))
    return Fleet(
        ids={name: d["id"] for name, d in made.items()},
        device_ids={name: d["deviceId"] for name, d in made.items()},
    )


ENV_NAMES = {
    "client_state": "GRAPH_CLIENT_STATE",
    "allowed_tenant_ids": "ALLOWED_TENANT_IDS",
    "device_changes_queue": "DEVICE_CHANGES_QUEUE",
    "device_alerts_topic": "DEVICE_ALERTS_TOPIC",
    "service_bus_connection_string": "ServiceBusConnection",
    "service_bus_namespace": "ServiceBusConnection__fullyQualifiedNamespace",
    "tables_connection_string": "TablesConnection",
    "tables_endpoint": "TablesConnection__tableServiceUri",
    "table_prefix": "TABLE_PREFIX",
    "policy": "CA_POLICY",
    "intune_enabled": "INTUNE_ENABLED",
    "graph_base_url": "GRAPH_BASE_URL",
    "graph_credential": "GRAPH_CREDENTIAL",
    "graph_max_retries": "GRAPH_MAX_RETRIES",
    "managed_identity_client_id": "AZURE_CLIENT_ID",
    "stale_sign_in_days": "STALE_SIGN_IN_DAYS",
    "intune_checkin_stale_days": "INTUNE_CHECKIN_STALE_DAYS",
    "intune_checkin_warn_days": "INTUNE_CHECKIN_WARN_DAYS",
    "max_notification_bytes": "MAX_NOTIFICATION_BYTES",
    "event_source": "EVENT_SOURCE",
    "notification_url": "NOTIFICATION_URL",
    "lifecycle_notification_url": "LIFECYCLE_NOTIFICATION_URL",
    "subscription_expiry_minutes": "SUBSCRIPTION_EXPIRY_MINUTES",
    "subscription_renew_before_minutes": "SUBSCRIPTION_RENEW_BEFORE_MINUTES",
    "sync_stale_minutes": "SYNC_STALE_MINUTES",
    "intune_watch_stale_minutes": "INTUNE_WATCH_STALE_MINUTES",
    "sync_page_size": "SYNC_PAGE_SIZE",
    "teams_webhook_url": "TEAMS_WEBHOOK_URL",
    "teams_flap_window_minutes": "TEAMS_FLAP_WINDOW_MINUTES",
    "teams_flap_threshold": "TEAMS_FLAP_THRESHOLD",
    "teams_mass_window_minutes": "TEAMS_MASS_WINDOW_MINUTES",
    "teams_mass_threshold": "TEAMS_MASS_THRESHOLD",
    "remediation_mode": "REMEDIATION_MODE",
    "remediation_max_actions_per_hour": "REMEDIATION_MAX_ACTIONS_PER_HOUR",
    "service_bus_senders": "SERVICE_BUS_SENDERS",
    "enqueue_timeout_ms": "ENQUEUE_TIMEOUT_MS",
    "service_bus_send_timeout_seconds": "SERVICE_BUS_SEND_TIMEOUT_SECONDS",
    "pending_alert_sweep_seconds": "PENDING_ALERT_SWEEP_SECONDS",
    "health_failure_window_minutes": "HEALTH_FAILURE_WINDOW_MINUTES",
    "health_max_failures": "HEALTH_MAX_FAILURES",
    "eligibility_source": "ELIGIBILITY_SOURCE",
    "policy_cache_seconds": "POLICY_CACHE_SECONDS",
    "at_risk_lead_hours": "AT_RISK_LEAD_HOURS",
}


def settings_env(settings: Settings) -> dict[str, str]:
    """The app settings (environment) that Settings.from_env turns back into `settings`."""
    env: dict[str, str] = {}
    for item in fields(settings):
        value = getattr(settings, item.name)
        if value is None:
            continue
        name = ENV_NAMES[item.name]  # a KeyError here: a new setting to map
        if isinstance(value, bool):
            env[name] = "true" if value else "false"
        elif isinstance(value, frozenset):
            env[name] = ",".join(sorted(value))
        else:
            env[name] = str(value)
    return env
