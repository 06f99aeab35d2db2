"""Running one timer of function_app.py in the dev host, as the Functions host would."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from local.devhost import DevHost
from shared.runtime import Runtime, use_runtime

T = TypeVar("T")


async def run_timer_in_dev_host(
    runtime: Runtime, function: str, done: Callable[[], Awaitable[T | None]]
) -> T:
    """Trigger `function` (a timer declared in function_app.py) in a dev host that hosts only it,
    with `runtime` as the app's runtime, and wait for `done` to return what the run left behind
    (the timer runs on the host's task, not the caller's)."""
    use_runtime(runtime)
    try:
        async with DevHost(
            "function_app:app",
            port=0,
            only={"timer"},
            host_json={"version": "2.0", "functions": [function]},
        ) as host:
            assert await host.trigger(function)
            for _ in range(300):
                result = await done()
                if result is not None:
                    return result
                await asyncio.sleep(0.1)
    finally:
        use_runtime(None)
    raise AssertionError(f"the timer {function} left nothing behind within 30 s")
