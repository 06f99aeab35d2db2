"""What every benchmark needs: the local stack, settings pointing at it, percentiles."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence

from local import stack as local_stack
from shared.settings import Settings

CLIENT_STATE = "bench-client-state"


def percentile(samples: Sequence[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "mean": statistics.fmean(samples),
        "max": max(samples),
    }


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def bench_settings(stack: local_stack.Stack, tenant: str) -> Settings:
    return stack.settings(tenant, CLIENT_STATE, table_prefix_letter="b")


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as app settings, for a dev host in a child process."""
    assert settings.service_bus_connection_string and settings.tables_connection_string
    return {
        "GRAPH_CLIENT_STATE": settings.client_state,
        "ALLOWED_TENANT_IDS": ",".join(settings.allowed_tenant_ids),
        "DEVICE_CHANGES_QUEUE": settings.device_changes_queue,
        "DEVICE_ALERTS_TOPIC": settings.device_alerts_topic,
        "ServiceBusConnection": settings.service_bus_connection_string,
        "TablesConnection": settings.tables_connection_string,
        "TABLE_PREFIX": settings.table_prefix,
        "GRAPH_BASE_URL": settings.graph_base_url,
        "GRAPH_CREDENTIAL": settings.graph_credential,
    }
