"""Local stand-in for Azure Service Bus: a small AMQP 1.0 broker on python-qpid-proton.

The real ``azure-servicebus`` SDK (sync and aio) talks to it with::

    ServiceBusClient.from_connection_string(connection_string(port))

Run it with ``python -m local.broker --port PORT [--config FILE.json] [--journal FILE]``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .config import DEFAULT_CONFIG, BrokerConfig, ConfigError, load_config, parse_config
from .journal import JournalError
from .server import Server

__all__ = [
    "DEFAULT_CONFIG",
    "BrokerConfig",
    "ConfigError",
    "JournalError",
    "Server",
    "connection_string",
    "load_config",
    "parse_config",
    "run",
]

SAS_KEY_NAME = "RootManageSharedAccessKey"
SAS_KEY_VALUE = "SAS_KEY_VALUE"  # any value works: the broker accepts every token


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    """The connection string the SDK needs for the broker on ``port`` (no TLS)."""
    return (
        f"Endpoint=sb://{host}:{port};SharedAccessKeyName={SAS_KEY_NAME};"
        f"SharedAccessKey={SAS_KEY_VALUE};UseDevelopmentEmulator=true"
    )


def run(
    port: int,
    config: dict[str, Any] | BrokerConfig | None = None,
    host: str = "127.0.0.1",
    journal: str | Path | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (blocking).

    ``config`` is a dict shaped like ``DEFAULT_CONFIG`` (None means that default).
    ``journal`` is a SQLite file that makes acknowledged state survive the process (replayed
    on start); None keeps everything in memory.
    Signals can only be caught in the main thread; elsewhere, build a ``Server`` and
    call its ``stop()`` from another thread instead.
    """
    parsed = config if isinstance(config, BrokerConfig) else parse_config(config)
    server = Server(parsed, host, port, journal)
    if threading.current_thread() is threading.main_thread():
        server.install_signal_handlers()
    server.serve_forever()
