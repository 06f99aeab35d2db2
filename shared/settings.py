"""App settings: one typed object read from the environment (Functions app settings).

Every name here is documented in local.settings.sample.json and docs/configuration.md; the Bicep
templates set the same names. Connection settings follow the Functions convention: `X` holds a
connection string (local stack), `X__fullyQualifiedNamespace` / `X__tableServiceUri` an identity-based
connection (Azure).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from shared.models import Policy

SERVICE_BUS_CONNECTION = "ServiceBusConnection"
TABLES_CONNECTION = "TablesConnection"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what is expected."""


@dataclass(frozen=True, slots=True)
class Settings:
    client_state: str
    allowed_tenant_ids: frozenset[str]
    device_changes_queue: str = "device-changes"
    device_alerts_topic: str = "device-alerts"
    service_bus_connection_string: str | None = None
    service_bus_namespace: str | None = None
    tables_connection_string: str | None = None
    tables_endpoint: str | None = None
    table_prefix: str = ""
    policy: Policy = Policy.COMPLIANT_OR_HYBRID
    intune_enabled: bool = True
    graph_base_url: str = DEFAULT_GRAPH_URL
    graph_credential: str = "default"
    graph_max_retries: int = 3
    managed_identity_client_id: str | None = None
    stale_sign_in_days: int = 90
    intune_checkin_stale_days: int = 30
    max_notification_bytes: int = 1_048_576
    event_source: str = "urn:devicemon"

    @property
    def state_table(self) -> str:
        return f"{self.table_prefix}DeviceState"

    @property
    def history_table(self) -> str:
        return f"{self.table_prefix}DeviceHistory"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            client_state=_required(env, "GRAPH_CLIENT_STATE"),
            allowed_tenant_ids=frozenset(
                t.strip().lower() for t in env.get("ALLOWED_TENANT_IDS", "").split(",") if t.strip()
            ),
            device_changes_queue=env.get("DEVICE_CHANGES_QUEUE", "device-changes"),
            device_alerts_topic=env.get("DEVICE_ALERTS_TOPIC", "device-alerts"),
            service_bus_connection_string=env.get(SERVICE_BUS_CONNECTION) or None,
            service_bus_namespace=env.get(f"{SERVICE_BUS_CONNECTION}__fullyQualifiedNamespace")
            or None,
            tables_connection_string=env.get(TABLES_CONNECTION) or None,
            tables_endpoint=env.get(f"{TABLES_CONNECTION}__tableServiceUri") or None,
            table_prefix=_table_prefix(env.get("TABLE_PREFIX", "")),
            policy=_policy(env.get("CA_POLICY", Policy.COMPLIANT_OR_HYBRID.value)),
            intune_enabled=_bool(env, "INTUNE_ENABLED", True),
            graph_base_url=env.get("GRAPH_BASE_URL", DEFAULT_GRAPH_URL).rstrip("/"),
            graph_credential=_choice(env, "GRAPH_CREDENTIAL", "default", {"default", "simulator"}),
            graph_max_retries=_int(env, "GRAPH_MAX_RETRIES", 3, 0, 10),
            managed_identity_client_id=env.get("AZURE_CLIENT_ID") or None,
            stale_sign_in_days=_int(env, "STALE_SIGN_IN_DAYS", 90, 1, 3650),
            intune_checkin_stale_days=_int(env, "INTUNE_CHECKIN_STALE_DAYS", 30, 1, 3650),
            max_notification_bytes=_int(
                env, "MAX_NOTIFICATION_BYTES", 1_048_576, 1024, 100_000_000
            ),
            event_source=env.get("EVENT_SOURCE", "urn:devicemon"),
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise SettingsError(f"{name} is not set (see local.settings.sample.json)")
    if name == "GRAPH_CLIENT_STATE" and len(value) > 128:
        raise SettingsError("GRAPH_CLIENT_STATE is longer than the 128 characters Graph accepts")
    return value


def _policy(value: str) -> Policy:
    try:
        return Policy(value.strip().lower())
    except ValueError:
        allowed = ", ".join(p.value for p in Policy)
        raise SettingsError(f"CA_POLICY={value!r} is not one of: {allowed}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (true/false)")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is outside {low}..{high}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: set[str]) -> str:
    value = env.get(name) or default
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(sorted(allowed))}")
    return value


def _table_prefix(value: str) -> str:
    if value and not (value.isalnum() and value[0].isalpha() and len(value) <= 40):
        raise SettingsError("TABLE_PREFIX must be letters and digits, starting with a letter")
    return value
