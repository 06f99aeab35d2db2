"""OpenTelemetry to Application Insights, when (and only when) it is configured.

With APPLICATIONINSIGHTS_CONNECTION_STRING unset nothing is imported and nothing is sent. With it
set, azure-monitor-opentelemetry exports devicemon's structured log events (their `devicemon.*`
attributes become customDimensions) plus traces of the Azure SDK calls. In Azure, local auth is
off: APPLICATIONINSIGHTS_AUTHENTICATION_STRING ("Authorization=AAD;ClientId=...") makes the
exporter use the managed identity.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from shared import logs

_configured = False


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
    if _configured:
        return True
    from azure.monitor.opentelemetry import configure_azure_monitor

    kwargs: dict[str, object] = {"connection_string": connection, "logger_name": "devicemon"}
    auth = env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "")
    if "ClientId=" in auth:
        from azure.identity import ManagedIdentityCredential

        client_id = auth.split("ClientId=", 1)[1].split(";", 1)[0]
        kwargs["credential"] = ManagedIdentityCredential(client_id=client_id)
    configure_azure_monitor(**kwargs)
    logging.getLogger("devicemon").setLevel(logging.INFO)
    _configured = True
    return True
