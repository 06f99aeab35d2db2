"""Calling a user function the way the Python worker does, and logging each invocation."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import azure.functions as func
from azure.functions import _abc as func_abc

from local.devhost.functions import FunctionSpec
from local.devhost.settings import format_timespan

log = logging.getLogger("devhost")
T = TypeVar("T")


class _TraceContext(func_abc.TraceContext):
    def __init__(self, trace_parent: str = "", trace_state: str = "") -> None:
        self._parent = trace_parent
        self._state = trace_state

    @property
    def trace_state(self) -> str:
        return self._state

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> func_abc.RpcException:
        raise AttributeError("no retry in progress")


class InvocationContext(func.Context):
    """The `context` argument the worker passes to functions that declare one."""

    _thread_local = threading.local

    def __init__(self, function_name: str, invocation_id: str, trace_parent: str = "") -> None:
        self._function_name = function_name
        self._invocation_id = invocation_id
        self._trace = _TraceContext(trace_parent)
        self._retry = _RetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return os.getcwd()

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return self._retry


class Out(func.Out[T], Generic[T]):
    """A func.Out for output-binding parameters; the dev host keeps the value, sends nothing."""

    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, val: T) -> None:
        self._value = val

    def get(self) -> T:
        return self._value  # type: ignore[return-value]


class FunctionTimeoutError(Exception):
    """The invocation ran past host.json's functionTimeout (the host's FunctionTimeoutException)."""


@dataclass
class InvocationResult:
    """How one invocation ended: its return value or exception, and how long it took."""

    invocation_id: str
    value: Any
    error: BaseException | None
    duration_ms: float
    outputs: dict[str, Out[Any]]

    @property
    def succeeded(self) -> bool:
        return self.error is None


def default_thread_count() -> int:
    """PYTHON_THREADPOOL_THREAD_COUNT, else Python's own executor default (what the worker uses)."""
    raw = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT")
    if raw:
        return max(1, int(raw))
    return min(32, (os.cpu_count() or 1) + 4)


class Invoker:
    """Runs user functions: coroutines on the loop, plain functions on a thread pool.

    `timeout` is host.json's functionTimeout (seconds, None: unbounded). Past it the invocation
    fails as the host's does ("Timeout value of ... exceeded"): a coroutine is cancelled; a
    thread cannot be stopped, so it runs on while its result is dropped. The Functions host then
    restarts the language worker (functions-timeout-duration.md), which a dev host living in the
    same process cannot do.
    """

    def __init__(self, thread_count: int | None = None, timeout: float | None = None) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=thread_count or default_thread_count(),
            thread_name_prefix="devhost-worker",
        )
        self.timeout = timeout

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)

    def build_kwargs(
        self, spec: FunctionSpec, trigger_value: Any, context: InvocationContext
    ) -> tuple[dict[str, Any], dict[str, Out[Any]]]:
        """Arguments by parameter name, as the worker binds them."""
        kwargs: dict[str, Any] = {}
        outputs: dict[str, Out[Any]] = {}
        by_name = {b.name: b for b in spec.bindings}
        for name in spec.parameters:
            if name == spec.trigger_arg:
                kwargs[name] = trigger_value
            elif name in by_name and by_name[name].direction in ("out", "inout"):
                outputs[name] = kwargs[name] = Out()
            elif name in by_name:
                kwargs[name] = None  # input bindings are not emulated; warned at startup
            elif name == "context":
                kwargs[name] = context
        return kwargs, outputs

    async def invoke(
        self, spec: FunctionSpec, trigger_value: Any, *, trace_parent: str = ""
    ) -> InvocationResult:
        invocation_id = str(uuid.uuid4())
        context = InvocationContext(spec.name, invocation_id, trace_parent)
        kwargs, outputs = self.build_kwargs(spec, trigger_value, context)
        started = time.perf_counter()
        value: Any = None
        error: BaseException | None = None
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                if spec.is_async:
                    value = await spec.user_function(**kwargs)
                else:
                    loop = asyncio.get_running_loop()
                    # Copy the context so contextvars set by the host side are visible there.
                    call = functools.partial(
                        contextvars.copy_context().run, spec.user_function, **kwargs
                    )
                    value = await loop.run_in_executor(self._executor, call)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the function's failure is the invocation's outcome
            error = self._timed_out(spec, invocation_id) if deadline.expired() else exc
        duration_ms = (time.perf_counter() - started) * 1000
        return InvocationResult(invocation_id, value, error, duration_ms, outputs)

    def _timed_out(self, spec: FunctionSpec, invocation_id: str) -> FunctionTimeoutError:
        limit = format_timespan(self.timeout or 0)
        # The host's own lines (Microsoft.Azure.WebJobs.Host FunctionExecutor).
        log.error(
            "Timeout value of %s exceeded by function 'Functions.%s' (Id: '%s'). "
            "Initiating cancellation.",
            limit,
            spec.name,
            invocation_id,
        )
        if not spec.is_async:
            log.warning(
                "%s: its thread keeps running (the Functions host would restart the worker "
                "process here; the dev host cannot stop a thread)",
                spec.name,
            )
        return FunctionTimeoutError(
            f"Timeout value of {limit} was exceeded by function: Functions.{spec.name}"
        )


def log_invocation(
    spec: FunctionSpec,
    trigger: str,
    result: InvocationResult,
    outcome: str,
) -> None:
    """One line per invocation: function, trigger detail, outcome, duration.

    Failures log at ERROR with the traceback, as the host reports a failed execution.
    """
    status = "succeeded" if result.succeeded else "failed"
    line = "%s [%s] %s -> %s in %.1f ms (id=%s)"
    args = (spec.name, trigger, status, outcome, result.duration_ms, result.invocation_id[:8])
    if result.error is None:
        log.info(line, *args)
    else:
        log.error(
            line + ": %s: %s",
            *args,
            type(result.error).__name__,
            result.error,
            exc_info=(type(result.error), result.error, result.error.__traceback__),
        )
