"""The local stack: Azurite (Tables), the AMQP broker (Service Bus) and the Graph simulator, each
a child process on a free port, started together and stopped together.

Used by the test session (once per run), `make run` and the benchmarks.

Acknowledged state survives a component's death where the real service would keep it, so fault
tests measure devicemon rather than the emulators: Azurite keeps its tables under a per-stack
directory (``--location``) and the broker writes a journal there. The fault controls on ``Stack``
(``kill``, ``stop``, ``start_again``, ``freeze``, ``thaw``, ``outage``) take a component down and
bring it back on the same port with the same data; docs/local-stack.md says which ways of taking
each one down keep acknowledged writes, and why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from local.ports import free_port, wait_for_port
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE, BROKER, GRAPHSIM = "azurite", "broker", "graphsim"
COMPONENTS = (AZURITE, BROKER, GRAPHSIM)
START_TIMEOUT = 60.0  # seconds to wait for a (re)started component's port
STOP_TIMEOUT = 30.0

OutageMode = Literal["freeze", "restart"]


def azurite_connection_string(port: int) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


def broker_connection_string(port: int) -> str:
    return (
        f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
    )


@dataclass(frozen=True)
class _Kind:
    # The signal that ends the process without losing what it acknowledged: Azurite saves its
    # tables on SIGINT only (SIGTERM and SIGKILL drop up to its last ~5 s of writes); the
    # broker commits before it acknowledges, so SIGTERM (and even SIGKILL) keeps everything.
    graceful: signal.Signals
    # How a restart-mode outage takes it down: the hardest way that still keeps its state.
    crash: signal.Signals
    # Whether its state survives a restart at all (the Graph simulator lives in memory).
    durable: bool


_KINDS = {
    AZURITE: _Kind(graceful=signal.SIGINT, crash=signal.SIGINT, durable=True),
    BROKER: _Kind(graceful=signal.SIGTERM, crash=signal.SIGKILL, durable=True),
    GRAPHSIM: _Kind(graceful=signal.SIGTERM, crash=signal.SIGKILL, durable=False),
}


@dataclass
class Component:
    """One child process of the stack, with what it takes to start it again identically."""

    name: str
    port: int
    args: list[str]
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    frozen: bool = False
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, *, append_log: bool) -> None:
        self.close_log()
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            # A restart appends, so one log shows the component's whole life.
            self._log = open(self.log_path, "ab" if append_log else "wb")  # noqa: SIM115
            out = self._log
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env
        )
        self.frozen = False

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        wait_for_port(self.port, timeout=timeout)
        # Something else may have taken the port while the component was down.
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited while starting on port {self.port}")

    def signal_and_wait(self, signum: signal.Signals, timeout: float = STOP_TIMEOUT) -> int:
        """Deliver ``signum`` and wait for the process to exit; returns its exit code."""
        proc = self.proc
        if proc is None:
            raise RuntimeError(f"{self.name} is not running")
        if proc.poll() is None:
            if self.frozen and signum != signal.SIGKILL:
                # A stopped process only acts on signals (other than SIGKILL) once continued.
                proc.send_signal(signal.SIGCONT)
            proc.send_signal(signum)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(
                f"{self.name} did not exit within {timeout:.0f}s of {signum.name}; killed it"
            ) from None
        self.proc = None
        self.frozen = False
        self.close_log()
        return code

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class Stack:
    tables_port: int
    broker_port: int
    graph_port: int
    components: dict[str, Component] = field(default_factory=dict)
    # Azurite's --location and the broker's journal; removed by stop().
    data_dir: Path | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The live child processes (start order)."""
        return [c.proc for c in self.components.values() if c.proc is not None]

    @property
    def tables_connection(self) -> str:
        return azurite_connection_string(self.tables_port)

    @property
    def service_bus_connection(self) -> str:
        return broker_connection_string(self.broker_port)

    @property
    def graph_root(self) -> str:
        return f"http://127.0.0.1:{self.graph_port}"

    def graph_url(self, tenant: str) -> str:
        return f"{self.graph_root}/{tenant}/v1.0"

    def settings(self, tenant: str, client_state: str, table_prefix_letter: str = "t") -> Settings:
        """App settings for one isolated use of the stack: its own tenant in the Graph
        simulator, its own queue, topic and tables."""
        suffix = uuid.uuid4().hex[:10]
        return Settings(
            client_state=client_state,
            allowed_tenant_ids=frozenset({tenant}),
            device_changes_queue=f"device-changes-{suffix}",
            device_alerts_topic=f"device-alerts-{suffix}",
            service_bus_connection_string=self.service_bus_connection,
            tables_connection_string=self.tables_connection,
            table_prefix=f"{table_prefix_letter}{suffix}",
            graph_base_url=self.graph_url(tenant),
            graph_credential="simulator",
        )

    # ------------------------------------------------------------------ fault controls

    def component(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise ValueError(f"unknown component {name!r}; one of {COMPONENTS}") from None

    def process(self, name: str) -> subprocess.Popen[bytes] | None:
        """The component's current process (None while it is down)."""
        return self.component(name).proc

    def kill(self, name: str) -> None:
        """SIGKILL the component and wait for it to be gone.

        Safe for the broker (its journal is written before anything is acknowledged). For
        Azurite it drops the writes of its last ~5 s (Azure never would): use ``stop`` or
        ``freeze`` for storage outages. The Graph simulator loses all its state.
        """
        with self._lock:
            self.component(name).signal_and_wait(signal.SIGKILL)

    def stop(self, name: str | None = None) -> None:
        """Without a name: stop the whole stack and delete its data (the usual end of a run).

        With a name: stop that component gracefully, keeping what it acknowledged (Azurite gets
        SIGINT, which saves its tables; the others SIGTERM), and wait for it to exit.
        """
        if name is None:
            self._stop_all()
            return
        with self._lock:
            component = self.component(name)
            code = component.signal_and_wait(_KINDS[name].graceful)
            if code != 0:
                raise RuntimeError(f"{name} exited with {code} on a graceful stop")

    def start_again(self, name: str) -> None:
        """Start a stopped or killed component with its original arguments (same port, same
        Azurite --location, same broker journal) and wait until its port accepts connections."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("the stack has been stopped")
            component = self.component(name)
            if component.running:
                raise RuntimeError(f"{name} is running: kill() or stop() it first")
            component.spawn(append_log=True)
            try:
                component.wait_ready()
            except BaseException:
                component.signal_and_wait(signal.SIGKILL)
                raise

    def freeze(self, name: str) -> None:
        """SIGSTOP: the process keeps its state and its sockets, but answers nothing; the kernel
        still accepts new connections, so clients see hangs and timeouts, not refusals."""
        with self._lock:
            component = self.component(name)
            if not component.running:
                raise RuntimeError(f"{name} is not running")
            assert component.proc is not None
            component.proc.send_signal(signal.SIGSTOP)
            # Signals are delivered asynchronously: return only once the process is stopped,
            # so that the caller's next step really meets a frozen component.
            _wait_for_state(component.proc.pid, stopped=True)
            component.frozen = True

    def thaw(self, name: str) -> None:
        """SIGCONT: resume a frozen component where it stopped."""
        with self._lock:
            component = self.component(name)
            if not component.running:
                raise RuntimeError(f"{name} is not running")
            assert component.proc is not None
            component.proc.send_signal(signal.SIGCONT)
            _wait_for_state(component.proc.pid, stopped=False)
            component.frozen = False

    def outage(self, name: str, seconds: float, mode: OutageMode = "freeze") -> Outage:
        """A context manager (sync or async) that takes ``name`` down on entry and brings it
        back ``seconds`` later, from a background thread, while the body keeps running.

        ``mode="freeze"``: SIGSTOP, then SIGCONT (clients hang). ``mode="restart"``: the process
        goes away (connections refused), then ``start_again``: the broker is SIGKILLed (its
        journal keeps everything), Azurite gets SIGINT (SIGKILL would lose its last writes);
        refused for the Graph simulator, whose state would not survive. Leaving the block waits
        for the component to be back (at once if the body raised); ``end()`` ends it early.
        """
        if mode not in ("freeze", "restart"):
            raise ValueError(f"mode must be 'freeze' or 'restart', not {mode!r}")
        self.component(name)  # an unknown name fails here, not in the background
        if mode == "restart" and not _KINDS[name].durable:
            raise ValueError(
                f"{name} keeps its state in memory only, so a restart would empty it; "
                "use mode='freeze' (or the simulator's own fault injection)"
            )
        return Outage(self, name, seconds, mode)

    def _take_down(self, name: str) -> None:
        """End the process the hardest way that keeps what it acknowledged (restart outages)."""
        with self._lock:
            self.component(name).signal_and_wait(_KINDS[name].crash)

    # ------------------------------------------------------------------ lifetime

    def _stop_all(self) -> None:
        with self._lock:
            self._stopped = True
            for component in self.components.values():
                if component.proc is not None and component.proc.poll() is None:
                    if component.frozen:
                        component.proc.send_signal(signal.SIGCONT)
                    # The data is thrown away with the stack: no need for Azurite's SIGINT.
                    component.proc.send_signal(signal.SIGTERM)
            for component in self.components.values():
                if component.proc is not None:
                    try:
                        component.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        component.proc.kill()
                        component.proc.wait()
                    component.proc = None
                component.close_log()
            if self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.data_dir = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Outage:
    """One component's outage; see ``Stack.outage``."""

    def __init__(self, stack: Stack, name: str, seconds: float, mode: OutageMode) -> None:
        self.stack = stack
        self.name = name
        self.seconds = seconds
        self.mode: OutageMode = mode
        self.restored = threading.Event()  # set once the component is back (or failed to be)
        self._end_now = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def begin(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this outage has already begun")
        if self.mode == "freeze":
            self.stack.freeze(self.name)
        else:
            self.stack._take_down(self.name)
        self._thread = threading.Thread(
            target=self._restore_later, name=f"outage-{self.name}", daemon=True
        )
        self._thread.start()

    def _restore_later(self) -> None:
        self._end_now.wait(self.seconds)
        try:
            if self.mode == "freeze":
                self.stack.thaw(self.name)
            else:
                self.stack.start_again(self.name)
        except BaseException as exc:  # reported to the test by end()/__exit__
            self._error = exc
        finally:
            self.restored.set()

    def wait_restored(self, timeout: float | None = None) -> bool:
        """Block until the component is back; False if ``timeout`` passed first."""
        return self.restored.wait(timeout)

    def end(self) -> None:
        """Bring the component back now (if it is not back yet) and wait for it."""
        self._end_now.set()
        self.join()

    def join(self) -> None:
        """Wait for the component to be back after the full outage; raise if it did not come
        back."""
        if self._thread is None:
            raise RuntimeError("this outage has not begun")
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"{self.name} did not come back") from self._error

    def __enter__(self) -> Outage:
        self.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._end_now.set()
        self.join()

    async def __aenter__(self) -> Outage:
        # In a thread: a graceful stop waits for the process, which must not block the loop.
        await asyncio.to_thread(self.begin)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._end_now.set()
        await asyncio.to_thread(self.join)


def _azurite_binary() -> str:
    binary = ROOT / "node_modules" / ".bin" / "azurite-table"
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is missing: run `npm ci` (the Makefile does it)")
    return str(binary)


def start(log_dir: Path | None = None) -> Stack:
    """Start all three and wait until each accepts connections."""
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="devicemon-stack-"))
    stack = Stack(free_port(), free_port(), free_port(), data_dir=data_dir)
    python = sys.executable
    specs = {
        AZURITE: (
            stack.tables_port,
            [
                _azurite_binary(),
                "--silent",
                # On disk, not --inMemoryPersistence, so a stopped Azurite comes back with its
                # tables; it costs nothing measurable (see docs/local-stack.md).
                "--location",
                str(data_dir / "azurite"),
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                str(stack.tables_port),
            ],
        ),
        BROKER: (
            stack.broker_port,
            [
                python,
                "-m",
                "local.broker",
                "--port",
                str(stack.broker_port),
                "--journal",
                str(data_dir / "broker-journal.sqlite"),
            ],
        ),
        GRAPHSIM: (
            stack.graph_port,
            [python, "-m", "local.graphsim", "--port", str(stack.graph_port)],
        ),
    }
    try:
        for name, (port, args) in specs.items():
            component = Component(
                name, port, args, log_path=log_dir / f"{name}.log" if log_dir else None
            )
            stack.components[name] = component
            component.spawn(append_log=False)
        for component in stack.components.values():
            component.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack


def _wait_for_state(pid: int, *, stopped: bool, within: float = 5.0) -> None:
    """Wait until /proc says the process is stopped (state T) or not; gives up after `within`
    seconds (a platform without /proc, or a process that exited, returns at once)."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            # The state is the field after the parenthesised command name.
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if (state == "T") is stopped:
            return
        time.sleep(0.01)
