"""DevHost: runs a FunctionApp's HTTP, Service Bus and timer functions like the Functions host."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from local.devhost.connections import ClientPool, resolve_connection
from local.devhost.functions import FunctionSpec, describe_functions, load_app, normalize_only
from local.devhost.http import HttpRoute, HttpServer, build_route
from local.devhost.invoke import Invoker
from local.devhost.ncrontab import parse_schedule
from local.devhost.servicebus import ServiceBusRunner, entity_for
from local.devhost.settings import (
    HostConfig,
    load_host_config,
    max_request_body_size,
    resolve_setting_expression,
)
from local.devhost.timers import TimerRunner

log = logging.getLogger("devhost")

FUNCTION_KEY_ENV = "DEVHOST_FUNCTION_KEY"
MASTER_KEY_ENV = "DEVHOST_MASTER_KEY"


def function_keys_from_env() -> list[str]:
    """Function keys (function auth level): DEVHOST_FUNCTION_KEY, comma-separated. The admin
    level takes only the master key, DEVHOST_MASTER_KEY."""
    raw = os.environ.get(FUNCTION_KEY_ENV, "")
    return [k.strip() for k in raw.split(",") if k.strip()]


def _disabled(name: str) -> bool:
    """The host skips a function when app setting AzureWebJobs.<name>.Disabled is true."""
    value = os.environ.get(f"AzureWebJobs.{name}.Disabled", "")
    return value.strip().lower() in ("true", "1")


def check_parameters(spec: FunctionSpec) -> None:
    """The worker's indexing rule: Python parameters and declared bindings must match by name
    (`context` is the one extra parameter allowed; `$return` needs no parameter)."""
    declared = {b.name for b in spec.bindings if b.name != "$return"}
    params = set(spec.parameters)
    missing = sorted(params - declared - {"context"})
    if missing:
        raise ValueError(f"parameters {missing} are declared in Python but not as bindings")
    unbound = sorted(declared - params)
    if unbound:
        raise ValueError(f"bindings {unbound} are declared but not in the Python signature")


class DevHost:
    """Run a FunctionApp locally.

    >>> async with DevHost(app, port=0, only={"http"}) as host:   # doctest: +SKIP
    ...     url = host.api_url + "/devices/42"

    `app` is a FunctionApp or an import path ("function_app:app"). `port=0` picks a free
    port. `host_json` is a path, an already-parsed dict, or None for the defaults.
    `only` limits the trigger kinds started ("http", "servicebus", "timer").
    `function_keys` and `master_key` (default: DEVHOST_FUNCTION_KEY, DEVHOST_MASTER_KEY) turn on
    the host's key checks; without either, every auth level is open. host.json's
    functionTimeout bounds every invocation.
    """

    def __init__(
        self,
        app: Any = "function_app:app",
        *,
        host: str = "127.0.0.1",
        port: int = 7071,
        host_json: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        only: Iterable[str] | str | None = None,
        function_keys: Sequence[str] | None = None,
        master_key: str | None = None,
        max_body_size: int | None = None,
        session_idle_timeout: float | None = None,
        root: str | os.PathLike[str] | None = None,
        thread_count: int | None = None,
    ) -> None:
        self._app_ref = app
        self._host = host
        self._port = port
        self._root = Path(root) if root is not None else None
        self.only = normalize_only(only)
        config = load_host_config(host_json)
        if session_idle_timeout is not None:
            config = dataclasses.replace(
                config,
                service_bus=dataclasses.replace(
                    config.service_bus, session_idle_timeout=session_idle_timeout
                ),
            )
        self.config: HostConfig = config
        self._function_keys = (
            list(function_keys) if function_keys is not None else function_keys_from_env()
        )
        # The master key: authLevel admin and /admin/* (and any function-level route) accept it.
        self._master_key = (
            master_key if master_key is not None else os.environ.get(MASTER_KEY_ENV, "").strip()
        )
        self._max_body = max_body_size or max_request_body_size()
        self._thread_count = thread_count
        self.functions: list[FunctionSpec] = []
        # Functions that could not be started, by name, with the reason (as the host
        # reports indexing errors but keeps running the rest).
        self.errors: dict[str, str] = {}
        self.http_routes: list[HttpRoute] = []
        self.timers: dict[str, TimerRunner] = {}
        self.service_bus: dict[str, ServiceBusRunner] = {}
        self._invoker: Invoker | None = None
        self._server: HttpServer | None = None
        self._pool = ClientPool()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.port: int | None = None

    # -- addresses -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("DevHost is not started")
        return f"http://{self._host}:{self.port}"

    @property
    def api_url(self) -> str:
        """base_url plus the route prefix ("/api" by default)."""
        prefix = self.config.route_prefix
        return f"{self.base_url}/{prefix}" if prefix else self.base_url

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> DevHost:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        app = (
            load_app(self._app_ref, self._root) if isinstance(self._app_ref, str) else self._app_ref
        )
        self.functions = describe_functions(app)
        invoker = self._invoker = Invoker(self._thread_count, self.config.function_timeout)
        self._plan(invoker)
        self._server = HttpServer(
            self.http_routes,
            invoker,
            function_keys=self._function_keys,
            master_key=self._master_key,
            max_body_size=self._max_body,
            admin_invoke=self.trigger,
        )
        self.port = await self._server.start(self._host, self._port)
        for timer in self.timers.values():
            self._spawn(timer.run(self._stopping), timer.spec.name)
        for runner in self.service_bus.values():
            self._spawn(runner.run(self._stopping), runner.spec.name)
        for line in self.summary_lines():
            log.info("%s", line)

    async def stop(self) -> None:
        """Stop taking work, let in-flight invocations finish and settle, close connections."""
        self._stopping.set()
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
        await self._pool.close()
        if self._invoker is not None:
            invoker, self._invoker = self._invoker, None
            await asyncio.get_running_loop().run_in_executor(None, invoker.close)

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"devhost:{name}")

        def report(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("%s: listener stopped", name, exc_info=done.exception())

        task.add_done_callback(report)
        self._tasks.append(task)

    async def wait_listening(self, within: float = 30.0) -> None:
        """Wait until every Service Bus trigger is attached to its entity, else TimeoutError."""
        deadline = asyncio.get_running_loop().time() + within
        while not all(r.listening for r in self.service_bus.values()):
            if asyncio.get_running_loop().time() > deadline:
                waiting = [n for n, r in self.service_bus.items() if not r.listening]
                raise TimeoutError(f"Service Bus triggers not listening: {waiting}")
            await asyncio.sleep(0.05)

    async def trigger(self, name: str, body: bytes = b"") -> bool:
        """Run timer function `name` now (the admin endpoint); False when there is none."""
        timer = self.timers.get(name)
        if timer is None:
            return False
        self._spawn(timer.fire(None, "manual"), f"{name}-manual")
        return True

    # -- planning ------------------------------------------------------------------------

    def _error(self, spec: FunctionSpec, message: str) -> None:
        self.errors[spec.name] = message
        log.error("%s: not started: %s", spec.name, message)

    def _plan(self, invoker: Invoker) -> None:
        wanted = set(self.config.functions) if self.config.functions is not None else None
        for spec in self.functions:
            if wanted is not None and spec.name not in wanted:
                continue
            if spec.kind == "other":
                self._error(spec, f"trigger type {spec.trigger.type!r} is not supported by devhost")
                continue
            if spec.kind not in self.only:
                continue
            if _disabled(spec.name):
                log.info(
                    "%s: disabled by app setting AzureWebJobs.%s.Disabled", spec.name, spec.name
                )
                continue
            self._warn_unsupported_bindings(spec)
            try:
                check_parameters(spec)
                if spec.kind == "http":
                    self.http_routes.append(build_route(spec, self.config.route_prefix))
                elif spec.kind == "timer":
                    self.timers[spec.name] = self._timer(spec, invoker)
                elif spec.kind == "servicebus":
                    self.service_bus[spec.name] = self._service_bus(spec, invoker)
            except (ValueError, LookupError) as exc:
                self._error(spec, str(exc))

    def _timer(self, spec: FunctionSpec, invoker: Invoker) -> TimerRunner:
        props = spec.trigger.props
        schedule = parse_schedule(resolve_setting_expression(str(props.get("schedule", ""))))
        if props.get("useMonitor"):
            log.debug("%s: useMonitor has no effect locally (no schedule persistence)", spec.name)
        return TimerRunner(spec, schedule, invoker, run_on_startup=bool(props.get("runOnStartup")))

    def _service_bus(self, spec: FunctionSpec, invoker: Invoker) -> ServiceBusRunner:
        props = spec.trigger.props
        if str(props.get("cardinality", "one")).lower() == "many":
            raise ValueError("cardinality='many' (batched messages) is not supported by devhost")
        entity = entity_for(spec)
        connection = resolve_connection(props.get("connection"))
        return ServiceBusRunner(
            spec, entity, connection, self._pool, invoker, self.config.service_bus
        )

    def _warn_unsupported_bindings(self, spec: FunctionSpec) -> None:
        for binding in spec.bindings:
            if binding is spec.trigger or binding.name == spec.trigger.name:
                continue
            if spec.kind == "http" and binding.type == "http":
                continue
            log.warning(
                "%s: %s binding %r is not emulated (%s parameter gets %s)",
                spec.name,
                binding.type,
                binding.name,
                binding.direction,
                "an Out that discards its value" if binding.direction != "in" else "None",
            )
        if spec.has_retry_policy:
            log.warning("%s: retry policies are not applied by devhost", spec.name)

    # -- reporting -----------------------------------------------------------------------

    def summary_lines(self) -> list[str]:
        """A `func start`-style listing of what is running."""
        lines = ["Functions:"]
        for route in self.http_routes:
            methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
            lines.append(
                f"  {route.spec.name}: [{methods}] {self.base_url}/{route.template.template}"
                f" (auth: {route.auth_level})"
            )
        for name, timer in self.timers.items():
            lines.append(f"  {name}: timerTrigger {timer.schedule.expression}")
        for name, runner in self.service_bus.items():
            lines.append(f"  {name}: {runner.describe()}")
        for name, error in self.errors.items():
            lines.append(f"  {name}: ERROR {error}")
        return lines
