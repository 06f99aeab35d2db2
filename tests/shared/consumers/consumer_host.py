"""One alert consumer of function_app in the dev host, reading a runtime's topic on the broker:
for the consumers' tests that go through Service Bus rather than calling the handler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from local.devhost import DevHost
from shared.runtime import Runtime, use_runtime


@asynccontextmanager
async def consumer_host(
    rt: Runtime, stack: Any, monkeypatch: pytest.MonkeyPatch, function: str
) -> AsyncIterator[None]:
    monkeypatch.setenv("DEVICE_ALERTS_TOPIC", rt.settings.device_alerts_topic)
    monkeypatch.setenv("ServiceBusConnection", stack.service_bus_connection)
    use_runtime(rt)
    try:
        async with DevHost(
            "function_app:app",
            port=0,
            only={"servicebus"},
            host_json={"version": "2.0", "functions": [function]},
        ):
            yield
    finally:
        use_runtime(None)
