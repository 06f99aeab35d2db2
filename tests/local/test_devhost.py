"""Tests for the local Functions dev host (local/devhost) against tests/local/devhost_sample_app.py.

HTTP, timer, schedule parsing and settings tests run anywhere. The Service Bus tests start
the local AMQP broker (python -m local.broker) and are skipped when it is not available.
Waits poll with deadlines; nothing asserts on elapsed time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for entry in (str(ROOT), str(HERE)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

import azure.functions as func  # noqa: E402
import devhost_sample_app as sample  # noqa: E402

from local.devhost import DevHost  # noqa: E402
from local.devhost.connections import MissingConnectionError, resolve_connection  # noqa: E402
from local.devhost.ncrontab import (  # noqa: E402
    CronSchedule,
    IntervalSchedule,
    ScheduleError,
    parse_schedule,
)
from local.devhost.routes import RouteTemplate  # noqa: E402
from local.devhost.settings import (  # noqa: E402
    SettingError,
    format_timespan,
    load_host_config,
    load_local_settings,
    parse_timespan,
    resolve_setting_expression,
)
from local.ports import free_port, wait_for_port  # noqa: E402

FUNCTION_KEY = "test-function-key"
MASTER_KEY = "test-master-key"


async def poll(condition: Callable[[], Any], within: float = 20.0, what: str = "") -> Any:
    """Return condition()'s first truthy value, or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------
# NCRONTAB / TimeSpan schedules
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 */5 * * * *", datetime(2024, 1, 1, 10, 2, 30), datetime(2024, 1, 1, 10, 5, 0)),
        ("0 */5 * * * *", datetime(2024, 1, 1, 10, 5, 0), datetime(2024, 1, 1, 10, 10, 0)),
        ("*/10 * * * * *", datetime(2024, 1, 1, 10, 0, 5), datetime(2024, 1, 1, 10, 0, 10)),
        ("* * * * * *", datetime(2024, 1, 1, 23, 59, 59), datetime(2024, 1, 2, 0, 0, 0)),
        ("15,45 * * * * *", datetime(2024, 1, 1, 10, 0, 15), datetime(2024, 1, 1, 10, 0, 45)),
        ("5/20 * * * * *", datetime(2024, 1, 1, 10, 0, 6), datetime(2024, 1, 1, 10, 0, 25)),
        ("0 10-20/5 * * * *", datetime(2024, 1, 1, 10, 16, 0), datetime(2024, 1, 1, 10, 20, 0)),
        # Weekdays 1-5; 2024-01-06 is a Saturday.
        ("0 30 9 * * 1-5", datetime(2024, 1, 6, 8, 0, 0), datetime(2024, 1, 8, 9, 30, 0)),
        ("0 0 12 * * Mon,Wed", datetime(2024, 1, 2, 13, 0, 0), datetime(2024, 1, 3, 12, 0, 0)),
        ("0 0 0 * * Sunday", datetime(2024, 1, 1, 0, 0, 0), datetime(2024, 1, 7, 0, 0, 0)),
        ("0 0 0 1 1 *", datetime(2024, 6, 1, 0, 0, 0), datetime(2025, 1, 1, 0, 0, 0)),
        ("0 0 0 1 JAN,jul *", datetime(2024, 2, 1, 0, 0, 0), datetime(2024, 7, 1, 0, 0, 0)),
        ("0 0 0 31 * *", datetime(2024, 4, 1, 0, 0, 0), datetime(2024, 5, 31, 0, 0, 0)),
        ("0 0 0 29 2 *", datetime(2023, 3, 1, 0, 0, 0), datetime(2024, 2, 29, 0, 0, 0)),
        # NCrontab ANDs day-of-month with day-of-week: Friday the 13th.
        ("0 0 0 13 * 5", datetime(2024, 1, 1, 0, 0, 0), datetime(2024, 9, 13, 0, 0, 0)),
        ("30 15 2 * * *", datetime(2024, 1, 1, 2, 15, 30, 500), datetime(2024, 1, 2, 2, 15, 30)),
    ],
)
def test_ncrontab_next_occurrence(expression: str, after: datetime, expected: datetime) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(after) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",  # 5 fields: the host needs seconds
        "* * * * * * *",
        "60 * * * * *",
        "* 60 * * * *",
        "* * 24 * * *",
        "* * * 0 * *",
        "* * * * 13 *",
        "* * * * * 7",
        "*/0 * * * * *",
        "5-1 * * * * *",
        "a * * * * *",
        "1,,2 * * * * *",
        "0 0 0 30 2 *",  # never fires
        "",
        "every minute",
        "00:00:00",
        "25:00:00",
    ],
)
def test_schedule_rejects_invalid(expression: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(expression)


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("00:00:05", timedelta(seconds=5)),
        ("01:30:00", timedelta(hours=1, minutes=30)),
        ("1.00:00:00", timedelta(days=1)),
        ("00:00:00.500", timedelta(milliseconds=500)),
    ],
)
def test_timespan_schedule(expression: str, interval: timedelta) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.interval == interval
    start = datetime(2024, 1, 1)
    assert schedule.next_after(start) == start + interval


# ---------------------------------------------------------------------------------------
# Settings, host.json, connections, routes
# ---------------------------------------------------------------------------------------


def test_setting_expressions() -> None:
    env = {"QUEUE": "device-changes", "ENV": "dev"}
    assert resolve_setting_expression("%QUEUE%", env) == "device-changes"
    assert resolve_setting_expression("alerts-%ENV%", env) == "alerts-dev"
    assert resolve_setting_expression("plain", env) == "plain"
    with pytest.raises(SettingError, match="MISSING"):
        resolve_setting_expression("%MISSING%", env)


def test_local_settings_do_not_override_environment(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(
        '{"IsEncrypted": false, "Values": {"A": "from-file", "B": "from-file", "N": 3}}'
    )
    env = {"A": "from-env"}
    values = load_local_settings(path, env)
    assert env == {"A": "from-env", "B": "from-file", "N": "3"}
    assert values["A"] == "from-file"


def test_host_json_parsing() -> None:
    config = load_host_config(
        {
            "version": "2.0",
            "extensions": {
                "http": {"routePrefix": ""},
                "serviceBus": {
                    "maxConcurrentCalls": 4,
                    "maxConcurrentSessions": 2,
                    "sessionIdleTimeout": "00:00:01.500",
                    "autoCompleteMessages": True,
                },
            },
        }
    )
    assert config.route_prefix == ""
    assert config.service_bus.max_concurrent_calls == 4
    assert config.service_bus.max_concurrent_sessions == 2
    assert config.service_bus.session_idle_timeout == 1.5
    defaults = load_host_config(None)
    assert defaults.route_prefix == "api"
    assert defaults.service_bus.max_concurrent_calls == 16
    assert defaults.service_bus.max_concurrent_sessions == 8
    assert parse_timespan("00:05:00") == timedelta(minutes=5)


def test_connection_resolution() -> None:
    conn = "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v"
    by_string = resolve_connection("ServiceBusConnection", {"ServiceBusConnection": conn})
    assert by_string.connection_string == conn
    by_identity = resolve_connection(
        "ServiceBusConnection",
        {"ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net"},
    )
    assert by_identity.connection_string is None
    assert by_identity.fully_qualified_namespace == "ns.servicebus.windows.net"
    with pytest.raises(MissingConnectionError):
        resolve_connection("ServiceBusConnection", {})


@pytest.mark.parametrize(
    ("route", "path", "expected"),
    [
        ("devices/{id}", "/api/devices/42", {"id": "42"}),
        ("devices/{id}", "/API/Devices/42/", {"id": "42"}),
        ("devices/{id}", "/api/devices", None),
        ("devices/{id:int}", "/api/devices/abc", None),
        ("devices/{id:guid}", f"/api/devices/{uuid.UUID(int=1)}", {"id": str(uuid.UUID(int=1))}),
        ("devices/{id?}", "/api/devices", {}),
        ("devices/{id=none}", "/api/devices", {"id": "none"}),
        ("files/{*path}", "/api/files/a/b.txt", {"path": "a/b.txt"}),
        ("users/{name}", "/api/users/J%C3%B6rg", {"name": "Jörg"}),
        ("items/{id:min(10)}", "/api/items/5", None),
        ("{a}-{b}", "/api/x-y", {"a": "x", "b": "y"}),
    ],
)
def test_route_templates(route: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.compile("api", route).match(path) == expected


def test_route_precedence_literal_first() -> None:
    literal = RouteTemplate.compile("api", "devices/export")
    param = RouteTemplate.compile("api", "devices/{id}")
    assert literal.precedence < param.precedence


# ---------------------------------------------------------------------------------------
# HTTP triggers
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def http_host() -> AsyncIterator[DevHost]:
    async with DevHost(
        sample.app,
        port=0,
        only={"http"},
        function_keys=[FUNCTION_KEY],
        master_key=MASTER_KEY,
        max_body_size=1024,
    ) as host:
        yield host


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_http_request_mapping(http_host: DevHost, client: aiohttp.ClientSession) -> None:
    url = f"{http_host.api_url}/devices/42?x=1&x=2&y=z"
    async with client.get(url, headers={"X-Test": "yes"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["x-served-by"] == "get_device"
        payload = await response.json()
    assert payload == {
        "id": "42",
        "method": "GET",
        "url": url,
        "params": {"x": "1,2", "y": "z"},  # repeated names joined, as the host does
        "x_test": "yes",
        "is_request": True,
    }


async def test_http_sync_function_body_and_status(
    http_host: DevHost, client: aiohttp.ClientSession
) -> None:
    sample.recorder.clear()
    async with client.post(
        f"{http_host.api_url}/echo",
        data=b"hello \xff",
        headers={"x-functions-key": FUNCTION_KEY, "Content-Type": "application/octet-stream"},
    ) as response:
        assert response.status == 201
        assert await response.read() == b"hello \xff"
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["x-method"] == "POST"
    async with client.put(
        f"{http_host.api_url}/echo?code={FUNCTION_KEY}",
        data="hé",
        headers={"Content-Type": "text/plain"},
    ) as response:
        assert response.status == 201
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await response.text() == "hé"
    # Sync functions run on the worker thread pool, never on the event loop thread.
    assert all(name.startswith("devhost-worker") for name in sample.recorder.get("echo_thread"))


async def test_http_function_keys(http_host: DevHost, client: aiohttp.ClientSession) -> None:
    async with client.post(f"{http_host.api_url}/echo", data=b"x") as response:
        assert response.status == 401
    async with client.post(f"{http_host.api_url}/echo?code=wrong", data=b"x") as response:
        assert response.status == 401
    # Anonymous functions never need a key.
    async with client.get(f"{http_host.api_url}/devices/1") as response:
        assert response.status == 200


@pytest.mark.parametrize(
    ("key", "function_level", "admin_level"),
    [
        (None, 401, 401),
        ("wrong", 401, 401),
        (FUNCTION_KEY, 201, 401),  # a function key never opens an admin-level route
        (MASTER_KEY, 201, 200),  # the master key opens every level
    ],
)
async def test_http_auth_levels_take_the_keys_the_host_takes(
    http_host: DevHost,
    client: aiohttp.ClientSession,
    key: str | None,
    function_level: int,
    admin_level: int,
) -> None:
    """functions-bindings-http-webhook-trigger.md: function level takes a function (or host)
    key, admin level the master key only; either as x-functions-key or ?code=."""
    headers = {"x-functions-key": key} if key else {}
    async with client.post(f"{http_host.api_url}/echo", data=b"x", headers=headers) as response:
        assert response.status == function_level
    query = f"?code={key}" if key else ""
    async with client.get(f"{http_host.api_url}/admin-only{query}") as response:
        assert response.status == admin_level
        if admin_level == 200:
            assert await response.text() == "admin ok"
    # The host's own admin API is admin level too.
    async with client.get(f"{http_host.base_url}/admin/host/status{query}") as response:
        assert response.status == admin_level
    async with client.post(f"{http_host.base_url}/admin/functions/no-such{query}") as response:
        assert response.status == (404 if admin_level == 200 else 401)


async def test_http_empty_query_values_are_dropped(
    http_host: DevHost, client: aiohttp.ClientSession
) -> None:
    """The host copies a query value to the Python worker only when it is not empty
    (azure-functions-host RpcMessageConversionExtensions.ToRpcHttp)."""
    url = f"{http_host.api_url}/devices/7?a=&b=1&flag&d=x&d=&e=%20"
    async with client.get(url) as response:
        payload = await response.json()
    assert payload["params"] == {"b": "1", "d": "x,", "e": " "}
    assert payload["url"] == url  # the URL keeps the query as sent


async def test_http_exception_is_bare_500(
    http_host: DevHost, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"{http_host.api_url}/boom") as response:
        assert response.status == 500
        assert "internal detail" not in await response.text()


async def test_http_routing_edges(http_host: DevHost, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{http_host.api_url}/devices/not-an-int") as response:
        assert response.status == 404
    # Wrong method on an existing route is a 404, like the host.
    async with client.get(f"{http_host.api_url}/echo?code={FUNCTION_KEY}") as response:
        assert response.status == 404
    async with client.get(f"{http_host.api_url}/files/a/b/c.txt") as response:
        assert await response.text() == "a/b/c.txt"
    async with client.get(f"{http_host.base_url}/devices/1") as response:
        assert response.status == 404  # no route prefix


async def test_http_response_variants(http_host: DevHost, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{http_host.api_url}/cookies") as response:
        assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    async with client.get(f"{http_host.api_url}/nothing") as response:
        assert response.status == 500  # None is not an HTTP response, as in the worker
    async with client.get(f"{http_host.api_url}/context") as response:
        name, invocation_id = (await response.text()).split()
        assert name == "with_context"
        assert uuid.UUID(invocation_id)


async def test_http_indexing_checks_like_the_worker() -> None:
    # Module-level `func`: the string annotations must resolve, as in a real function_app.py.
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="a")
    def returns_none(req: func.HttpRequest) -> None:
        return None

    @app.route(route="b")
    def returns_optional(req: func.HttpRequest) -> func.HttpResponse | None:
        return None

    @app.route(route="c")
    def returns_text(req: func.HttpRequest) -> str:
        return "ok"

    @app.route(route="d")  # trigger_arg_name defaults to "req"
    def wrong_parameter(request: func.HttpRequest) -> str:
        return "never indexed"

    async with DevHost(app, port=0, only={"http"}) as host:
        assert "declared in Python but not as bindings" in host.errors["wrong_parameter"]
        assert "does not match binding type" in host.errors["returns_none"]
        assert "non-type return annotation" in host.errors["returns_optional"]
        assert [r.spec.name for r in host.http_routes] == ["returns_text"]


async def test_http_body_limit(http_host: DevHost, client: aiohttp.ClientSession) -> None:
    async with client.post(
        f"{http_host.api_url}/echo?code={FUNCTION_KEY}", data=b"x" * 2048
    ) as response:
        assert response.status == 413


async def test_stop_finishes_in_flight_requests(client: aiohttp.ClientSession) -> None:
    sample.recorder.clear()
    host = DevHost(sample.app, port=0, only={"http"})
    await host.start()
    try:
        request = asyncio.create_task(client.get(f"{host.api_url}/slow"))
        await poll(lambda: sample.recorder.get("slow_started"), what="slow request to start")
    finally:
        await host.stop()
    response = await request
    assert response.status == 200
    assert await response.text() == "finished"


async def test_function_timeout_fails_the_invocation(client: aiohttp.ClientSession) -> None:
    """host.json functionTimeout: past it the invocation fails (a bare 500, as for any failed
    invocation) and a coroutine is cancelled; a thread runs on until it returns by itself."""
    sample.recorder.clear()
    sample.hang_release.clear()
    host_json = {"version": "2.0", "functionTimeout": "00:00:00.2"}
    async with DevHost(sample.app, port=0, only={"http"}, host_json=host_json) as host:
        assert host.config.function_timeout == 0.2
        async with client.get(f"{host.api_url}/hang-async") as response:
            assert response.status == 500
        assert sample.recorder.get("hang_async") == ["started", "cancelled"]
        try:
            async with client.get(f"{host.api_url}/hang-sync") as response:
                assert response.status == 500
            assert sample.recorder.get("hang_sync") == ["started"]
        finally:
            sample.hang_release.set()  # lets the thread end, so the host can stop
    assert sample.recorder.get("hang_sync") == ["started", "released"]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, 1800.0),  # absent: the Flex Consumption default, 30 minutes
        ("00:05:00", 300.0),
        ("1.00:00:00", 86400.0),
        ("00:00:00.25", 0.25),
        ("-1", None),  # unbounded
        (-1, None),
    ],
)
def test_function_timeout_from_host_json(value: Any, seconds: float | None) -> None:
    data = {} if value is None else {"functionTimeout": value}
    assert load_host_config(data).function_timeout == seconds


@pytest.mark.parametrize("value", ["00:00:00", "5 minutes", "-00:01:00"])
def test_function_timeout_must_be_a_positive_timespan(value: str) -> None:
    with pytest.raises(ValueError, match=r"functionTimeout|TimeSpan"):
        load_host_config({"functionTimeout": value})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(300.0, "00:05:00"), (0.2, "00:00:00.2000000"), (93784.5, "1.02:03:04.5000000")],
)
def test_timespans_print_as_the_host_prints_them(seconds: float, text: str) -> None:
    assert format_timespan(seconds) == text


def test_the_shipped_host_json_timeout_is_the_one_the_dev_host_enforces() -> None:
    assert load_host_config(ROOT / "host.json").function_timeout == 300.0


# ---------------------------------------------------------------------------------------
# Timer triggers
# ---------------------------------------------------------------------------------------


async def test_timer_fires_and_admin_invoke(client: aiohttp.ClientSession) -> None:
    sample.recorder.clear()
    async with DevHost(sample.app, port=0, only={"timer"}, function_keys=[]) as host:
        assert list(host.timers) == ["every_second"]
        calls = await poll(
            lambda: (c := sample.recorder.get("every_second")) and len(c) >= 2 and c,
            what="two timer invocations",
        )
        assert all(c["type"] == "TimerRequest" for c in calls)
        assert all(isinstance(c["past_due"], bool) for c in calls)
        assert calls[1]["status"]["Last"] is not None
        before = len(sample.recorder.get("every_second"))
        async with client.post(f"{host.base_url}/admin/functions/every_second") as response:
            assert response.status == 202
        await poll(lambda: len(sample.recorder.get("every_second")) > before, what="manual run")
        async with client.post(f"{host.base_url}/admin/functions/nope") as response:
            assert response.status == 404


async def test_disabled_function_is_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobs.every_second.Disabled", "true")
    async with DevHost(sample.app, port=0, only={"timer"}) as host:
        assert host.timers == {}


async def test_missing_setting_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVHOST_TEST_QUEUE", raising=False)
    monkeypatch.delenv(SB_ENV, raising=False)
    async with DevHost(sample.app, port=0, only={"servicebus"}) as host:
        assert "DEVHOST_TEST_QUEUE" in host.errors["on_queue"]


# ---------------------------------------------------------------------------------------
# CLI in a subprocess
# ---------------------------------------------------------------------------------------


def test_cli_subprocess_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.devhost",
            "--app",
            "devhost_sample_app:app",
            "--root",
            str(HERE),
            "--port",
            str(port),
            "--only",
            "http",
            "--quiet",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line == f"devhost listening on http://127.0.0.1:{port}"
        wait_for_port(port)
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/devices/7") as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------------------
# Service Bus triggers against the local broker
# ---------------------------------------------------------------------------------------

SB_ENV = "DevhostTestServiceBus"


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local.broker", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout=20)
        yield (
            f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
            "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def sb_entities(broker: str) -> Iterator[dict[str, str]]:
    run = uuid.uuid4().hex[:8]
    names = {
        SB_ENV: broker,
        "DEVHOST_TEST_QUEUE": f"devhost-plain-{run}",
        "DEVHOST_TEST_SESSION_QUEUE": f"device-changes-devhost-{run}",
        "DEVHOST_TEST_TOPIC": f"device-alerts-devhost-{run}",
    }
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(names)
    yield names
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
async def sb_host(sb_entities: dict[str, str]) -> AsyncIterator[DevHost]:
    host_json = {
        "version": "2.0",
        "extensions": {
            "serviceBus": {
                "maxConcurrentCalls": 3,
                "maxConcurrentSessions": 4,
                "sessionIdleTimeout": "00:00:01",
            }
        },
    }
    async with DevHost(sample.app, port=0, only={"servicebus"}, host_json=host_json) as host:
        assert not host.errors, host.errors
        await host.wait_listening()
        yield host


@pytest.fixture(scope="module")
async def sb_client(sb_entities: dict[str, str]) -> AsyncIterator[Any]:
    from azure.servicebus.aio import ServiceBusClient

    async with ServiceBusClient.from_connection_string(sb_entities[SB_ENV]) as sb:
        yield sb


async def test_sb_queue_message_completed(
    sb_host: DevHost, sb_client: Any, sb_entities: dict[str, str]
) -> None:
    from azure.servicebus import ServiceBusMessage

    queue = sb_entities["DEVHOST_TEST_QUEUE"]
    message_id = f"ok-{uuid.uuid4().hex[:8]}"
    async with sb_client.get_queue_sender(queue) as sender:
        await sender.send_messages(
            ServiceBusMessage(
                b'{"deviceId": "d1"}',
                message_id=message_id,
                correlation_id="corr-1",
                content_type="application/json",
                subject="device.changed",
                application_properties={"kind": "change", "n": 3},
            )
        )
    got = await poll(
        lambda: [c for c in sample.recorder.get("on_queue") if c["message_id"] == message_id],
        what="queue message",
    )
    call = got[0]
    assert call["type"] == "ServiceBusMessage"
    assert call["body"] == '{"deviceId": "d1"}'
    assert call["correlation_id"] == "corr-1"
    assert call["content_type"] == "application/json"
    assert call["subject"] == call["label"] == "device.changed"
    assert call["application_properties"] == {"kind": "change", "n": 3}
    assert call["user_properties"] == call["application_properties"]
    assert call["delivery_count"] == 1
    assert call["sequence_number"] is not None
    assert call["enqueued_time_utc"] is not None
    assert call["lock_token"]
    assert call["metadata_message_id"] == message_id
    # Completed: nothing is left on the queue (peek does not lock or compete).
    async with sb_client.get_queue_receiver(queue) as receiver:
        remaining = await receiver.peek_messages(max_message_count=10)
    assert [m for m in remaining if str(m.message_id) == message_id] == []


async def test_sb_failure_abandons_then_dead_letters(
    sb_host: DevHost, sb_client: Any, sb_entities: dict[str, str]
) -> None:
    from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue

    queue = sb_entities["DEVHOST_TEST_QUEUE"]
    message_id = f"poison-{uuid.uuid4().hex[:8]}"
    async with sb_client.get_queue_sender(queue) as sender:
        await sender.send_messages(ServiceBusMessage(b"poison", message_id=message_id))

    dead: list[Any] = []
    async with sb_client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        deadline = time.monotonic() + 30
        while not dead and time.monotonic() < deadline:
            for message in await dlq.receive_messages(max_message_count=10, max_wait_time=1):
                await dlq.complete_message(message)
                if str(message.message_id) == message_id:
                    dead.append(message)
    assert dead, "poison message never reached the dead-letter queue"
    assert dead[0].dead_letter_reason == "MaxDeliveryCountExceeded"
    attempts = [
        c["delivery_count"]
        for c in sample.recorder.get("on_queue")
        if c["message_id"] == message_id
    ]
    # Every failed attempt was abandoned and redelivered with the next delivery count.
    assert len(attempts) >= 2
    assert attempts == list(range(1, len(attempts) + 1))


async def test_sb_max_concurrent_calls(
    sb_host: DevHost, sb_client: Any, sb_entities: dict[str, str]
) -> None:
    from azure.servicebus import ServiceBusMessage

    sample.recorder.clear()
    queue = sb_entities["DEVHOST_TEST_QUEUE"]
    async with sb_client.get_queue_sender(queue) as sender:
        await sender.send_messages([ServiceBusMessage(f"slow-{n}") for n in range(9)])
    await poll(
        lambda: (
            sample.recorder.running == 0
            and len([c for c in sample.recorder.get("on_queue") if c["body"].startswith("slow")])
            == 9
        ),
        what="nine slow messages",
    )
    # host.json maxConcurrentCalls=3 caps parallel invocations; they do overlap.
    assert 2 <= sample.recorder.max_running <= 3


async def test_sb_sessions_in_order_one_at_a_time(
    sb_host: DevHost, sb_client: Any, sb_entities: dict[str, str]
) -> None:
    from azure.servicebus import ServiceBusMessage

    sample.recorder.clear()
    queue = sb_entities["DEVHOST_TEST_SESSION_QUEUE"]
    sessions = [f"device-{i}" for i in range(4)]
    per_session = 5
    async with sb_client.get_queue_sender(queue) as sender:
        batch = [
            ServiceBusMessage(f"{sid}:{n}", session_id=sid)
            for n in range(per_session)
            for sid in sessions  # interleaved across sessions
        ]
        await sender.send_messages(batch)
    await poll(
        lambda: len(sample.recorder.get("on_session")) >= len(sessions) * per_session,
        within=30,
        what="all session messages",
    )
    calls = sample.recorder.get("on_session")
    for sid in sessions:
        bodies = [body for s, body in calls if s == sid]
        assert bodies == [f"{sid}:{n}" for n in range(per_session)], sid
    assert sample.recorder.session_overlaps == []
    assert sample.recorder.max_parallel_sessions >= 2


async def test_sb_topic_subscription(
    sb_host: DevHost, sb_client: Any, sb_entities: dict[str, str]
) -> None:
    from azure.servicebus import ServiceBusMessage

    topic = sb_entities["DEVHOST_TEST_TOPIC"]
    message_id = f"alert-{uuid.uuid4().hex[:8]}"
    async with sb_client.get_topic_sender(topic) as sender:
        await sender.send_messages(
            ServiceBusMessage(b"device offline", message_id=message_id, subject="alert")
        )
    got = await poll(
        lambda: [c for c in sample.recorder.get("on_alert") if c["message_id"] == message_id],
        what="topic message",
    )
    assert got[0]["body"] == "device offline"
    assert got[0]["subject"] == "alert"


def _start_broker(port: int, config: Path | None = None) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "local.broker", "--port", str(port)]
    if config is not None:
        args += ["--config", str(config)]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL)
    wait_for_port(port, timeout=20)
    return process


async def _is_empty(sb: Any, queue: str) -> bool:
    async with sb.get_queue_receiver(queue) as receiver:
        return not await receiver.peek_messages(max_message_count=5)


async def test_sb_lock_renewal_for_long_invocations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invocations longer than the lock duration keep their message/session lock."""
    from azure.servicebus import ServiceBusMessage
    from azure.servicebus.aio import ServiceBusClient

    config = tmp_path / "broker.json"
    config.write_text(
        '{"queues": {"device-changes*": {"requires_session": true, "lock_duration_seconds": 3},'
        ' "*": {"lock_duration_seconds": 3}}}'
    )
    work_seconds = 3.5  # longer than the 3 s lock
    port = free_port()
    conn = (
        f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
    )
    monkeypatch.setenv("LockTestServiceBus", conn)

    app = func.FunctionApp()
    calls: list[tuple[str, int | None]] = []
    done: list[str] = []

    @app.service_bus_queue_trigger(
        arg_name="m", queue_name="lock-plain", connection="LockTestServiceBus"
    )
    async def long_plain(m: func.ServiceBusMessage) -> None:
        calls.append(("plain", m.delivery_count))
        await asyncio.sleep(work_seconds)
        done.append("plain")

    @app.service_bus_queue_trigger(
        arg_name="m",
        queue_name="device-changes-lock",
        connection="LockTestServiceBus",
        is_sessions_enabled=True,
    )
    async def long_session(m: func.ServiceBusMessage) -> None:
        calls.append(("session", m.delivery_count))
        await asyncio.sleep(work_seconds)
        done.append("session")

    broker_process = _start_broker(port, config)
    try:
        async with (
            DevHost(app, port=0, session_idle_timeout=1) as host,
            ServiceBusClient.from_connection_string(conn) as sb,
        ):
            # No wait_listening(): messages sent first are picked up once the receivers attach.
            assert set(host.service_bus) == {"long_plain", "long_session"}
            async with sb.get_queue_sender("lock-plain") as sender:
                await sender.send_messages(ServiceBusMessage("x"))
            async with sb.get_queue_sender("device-changes-lock") as sender:
                await sender.send_messages(ServiceBusMessage("y", session_id="s"))
            await poll(lambda: len(done) == 2, within=30, what="both long invocations")
            deadline = time.monotonic() + 10
            while not await _is_empty(sb, "lock-plain"):
                assert time.monotonic() < deadline, "message was not completed"
                await asyncio.sleep(0.1)
        # One invocation each: a lapsed lock would have led to a redelivery (a second call)
        # while the first invocation was still running.
        assert sorted(calls) == [("plain", 1), ("session", 1)]
    finally:
        broker_process.send_signal(signal.SIGTERM)
        broker_process.wait(timeout=10)
