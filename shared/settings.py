"""App settings: one typed object read from the environment (Functions app settings).

Every name here is documented in local.settings.sample.json and docs/configuration.md; the Bicep
templates set the same names. Connection settings follow the Functions convention: `X` holds a
connection string (local stack), `X__fullyQualifiedNamespace` / `X__tableServiceUri` an identity-based
connection (Azure).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.core.models import Policy
from shared.core.risk import (
    DEFAULT_AT_RISK_LEAD_HOURS,
    MAX_AT_RISK_LEAD_HOURS,
    MIN_AT_RISK_LEAD_HOURS,
)
from shared.core.tenant_settings import (
    DEFAULT_CHECKIN_WARNING_DAYS,
    MAX_CHECKIN_THRESHOLD_DAYS,
    MIN_STALE_SIGN_IN_DAYS,
)

SERVICE_BUS_CONNECTION = "ServiceBusConnection"
TABLES_CONNECTION = "TablesConnection"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
# Graph's maximum lifetime for subscriptions to directory resources (just under 29 days).
MAX_DIRECTORY_SUBSCRIPTION_MINUTES = 41_760


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
    # CA_POLICY: the device controls of your Conditional Access policy's Grant blade. Both ticked
    # with "Require all the selected controls" (the portal's default) = compliant_and_hybrid;
    # with "Require one of the selected controls" = compliant_or_hybrid (devicemon's default);
    # one ticked = compliant or hybrid (docs/reason-codes.md).
    policy: Policy = Policy.COMPLIANT_OR_HYBRID
    # ELIGIBILITY_SOURCE: auto (the tenant's CA policies when they can be read, CA_POLICY
    # otherwise), ca_policies (the same, health degraded while they cannot be read) or
    # ca_policy_setting (CA_POLICY alone); docs/ca-policies.md.
    eligibility_source: str = "auto"
    # How long a worker keeps the policies it loaded; a policy change re-evaluates the fleet
    # once that long has passed.
    policy_cache_seconds: int = 300
    intune_enabled: bool = True
    graph_base_url: str = DEFAULT_GRAPH_URL
    graph_credential: str = "default"
    graph_max_retries: int = 3
    managed_identity_client_id: str | None = None
    stale_sign_in_days: int = 90
    # The compliance status validity period assumed until the tenant's own has been read.
    intune_checkin_stale_days: int = 30
    intune_checkin_warn_days: int = DEFAULT_CHECKIN_WARNING_DAYS
    # AT_RISK_LEAD_HOURS: how long before a known deadline an eligible device is at risk.
    at_risk_lead_hours: int = DEFAULT_AT_RISK_LEAD_HOURS
    max_notification_bytes: int = 1_048_576
    # Senders per Service Bus entity (each used by one invocation at a time) and the bounds on a
    # send: on Graph's request path (3 s deadline) and everywhere else (well inside a lock).
    service_bus_senders: int = 4
    enqueue_timeout_ms: int = 2000
    service_bus_send_timeout_seconds: int = 30
    event_source: str = "urn:devicemon"
    # --- delta sync and subscription upkeep ---
    notification_url: str | None = None
    lifecycle_notification_url: str | None = None
    subscription_expiry_minutes: int = 4320
    subscription_renew_before_minutes: int = 1440
    sync_stale_minutes: int = 30
    intune_watch_stale_minutes: int = 60
    sync_page_size: int | None = None
    # --- stranded alerts and health ---
    pending_alert_sweep_seconds: int = 120
    health_failure_window_minutes: int = 15
    health_max_failures: int = 10
    # --- alert consumers: Teams and remediation ---
    # A secret (whoever has it can post to the channel): kept out of repr and logs.
    teams_webhook_url: str | None = field(default=None, repr=False)
    teams_flap_window_minutes: int = 60
    teams_flap_threshold: int = 4
    teams_mass_window_minutes: int = 10
    teams_mass_threshold: int = 25
    remediation_mode: str = "off"
    remediation_max_actions_per_hour: int = 30

    @property
    def state_table(self) -> str:
        return f"{self.table_prefix}DeviceState"

    @property
    def history_table(self) -> str:
        return f"{self.table_prefix}DeviceHistory"

    @property
    def sync_table(self) -> str:
        return f"{self.table_prefix}DevicemonSync"

    @property
    def enqueue_timeout_seconds(self) -> float:
        return self.enqueue_timeout_ms / 1000

    @property
    def pending_alerts_table(self) -> str:
        return f"{self.table_prefix}PendingAlerts"

    @property
    def failures_table(self) -> str:
        return f"{self.table_prefix}ProcessingFailures"

    @property
    def deadlines_table(self) -> str:
        return f"{self.table_prefix}DeviceDeadlines"

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
            eligibility_source=_choice(
                env, "ELIGIBILITY_SOURCE", "auto", {"auto", "ca_policies", "ca_policy_setting"}
            ),
            policy_cache_seconds=_int(env, "POLICY_CACHE_SECONDS", 300, 0, 3600),
            intune_enabled=_bool(env, "INTUNE_ENABLED", True),
            graph_base_url=env.get("GRAPH_BASE_URL", DEFAULT_GRAPH_URL).rstrip("/"),
            graph_credential=_choice(env, "GRAPH_CREDENTIAL", "default", {"default", "simulator"}),
            graph_max_retries=_int(env, "GRAPH_MAX_RETRIES", 3, 0, 10),
            managed_identity_client_id=env.get("AZURE_CLIENT_ID") or None,
            stale_sign_in_days=_stale_sign_in_days(env),
            intune_checkin_stale_days=_int(
                env, "INTUNE_CHECKIN_STALE_DAYS", 30, 1, MAX_CHECKIN_THRESHOLD_DAYS
            ),
            intune_checkin_warn_days=_int(
                env, "INTUNE_CHECKIN_WARN_DAYS", DEFAULT_CHECKIN_WARNING_DAYS, 1, 60
            ),
            at_risk_lead_hours=_int(
                env,
                "AT_RISK_LEAD_HOURS",
                DEFAULT_AT_RISK_LEAD_HOURS,
                MIN_AT_RISK_LEAD_HOURS,
                MAX_AT_RISK_LEAD_HOURS,
            ),
            max_notification_bytes=_int(
                env, "MAX_NOTIFICATION_BYTES", 1_048_576, 1024, 100_000_000
            ),
            service_bus_senders=_int(env, "SERVICE_BUS_SENDERS", 4, 1, 64),
            enqueue_timeout_ms=_int(env, "ENQUEUE_TIMEOUT_MS", 2000, 100, 60_000),
            service_bus_send_timeout_seconds=_int(
                env, "SERVICE_BUS_SEND_TIMEOUT_SECONDS", 30, 1, 240
            ),
            event_source=env.get("EVENT_SOURCE", "urn:devicemon"),
            notification_url=env.get("NOTIFICATION_URL") or None,
            lifecycle_notification_url=env.get("LIFECYCLE_NOTIFICATION_URL") or None,
            subscription_expiry_minutes=_int(
                env, "SUBSCRIPTION_EXPIRY_MINUTES", 4320, 45, MAX_DIRECTORY_SUBSCRIPTION_MINUTES
            ),
            subscription_renew_before_minutes=_int(
                env,
                "SUBSCRIPTION_RENEW_BEFORE_MINUTES",
                1440,
                15,
                MAX_DIRECTORY_SUBSCRIPTION_MINUTES,
            ),
            sync_stale_minutes=_int(env, "SYNC_STALE_MINUTES", 30, 1, 10080),
            intune_watch_stale_minutes=_int(env, "INTUNE_WATCH_STALE_MINUTES", 60, 5, 10080),
            sync_page_size=_int(env, "SYNC_PAGE_SIZE", 0, 0, 999) or None,
            pending_alert_sweep_seconds=_int(env, "PENDING_ALERT_SWEEP_SECONDS", 120, 10, 86_400),
            health_failure_window_minutes=_int(env, "HEALTH_FAILURE_WINDOW_MINUTES", 15, 1, 1440),
            health_max_failures=_int(env, "HEALTH_MAX_FAILURES", 10, 0, 1_000_000),
            # --- alert consumers: Teams and remediation ---
            teams_webhook_url=env.get("TEAMS_WEBHOOK_URL", "").strip() or None,
            teams_flap_window_minutes=_int(env, "TEAMS_FLAP_WINDOW_MINUTES", 60, 1, 1440),
            teams_flap_threshold=_int(env, "TEAMS_FLAP_THRESHOLD", 4, 2, 100),
            teams_mass_window_minutes=_int(env, "TEAMS_MASS_WINDOW_MINUTES", 10, 1, 1440),
            teams_mass_threshold=_int(env, "TEAMS_MASS_THRESHOLD", 25, 2, 100_000),
            remediation_mode=_choice(env, "REMEDIATION_MODE", "off", {"off", "dry-run", "on"}),
            remediation_max_actions_per_hour=_int(
                env, "REMEDIATION_MAX_ACTIONS_PER_HOUR", 30, 1, 100_000
            ),
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


def _stale_sign_in_days(env: Mapping[str, str]) -> int:
    days = _int(env, "STALE_SIGN_IN_DAYS", 90, 1, 3650)
    if days < MIN_STALE_SIGN_IN_DAYS:
        raise SettingsError(
            f"STALE_SIGN_IN_DAYS={days} is below {MIN_STALE_SIGN_IN_DAYS}: Entra refreshes a "
            "device's approximateLastSignInDateTime only about every 14 days, and Microsoft "
            f"advises against treating anything younger than {MIN_STALE_SIGN_IN_DAYS} days as "
            "stale (docs/configuration.md)"
        )
    return days


def _choice(env: Mapping[str, str], name: str, default: str, allowed: set[str]) -> str:
    value = env.get(name) or default
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(sorted(allowed))}")
    return value


def _table_prefix(value: str) -> str:
    if value and not (value.isalnum() and value[0].isalpha() and len(value) <= 40):
        raise SettingsError("TABLE_PREFIX must be letters and digits, starting with a letter")
    return value
