"""OpenTelemetry to Application Insights, when (and only when) it is configured.

With APPLICATIONINSIGHTS_CONNECTION_STRING unset nothing is imported and nothing is sent. With it
set, azure-monitor-opentelemetry exports devicemon's structured log events (their `devicemon.*`
attributes become customDimensions) plus traces of the Azure SDK calls. In Azure, local auth is
off: APPLICATIONINSIGHTS_AUTHENTICATION_STRING ("Authorization=AAD;ClientId=...") makes the
exporter use the managed identity.

Who configures the exporter: in Azure, the Python worker. The Functions docs (azure-functions,
opentelemetry-howto.md) ask for host.json `"telemetryMode": "OpenTelemetry"` and the app setting
PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true: the worker then configures the distro before it
imports the app and tells the host it exports its own logs (capability WorkerOpenTelemetryEnabled),
so the host stops relaying them and each record reaches Application Insights once. Configuring the
distro again here would add a second exporter and send every record twice; this module configures
it only where no worker did (a connection string set outside Azure Functions).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from shared import logs

_configured = False
# The app setting with which the Python worker configures the distro itself.
WORKER_TELEMETRY = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
_TRUE_LIKE = {"1", "true", "t", "yes", "y"}  # what the worker accepts as on


def worker_exports(env: Mapping[str, str]) -> bool:
    """Whether the Python worker configured the Azure Monitor distro (see the module docstring)."""
    return env.get(WORKER_TELEMETRY, "").strip().lower() in _TRUE_LIKE


def configure(env: Mapping[str, str] | None = None) -> bool:
    """Idempotent; returns whether telemetry export is on.

    Always quiets the chatty SDK loggers first (shared/logs.py says which and why): the Python
    worker forwards their INFO records to Application Insights with or without this exporter.
    """
    global _configured
    logs.quiet_sdk_loggers()
    env = os.environ if env is None else env
    connection = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "")
    if not connection:
        return False
    if not worker_exports(env) and not _configured:
        _configure_distro(connection, env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""))
        _configured = True
    # Exported from the root logger (the worker's distro) or from this one (ours): at INFO.
    logging.getLogger("devicemon").setLevel(logging.INFO)
    return True


def _configure_distro(connection: str, auth: str) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    kwargs: dict[str, object] = {"connection_string": connection, "logger_name": "devicemon"}
    if "ClientId=" in auth:
        from azure.identity import ManagedIdentityCredential

        client_id = auth.split("ClientId=", 1)[1].split(";", 1)[0]
        kwargs["credential"] = ManagedIdentityCredential(client_id=client_id)
    configure_azure_monitor(**kwargs)
