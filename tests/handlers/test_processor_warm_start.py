"""The worker warms its clients when function_app is imported on the worker's loop, so the first
webhook POST, sync batch or device change does not wait for the Service Bus link (~0.5 s), the
msgraph import and the first token. Against the broker, the Graph simulator and Azurite."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from local.graphsim.admin import SimAdmin
from shared import runtime as runtime_module
from shared.runtime import Runtime, use_runtime, warm_up_soon
from shared.settings import Settings


def warmed(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "devicemon.event", None) == "runtime_warmed"]


def test_without_a_running_loop_nothing_is_scheduled() -> None:
    # A script or a test importing function_app: the first invocation builds what it needs.
    assert warm_up_soon() is False


async def test_the_worker_loop_warms_the_sender_graph_and_tables(
    runtime: Runtime, sim: SimAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devicemon")
    sim.reset_requests()
    use_runtime(runtime)
    try:
        assert warm_up_soon() is True
        await asyncio.gather(*runtime_module._warming)
    finally:
        use_runtime(None)

    (record,) = warmed(caplog)
    assert getattr(record, "devicemon.failed", None) is None
    # One sender's link is open before any send (the pool lends it to the first one).
    assert runtime.change_queue()._pool.open_senders == 1
    assert sim.requests()["httpRequests"] == 0  # a token, not a Graph request


async def test_a_part_that_cannot_warm_is_logged_and_left_lazy(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = replace(
        settings,
        service_bus_connection_string=(
            "Endpoint=sb://127.0.0.1:9;SharedAccessKeyName=k;SharedAccessKey=v;"
            "UseDevelopmentEmulator=true"
        ),
        service_bus_send_timeout_seconds=2,
    )
    caplog.set_level(logging.INFO, logger="devicemon")
    rt = Runtime(unreachable)
    try:
        await rt.warm_up()  # never raises
    finally:
        await rt.close()

    (record,) = warmed(caplog)
    assert str(getattr(record, "devicemon.failed", "")).startswith("service_bus:")
    assert record.levelno == logging.WARNING
