"""Logs: one structured event per decision, and never a secret, token or whole payload."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import azure.functions as func
import pytest

from handlers import lifecycle, webhook
from local.graphsim.admin import SimAdmin
from local.teams_sink import CARD_TYPE, TeamsSink
from shared import logs, telemetry
from shared.consumers.teams import TeamsClient
from shared.core.changes import DeviceChange
from shared.core.models import Source
from shared.runtime import Runtime
from tests.conftest import CLIENT_STATE
from tests.graph_helpers import add_device
from tests.infra.bicep import app_settings
from tests.servicebus_helpers import drain_sessions

ROOT = Path(__file__).resolve().parents[1]
SIG = "TeamsWorkflowSig0123456789abcdef"  # the secret part of a Workflows URL
APP_ENV = {"GRAPH_CLIENT_STATE": "x", "PATH": "/usr/bin:/bin"}
CONNECTION = (
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
)


def run_python(script: str, **env: str) -> str:
    """Stdout of `script` in a fresh interpreter at the repository root (a fresh logging tree)."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**APP_ENV, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def _notification(device_id: str, tenant: str, client_state: str) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "subscriptionId": "s",
        "clientState": client_state,
        "changeType": "updated",
        "resource": f"devices/{device_id}",
        "tenantId": tenant,
        "resourceData": {"@odata.type": "#microsoft.graph.device", "id": device_id},
    }


async def test_decisions_are_logged_as_events_without_secrets(
    runtime: Runtime, sim: SimAdmin, stack, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The app's own logging set-up (function_app.py runs it at import), then every logger at
    # INFO: the level the Python worker forwards to Application Insights, whoever logs.
    telemetry.configure({})
    caplog.set_level(logging.DEBUG, logger="devicemon")
    caplog.set_level(logging.INFO)
    device = add_device(sim)
    body = json.dumps(
        {
            "value": [
                _notification(device["id"], tenant, CLIENT_STATE),
                _notification(device["id"], tenant, "guess"),
            ]
        }
    ).encode()
    request = func.HttpRequest("POST", "http://x/api/graph/notifications", body=body)
    assert (await webhook.notifications(request, runtime)).status_code == 202
    lifecycle_body = json.dumps(
        {
            "value": [
                {
                    "subscriptionId": "s",
                    "tenantId": tenant,
                    "clientState": CLIENT_STATE,
                    "lifecycleEvent": "missed",
                }
            ]
        }
    ).encode()
    assert (
        await lifecycle.lifecycle(
            func.HttpRequest("POST", "http://x/api/graph/lifecycle", body=lifecycle_body), runtime
        )
    ).status_code == 202
    pipeline = await runtime.pipeline()
    await pipeline.process(
        DeviceChange(device["id"], "updated", Source.NOTIFICATION, "m1", "corr-1", "")
    )
    sim.patch_device(device["id"], notify=False, isCompliant=False)
    await pipeline.process(
        DeviceChange(device["id"], "updated", Source.NOTIFICATION, "m2", "corr-2", "")
    )
    await (await runtime.delta_sync()).run("test")
    drain_sessions(stack.service_bus_connection, runtime.settings.device_changes_queue)
    # A Teams Workflows URL carries its secret in the query (sig=): httpx's INFO request line
    # would log it whole.
    async with TeamsSink() as sink:
        teams = TeamsClient(f"{sink.url('logs')}?api-version=2016-06-01&sp=%2Ftriggers&sig={SIG}")
        card = {"type": "AdaptiveCard", "version": "1.4", "body": []}
        message = {"type": "message", "attachments": [{"contentType": CARD_TYPE, "content": card}]}
        try:
            assert await teams.post(message) == 202
        finally:
            await teams.close()

    events = [getattr(r, "devicemon.event", None) for r in caplog.records]
    for expected in (
        "notification_accepted",
        "notifications_dropped",
        "lifecycle_accepted",
        "device_evaluated",
        "alert_published",
        "sync_completed",
    ):
        assert expected in events, f"no {expected} event"
    evaluated = [
        r for r in caplog.records if getattr(r, "devicemon.event", None) == "device_evaluated"
    ]
    assert getattr(evaluated[-1], "devicemon.correlation_id") == "corr-2"
    assert getattr(evaluated[-1], "devicemon.transition") == "lost"
    assert isinstance(getattr(evaluated[-1], "devicemon.duration_ms"), float)

    secrets = [
        SIG,
        CLIENT_STATE,
        "simulator-token",
        "SAS_KEY_VALUE",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq",
    ]
    payload_markers = ['"clientState"', '"resourceData"', "lifecycleEvent"]
    whole = logging.Formatter("%(name)s %(message)s")  # appends any exception and stack
    for record in caplog.records:
        text = (
            whole.format(record)
            + " "
            + " ".join(str(v) for k, v in vars(record).items() if k.startswith("devicemon."))
        )
        for needle in secrets + payload_markers:
            assert needle not in text, f"{needle!r} leaked in a {record.name} log: {text[:200]}"


def test_the_app_raises_the_loggers_that_would_leak_urls() -> None:
    """httpx logs each request's URL at INFO (a Teams URL's sig included) and the Azure SDK
    its requests' URLs and headers; the worker forwards INFO. Importing the app raises them."""
    script = (
        "import logging; logging.getLogger().setLevel(logging.INFO);"  # as the worker does
        "import function_app;"
        "print(*(logging.getLogger(n).getEffectiveLevel() for n in"
        " ('httpx', 'httpcore', 'azure', 'azure.core.pipeline.policies.http_logging_policy',"
        " 'azure.servicebus', 'devicemon')))"
    )
    out = run_python(script)
    *sdk, ours = (int(level) for level in out.split())
    assert all(level >= logging.WARNING for level in sdk), out
    assert ours == logging.INFO  # devicemon's own events still reach Application Insights


def test_quieting_never_lowers_a_logger_set_higher() -> None:
    httpx_logger = logging.getLogger("httpx")
    before = httpx_logger.level
    try:
        httpx_logger.setLevel(logging.ERROR)
        logs.quiet_sdk_loggers()
        assert httpx_logger.level == logging.ERROR
        httpx_logger.setLevel(logging.NOTSET)
        logs.quiet_sdk_loggers()
        assert httpx_logger.level == logging.WARNING
    finally:
        httpx_logger.setLevel(before)


def test_telemetry_is_off_and_not_even_imported_without_a_connection_string() -> None:
    script = "import sys, function_app; print('azure.monitor.opentelemetry' in sys.modules)"
    out = run_python(script)
    assert out.strip() == "False"


def test_telemetry_configures_the_exporter_when_a_connection_string_is_set() -> None:
    script = (
        "from shared import telemetry; import sys;"
        f"print(telemetry.configure({{'APPLICATIONINSIGHTS_CONNECTION_STRING': '{CONNECTION}'}}));"
        "print('azure.monitor.opentelemetry' in sys.modules)"
    )
    assert run_python(script).split() == ["True", "True"]


def test_the_sdk_http_logging_policy_reaches_no_handler_after_the_apps_setup() -> None:
    """The worker's handler sits on the root logger at INFO; after importing the app, the real
    azure-core HTTP logging policy's request dump (URL and headers) never gets to it."""
    script = (
        "import logging\n"
        "seen = []\n"
        "class Worker(logging.Handler):\n"
        "    def emit(self, record): seen.append(record.levelname)\n"
        "logging.getLogger().addHandler(Worker()); logging.getLogger().setLevel(logging.INFO)\n"
        "import function_app\n"
        "from azure.core.pipeline import PipelineContext, PipelineRequest\n"
        "from azure.core.pipeline.policies import HttpLoggingPolicy\n"
        "from azure.core.rest import HttpRequest\n"
        "request = HttpRequest('GET', 'https://table.example/x?sig=secret', headers={'a': 'b'})\n"
        "HttpLoggingPolicy().on_request(PipelineRequest(request, PipelineContext(None)))\n"
        "policy = logging.getLogger('azure.core.pipeline.policies.http_logging_policy')\n"
        "policy.warning('a warning still gets through')\n"
        "print(policy.level, *seen)\n"
    )
    out = run_python(script)
    assert out.split() == [str(logging.WARNING), "WARNING"], out


@pytest.mark.parametrize(
    ("value", "worker"),
    [("true", True), ("True", True), ("1", True), ("false", False), ("", False)],
)
def test_the_worker_setting_is_read_as_the_worker_reads_it(value: str, worker: bool) -> None:
    assert telemetry.worker_exports({telemetry.WORKER_TELEMETRY: value}) is worker


def test_in_azure_the_app_leaves_the_exporter_to_the_worker() -> None:
    """With PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY the worker configured the distro before
    importing the app: a second configure would export every record twice."""
    script = (
        "import logging, sys, function_app\n"
        "print('azure.monitor.opentelemetry' in sys.modules,"
        " logging.getLogger('devicemon').level == logging.INFO,"
        " logging.getLogger('azure').getEffectiveLevel() == logging.WARNING)\n"
    )
    out = run_python(
        script,
        APPLICATIONINSIGHTS_CONNECTION_STRING=CONNECTION,
        PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY="true",
    )
    assert out.split() == ["False", "True", "True"], out


def test_host_and_worker_agree_on_who_exports() -> None:
    """host.json's telemetryMode OpenTelemetry and the worker setting go together (Functions docs,
    opentelemetry-howto.md); in that mode host.json's logging.applicationInsights is ignored, so it
    is not there to mislead."""
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["telemetryMode"] == "OpenTelemetry"
    assert "applicationInsights" not in host.get("logging", {})
    settings = app_settings()
    assert settings[telemetry.WORKER_TELEMETRY].expr == "true"
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in settings
