"""HTTP triggers on an aiohttp server: routing, function keys, request/response mapping."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.functions import _abc as func_abc
from azure.functions.http import HttpRequest as WorkerHttpRequest

from local.devhost.functions import NO_ANNOTATION, FunctionSpec
from local.devhost.invoke import InvocationResult, Invoker, log_invocation
from local.devhost.routes import RouteTemplate

log = logging.getLogger("devhost")

# Set by aiohttp/the transport; copying a function's own values would corrupt framing.
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection"}

AdminInvoke = Callable[[str, bytes], Awaitable[bool]]


@dataclass
class HttpRoute:
    """One HTTP-triggered function and how to reach it."""

    spec: FunctionSpec
    template: RouteTemplate
    methods: frozenset[str] | None  # None: any method
    auth_level: str  # "anonymous" | "function" | "admin"
    output_name: str  # "$return" or the name of an Out[HttpResponse] parameter


def check_return_annotation(spec: FunctionSpec) -> None:
    """Reject return annotations the worker refuses at indexing time (the function never loads).

    With the `$return` HTTP output binding the worker requires the annotation, if any, to be a
    class that is a func.HttpResponse or str; `-> None` and `-> HttpResponse | None` fail.
    """
    annotation = spec.return_annotation
    if annotation is NO_ANNOTATION:
        return
    if not isinstance(annotation, type):
        raise ValueError(f"has invalid non-type return annotation {annotation!r}")
    if not issubclass(annotation, func_abc.HttpResponse | str):
        raise ValueError(
            f'Python return annotation "{annotation.__name__}" does not match binding type "http"'
        )


def build_route(spec: FunctionSpec, route_prefix: str) -> HttpRoute:
    props = spec.trigger.props
    methods = props.get("methods")
    outputs = [b for b in spec.bindings if b.type == "http" and b.direction == "out"]
    if any(b.name == "$return" for b in outputs):
        check_return_annotation(spec)
    return HttpRoute(
        spec=spec,
        template=RouteTemplate.compile(route_prefix, str(props.get("route") or spec.name)),
        methods=frozenset(str(m).upper() for m in methods) if methods else None,
        auth_level=str(props.get("authLevel") or "function").lower(),
        output_name=outputs[0].name if outputs else "$return",
    )


def _join_multi(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Collapse repeated names into one comma-joined value, as the host hands them to the worker."""
    joined: dict[str, str] = {}
    for key, value in items:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def query_params(request: web.Request) -> dict[str, str]:
    """The query as the worker receives it: repeated names comma-joined, and names whose value
    is empty left out. The host copies a query value into the RPC message only when it is not
    empty, unless the worker declares UseNullableValueDictionaryForHttp, which the Python worker
    does not (azure-functions-host, RpcMessageConversionExtensions.ToRpcHttp): `?a=&b=1` reaches
    the function as {"b": "1"}, and `?flag` not at all."""
    return {k: v for k, v in _join_multi(request.query.items()).items() if v}


def to_func_request(request: web.Request, body: bytes, route_params: Mapping[str, str]) -> Any:
    """The func.HttpRequest the worker would build for this request."""
    return WorkerHttpRequest(
        method=request.method,
        url=str(request.url),
        headers=_join_multi((k.lower(), v) for k, v in request.headers.items()),
        params=query_params(request),
        route_params=dict(route_params),
        body_type="bytes",
        body=body,
    )


class UnsupportedReturn(TypeError):
    """The function returned something the HTTP output binding cannot encode."""


def to_web_response(value: Any, method: str) -> web.Response:
    """Encode a function's return value like the worker's HTTP output converter."""
    if isinstance(value, str):
        value = func.HttpResponse(value)
    if not isinstance(value, func.HttpResponse):
        # The worker's wording; returning None is a failed invocation too.
        raise UnsupportedReturn(
            f'unable to encode outgoing TypedData: unsupported type "http" for Python type '
            f'"{type(value).__name__}" (return a func.HttpResponse or str)'
        )
    headers = value.headers
    status = int(value.status_code)
    response = web.Response(status=status)
    for name, header_value in headers.items():
        if name.lower() not in _HOP_HEADERS:
            response.headers.add(name, str(header_value))
    if "content-type" not in headers:
        mimetype = value.mimetype
        response.headers["Content-Type"] = (
            f"{mimetype}; charset={value.charset}" if mimetype.startswith("text/") else mimetype
        )
    body = value.get_body()
    if body and status not in (204, 304) and method != "HEAD":
        response.body = body
    return response


class HttpServer:
    """aiohttp server that routes /<prefix>/<route> to HTTP-triggered functions."""

    def __init__(
        self,
        routes: Sequence[HttpRoute],
        invoker: Invoker,
        *,
        function_keys: Sequence[str],
        max_body_size: int,
        admin_invoke: AdminInvoke | None = None,
        master_key: str | None = None,
    ) -> None:
        # Most specific template first, declaration order among equals (stable sort).
        self.routes = sorted(routes, key=lambda r: r.template.precedence)
        self._invoker = invoker
        self._keys = [k for k in function_keys if k]
        self._master = master_key or None
        self._max_body = max_body_size
        self._admin_invoke = admin_invoke
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        if not self.keys_enforced and any(r.auth_level != "anonymous" for r in routes):
            log.info("no key configured: function/admin auth levels are not enforced")
        admin_routes = [r.spec.name for r in routes if r.auth_level == "admin"]
        if self.keys_enforced and self._master is None and admin_routes:
            log.warning(
                "authLevel admin needs the master key, which is not set (DEVHOST_MASTER_KEY): "
                "%s and /admin/* answer 401",
                ", ".join(admin_routes),
            )

    @property
    def keys_enforced(self) -> bool:
        """Keys are checked once any is configured, as the host always has them."""
        return bool(self._keys or self._master)

    async def start(self, host: str, port: int) -> int:
        app = web.Application(client_max_size=self._max_body)
        app.router.add_get("/admin/host/status", self._host_status)
        app.router.add_post("/admin/functions/{name}", self._admin_function)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            # Stops accepting, then waits (bounded) for in-flight requests to finish.
            await self._runner.cleanup()
            self._runner = None

    def _authorized(self, auth_level: str, request: web.Request) -> bool:
        """The host's authorization levels (functions-bindings-http-webhook-trigger.md): anonymous
        needs no key; function takes a function or host key, or the master key; admin takes the
        master key only. A key comes as x-functions-key or ?code=."""
        if auth_level == "anonymous" or not self.keys_enforced:
            return True
        accepted = [self._master] if auth_level == "admin" else [*self._keys, self._master]
        supplied = (
            request.headers.get("x-functions-key") or request.query.get("code") or ""
        ).encode()
        return any(key and hmac.compare_digest(supplied, key.encode()) for key in accepted)

    async def _host_status(self, request: web.Request) -> web.Response:
        if not self._authorized("admin", request):
            return web.Response(status=401)
        return web.json_response({"state": "Running"})

    async def _admin_function(self, request: web.Request) -> web.Response:
        """POST /admin/functions/<name>: run a non-HTTP function now (Core Tools supports this)."""
        name = request.match_info["name"]
        if not self._authorized("admin", request):
            return web.Response(status=401)
        if self._admin_invoke is None or not await self._admin_invoke(name, await request.read()):
            return web.Response(status=404)
        return web.Response(status=202)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path_matched = False
        for route in self.routes:
            params = route.template.match(request.raw_path)
            if params is None:
                continue
            path_matched = True
            if route.methods is not None and request.method.upper() not in route.methods:
                continue
            return await self._run(route, request, params)
        # The host's routes carry their method constraint, so a wrong method is a 404 too.
        if path_matched:
            log.info("%s %s: no function accepts this method", request.method, request.path)
        return web.Response(status=404)

    async def _run(
        self, route: HttpRoute, request: web.Request, params: dict[str, str]
    ) -> web.StreamResponse:
        trigger = f"http {request.method} {request.path}"
        if not self._authorized(route.auth_level, request):
            log.info("%s [%s] rejected -> 401 (missing or wrong key)", route.spec.name, trigger)
            return web.Response(status=401)
        # Like the host (Kestrel's MaxRequestBodySize): a declared length over the limit is
        # refused before a byte of the body is read, so an oversized POST is never buffered; a
        # chunked body is read up to the limit only (the application's client_max_size).
        declared = request.content_length
        body: bytes | None = None
        if declared is None or declared <= self._max_body:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                body = None
        if body is None:
            log.info(
                "%s [%s] rejected -> 413 (body over %d bytes)",
                route.spec.name,
                trigger,
                self._max_body,
            )
            return web.Response(status=413)
        req = to_func_request(request, body, params)
        result = await self._invoker.invoke(
            route.spec, req, trace_parent=request.headers.get("traceparent", "")
        )
        response = self._response_for(route, result, request.method)
        log_invocation(route.spec, trigger, result, str(response.status))
        return response

    def _response_for(
        self, route: HttpRoute, result: InvocationResult, method: str
    ) -> web.Response:
        if result.error is not None:
            # The host answers a failed invocation with a bare 500 and no error detail.
            return web.Response(status=500)
        value = result.value
        if route.output_name != "$return" and route.output_name in result.outputs:
            value = result.outputs[route.output_name].get()
        try:
            return to_web_response(value, method)
        except UnsupportedReturn as exc:
            result.error = exc
            return web.Response(status=500)
