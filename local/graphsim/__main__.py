"""`python -m local.graphsim --port PORT`: serve until SIGTERM/SIGINT, then exit 0."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from .server import GraphSimServer


async def serve(host: str, port: int) -> None:
    server = GraphSimServer(host, port)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # One parseable line so a parent process can learn the port when it passed 0.
    print(f"graphsim listening on {server.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.graphsim", description="Microsoft Graph tenant simulator"
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (keep it loopback)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
