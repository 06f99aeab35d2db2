from __future__ import annotations

import pytest

from shared.core.models import Policy
from shared.settings import Settings, SettingsError

BASE = {"GRAPH_CLIENT_STATE": "s"}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.policy is Policy.COMPLIANT_OR_HYBRID
    assert settings.device_changes_queue == "device-changes"
    assert settings.state_table == "DeviceState"
    assert settings.history_table == "DeviceHistory"
    assert settings.allowed_tenant_ids == frozenset()
    assert settings.intune_enabled


def test_identity_based_connections_and_lists() -> None:
    settings = Settings.from_env(
        {
            **BASE,
            "ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
            "TablesConnection__tableServiceUri": "https://acct.table.core.windows.net",
            "ALLOWED_TENANT_IDS": " A , b ,,",
            "CA_POLICY": "Hybrid",
            "TABLE_PREFIX": "dev1",
        }
    )
    assert settings.service_bus_namespace == "ns.servicebus.windows.net"
    assert settings.service_bus_connection_string is None
    assert settings.tables_endpoint == "https://acct.table.core.windows.net"
    assert settings.allowed_tenant_ids == frozenset({"a", "b"})
    assert settings.policy is Policy.HYBRID
    assert settings.state_table == "dev1DeviceState"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "GRAPH_CLIENT_STATE is not set"),
        ({"GRAPH_CLIENT_STATE": "x" * 129}, "128"),
        ({**BASE, "CA_POLICY": "strict"}, "CA_POLICY='strict' is not one of"),
        ({**BASE, "INTUNE_ENABLED": "maybe"}, "INTUNE_ENABLED"),
        ({**BASE, "STALE_SIGN_IN_DAYS": "ten"}, "STALE_SIGN_IN_DAYS"),
        ({**BASE, "STALE_SIGN_IN_DAYS": "0"}, "outside"),
        ({**BASE, "TABLE_PREFIX": "my-prefix"}, "TABLE_PREFIX"),
        ({**BASE, "GRAPH_CREDENTIAL": "password"}, "GRAPH_CREDENTIAL"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)
