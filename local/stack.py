"""The local stack: Azurite (Tables), the AMQP broker (Service Bus) and the Graph simulator, each
a child process on a free port, started together and stopped together.

Used by the test session (once per run), `make run` and the benchmarks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from local.ports import free_port, wait_for_port
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


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


@dataclass
class Stack:
    tables_port: int
    broker_port: int
    graph_port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

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

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processes.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _azurite_binary() -> str:
    binary = ROOT / "node_modules" / ".bin" / "azurite-table"
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is missing: run `npm ci` (the Makefile does it)")
    return str(binary)


def _spawn(args: list[str], log_dir: Path | None, name: str) -> subprocess.Popen[bytes]:
    out = open(log_dir / f"{name}.log", "wb") if log_dir else subprocess.DEVNULL  # noqa: SIM115
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)


def start(log_dir: Path | None = None) -> Stack:
    """Start all three and wait until each accepts connections."""
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(free_port(), free_port(), free_port())
    try:
        stack.processes.append(
            _spawn(
                [
                    _azurite_binary(),
                    "--silent",
                    "--inMemoryPersistence",
                    "--disableTelemetry",
                    "--skipApiVersionCheck",
                    "--tableHost",
                    "127.0.0.1",
                    "--tablePort",
                    str(stack.tables_port),
                ],
                log_dir,
                "azurite",
            )
        )
        python = sys.executable
        stack.processes.append(
            _spawn(
                [python, "-m", "local.broker", "--port", str(stack.broker_port)], log_dir, "broker"
            )
        )
        stack.processes.append(
            _spawn(
                [python, "-m", "local.graphsim", "--port", str(stack.graph_port)],
                log_dir,
                "graphsim",
            )
        )
        for port in (stack.tables_port, stack.broker_port, stack.graph_port):
            wait_for_port(port, timeout=60)
    except BaseException:
        stack.stop()
        raise
    return stack
