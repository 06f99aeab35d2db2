"""HTTP front: the aiohttp app, the Graph entry point, and ways to run it.

- `python -m local.graphsim --port PORT` (see __main__.py): own process, stops on SIGTERM/SIGINT;
- `GraphSimServer`: start/stop on the caller's event loop;
- `SimThread`: its own event loop in a daemon thread, for synchronous tests and demos.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from types import TracebackType
from urllib.parse import quote

from aiohttp import web

from .admin import SimAdmin
from .admin_api import SIM_KEY, add_admin_routes
from .graph_api import dispatch
from .odata import GraphRequest, GraphResponse, dumps, graph_error
from .runtime import Simulator


def _to_web(resp: GraphResponse, client_request_id: str | None) -> web.Response:
    request_id = str(uuid.uuid4())
    headers = resp.header_items()
    headers["request-id"] = request_id
    headers["client-request-id"] = client_request_id or request_id
    body = dumps(resp.body) if resp.body is not None else None
    return web.Response(status=resp.status, body=body, headers=headers)


async def graph_entry(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    tenant = request.match_info["tenant"]
    crid = request.headers.get("client-request-id")
    runtime = sim.get(tenant)
    if runtime is None:
        # Explicit setup keeps a typo in a tenant name from looking like an empty tenant.
        return _to_web(
            graph_error(
                401,
                "InvalidAuthenticationToken",
                f"Tenant '{tenant}' does not exist in the simulator; create it first "
                f"(PUT /_sim/{tenant}).",
            ),
            crid,
        )
    state = runtime.state
    state.stats.http_requests += 1
    auth = request.headers.get("Authorization", "")
    if state.settings.requireAuth and not auth.removeprefix("Bearer ").strip():
        state.stats.statuses["401"] += 1
        return _to_web(
            graph_error(401, "InvalidAuthenticationToken", "Access token is empty."), crid
        )
    delay = runtime.faults.delay_seconds()
    if delay > 0:
        await asyncio.sleep(delay)
    body = await request.read() if request.body_exists else None
    graph_request = GraphRequest(
        method=request.method.upper(),
        path="/" + request.match_info["tail"],
        query={key.lower(): value for key, value in request.query.items()},
        headers={key.lower(): value for key, value in request.headers.items()},
        body=body,
        base_url=f"{request.scheme}://{request.host}/{quote(tenant, safe='')}/v1.0",
    )
    return _to_web(await dispatch(runtime, graph_request), crid)


def build_app(sim: Simulator) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[SIM_KEY] = sim
    add_admin_routes(app)  # before the catch-all, so "/_sim/..." never reads as a tenant
    app.router.add_route("*", "/{tenant}/v1.0/{tail:.*}", graph_entry)
    return app


class GraphSimServer:
    """The simulator on the current event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.sim = Simulator()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def graph_url(self, tenant: str) -> str:
        """What to assign to `client.request_adapter.base_url` for this tenant."""
        return f"{self.base_url}/{quote(tenant, safe='')}/v1.0"

    async def start(self) -> int:
        self._runner = web.AppRunner(
            build_app(self.sim), access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = int(sock.getsockname()[1])
        site = web.SockSite(self._runner, sock, shutdown_timeout=2.0, backlog=1024)
        await site.start()
        return self.port

    async def stop(self) -> None:
        await self.sim.close()  # stop notification workers first: they hold connections
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class SimThread:
    """Run the simulator on its own loop in a daemon thread.

    with SimThread() as sim:
        admin = sim.admin("tenant-a")
        admin.ensure()
        client.request_adapter.base_url = sim.graph_url("tenant-a")
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = GraphSimServer(host, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def graph_url(self, tenant: str) -> str:
        return self.server.graph_url(tenant)

    def admin(self, tenant: str) -> SimAdmin:
        """A blocking admin client for `tenant` (the tenant is created on first call)."""
        return SimAdmin(self.base_url, tenant)

    def start(self) -> SimThread:
        self._thread = threading.Thread(target=self._run, name="graphsim", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise RuntimeError("graphsim failed to start") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.server.stop())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> SimThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
