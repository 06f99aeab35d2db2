"""Command line: `python -m local.devhost [--app function_app:app] [--port 7071] ...`.

When ready it prints exactly one line to stdout, "devhost listening on http://HOST:PORT",
so scripts can wait for it; everything else (function list, invocations) goes to stderr.
SIGINT/SIGTERM stop it cleanly: no new work is taken, in-flight invocations finish and
settle, receivers close. A second signal aborts the wait.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from local.devhost.host import DevHost
from local.devhost.settings import load_local_settings, local_settings_port

log = logging.getLogger("devhost")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local.devhost",
        description="Run an Azure Functions (Python v2) app locally without Core Tools.",
    )
    parser.add_argument("--app", default="function_app:app", help="import path MODULE[:ATTR]")
    parser.add_argument(
        "--root", default=".", help="script root: put on sys.path, default settings files here"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="HTTP port (default: Host.LocalHttpPort from local.settings.json, else 7071; 0 = any)",
    )
    parser.add_argument(
        "--settings",
        default=None,
        help="local.settings.json whose Values become app settings"
        " (default: ROOT/local.settings.json when present)",
    )
    parser.add_argument(
        "--host-json", default=None, help="host.json (default: ROOT/host.json when present)"
    )
    parser.add_argument(
        "--only", default=None, help="comma-separated trigger kinds to run: http,servicebus,timer"
    )
    parser.add_argument(
        "--session-idle-timeout",
        type=float,
        default=None,
        help="seconds a session may sit idle before it is released (overrides host.json)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="log warnings and errors only (no invocation lines)"
    )
    return parser.parse_args(argv)


def configure_logging(quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # The SDKs narrate every link state change at INFO; keep the output about the app.
    for noisy in ("azure", "uamqp", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _default_file(explicit: str | None, root: Path, name: str) -> Path | None:
    if explicit is not None:
        return Path(explicit)
    candidate = root / name
    return candidate if candidate.is_file() else None


async def serve(args: argparse.Namespace) -> int:
    root = Path(args.root)
    settings = _default_file(args.settings, root, "local.settings.json")
    port = args.port
    if settings is not None:
        # Before the app is imported: module-level code may read its settings.
        load_local_settings(settings)
        log.info("app settings loaded from %s", settings)
        if port is None:
            port = local_settings_port(settings)
    host_json = _default_file(args.host_json, root, "host.json")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main_task is not None:
            log.warning("second signal: aborting without waiting for in-flight work")
            main_task.cancel()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    host = DevHost(
        args.app,
        host=args.host,
        port=7071 if port is None else port,
        host_json=host_json,
        only=args.only,
        session_idle_timeout=args.session_idle_timeout,
        root=root,
    )
    try:
        await host.start()
    except Exception:
        log.exception("devhost failed to start")
        await host.stop()
        return 1
    print(f"devhost listening on {host.base_url}", flush=True)
    try:
        await stop.wait()
        log.info("stopping: finishing in-flight invocations")
    finally:
        await host.stop()
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.quiet)
    try:
        return asyncio.run(serve(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130
