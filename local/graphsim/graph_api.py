"""The Graph API surface: routing, handlers and `$batch`, all on GraphRequest/GraphResponse.

Framework-free so that `$batch` items run through exactly the same path (routing, faults,
accounting) as top-level requests.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import ca_policies, compliance_states, intune_timeline, tenant_settings
from .batch import run_batch
from .delta import TokenError, list_page
from .entities import DEVICE_KNOWN, DEVICE_TYPE, MANAGED_DEVICE_KNOWN, MANAGED_DEVICE_TYPE
from .odata import (
    GUID_RE,
    INTUNE_JSON,
    GraphRequest,
    GraphResponse,
    ODataQueryError,
    graph_error,
    intune_error,
    iso_7,
    matches,
    parse_filter,
    parse_max_page_size,
    parse_select,
    project,
)
from .runtime import TenantRuntime

Handler = Callable[[TenantRuntime, GraphRequest, dict[str, str]], Awaitable[GraphResponse]]
MAX_TOP = 999


@dataclass(frozen=True)
class Route:
    template: str  # accounting key, e.g. "/devices/{id}"
    handlers: dict[str, Handler]


def _function(segment: str, name: str) -> bool:
    """Graph accepts `delta`, `delta()`, `microsoft.graph.delta()` for bound functions."""
    seg = segment.lower().removeprefix("microsoft.graph.").removesuffix("()")
    return seg == name.lower()


_ALT_KEY_RE = re.compile(r"^devices\(deviceid='([^']*)'\)$", re.IGNORECASE)


def resolve(path: str) -> tuple[Route | None, dict[str, str], str]:
    """Map a relative path to (route, params, first unknown segment)."""
    parts = [p for p in path.split("/") if p]
    low = [p.lower() for p in parts]
    n = len(parts)
    if n == 1 and low[0] == "devices":
        return ROUTES["devices"], {}, ""
    if n == 1 and (alt := _ALT_KEY_RE.match(parts[0])):
        return ROUTES["device_by_device_id"], {"deviceId": alt.group(1)}, ""
    if n == 2 and low[0] == "devices":
        if _function(parts[1], "delta"):
            return ROUTES["devices_delta"], {}, ""
        return ROUTES["device"], {"id": parts[1]}, ""
    if (compliance := compliance_states.resolve(parts)) is not None:
        return ROUTES[compliance[0]], compliance[1], ""
    if (policy := ca_policies.resolve(parts)) is not None:
        return ROUTES[policy[0]], policy[1], ""
    if (tenant := tenant_settings.resolve(parts)) is not None:
        return ROUTES[tenant[0]], tenant[1], ""
    if n >= 2 and low[0] == "devicemanagement" and low[1] == "manageddevices":
        if n == 2:
            return ROUTES["managed_devices"], {}, ""
        if n == 3:
            return ROUTES["managed_device"], {"id": parts[2]}, ""
        if n == 4 and _function(parts[3], "syncDevice"):
            return ROUTES["sync_device"], {"id": parts[2]}, ""
    if n >= 1 and low[0] == "subscriptions":
        if n == 1:
            return ROUTES["subscriptions"], {}, ""
        if n == 2:
            return ROUTES["subscription"], {"id": parts[1]}, ""
        if n == 3 and _function(parts[2], "reauthorize"):
            return ROUTES["reauthorize"], {"id": parts[1]}, ""
    if n == 1 and low[0] == "$batch":
        return ROUTES["batch"], {}, ""
    return None, {}, parts[-1] if parts else ""


# --- helpers -------------------------------------------------------------------------------


def _crid(req: GraphRequest) -> str | None:
    return req.headers.get("client-request-id")


def _query_error(exc: ODataQueryError) -> GraphResponse:
    return graph_error(400, exc.code, exc.message)


def _context(req: GraphRequest, fragment: str) -> str:
    return f"{req.base_url}/$metadata#{fragment}"


def _with_select(name: str, select: tuple[str, ...] | None) -> str:
    return f"{name}({','.join(select)})" if select else name


def _top(req: GraphRequest) -> int | None:
    raw = req.query.get("$top")
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TOP:
        raise ODataQueryError(
            "Request_UnsupportedQuery",
            f"Invalid page size specified: '{raw}'. Must be between 1 and {MAX_TOP} inclusive.",
        )
    return int(raw)


def _device_not_found(object_id: str) -> GraphResponse:
    return graph_error(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


# --- devices -----------------------------------------------------------------------------


async def get_device(rt: TenantRuntime, req: GraphRequest, params: dict[str, str]) -> GraphResponse:
    try:
        select = parse_select(req.query.get("$select"), DEVICE_KNOWN, DEVICE_TYPE)
    except ODataQueryError as exc:
        return _query_error(exc)
    object_id = params["id"]
    if not GUID_RE.match(object_id):
        return graph_error(400, "Request_BadRequest", f"Invalid object identifier '{object_id}'.")
    device = rt.state.get_device(object_id)
    if device is None:
        return _device_not_found(object_id)
    body = {"@odata.context": _context(req, _with_select("devices", select) + "/$entity")}
    body.update(project(device, select))
    return GraphResponse(200, body)


async def get_device_by_device_id(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    try:
        select = parse_select(req.query.get("$select"), DEVICE_KNOWN, DEVICE_TYPE)
    except ODataQueryError as exc:
        return _query_error(exc)
    device = rt.state.device_by_device_id(params["deviceId"])
    if device is None:
        return _device_not_found(params["deviceId"])
    body = {"@odata.context": _context(req, _with_select("devices", select) + "/$entity")}
    body.update(project(device, select))
    return GraphResponse(200, body)


def _skiptoken_link(req: GraphRequest, path: str, token: str) -> str:
    return f"{req.base_url}{path}?$skiptoken={token}"


async def list_devices(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    state = rt.state
    try:
        select = parse_select(req.query.get("$select"), DEVICE_KNOWN, DEVICE_TYPE)
        clauses = parse_filter(req.query.get("$filter"), DEVICE_KNOWN)
        top = _top(req) or parse_max_page_size(req.headers) or state.settings.listPageSize
    except ODataQueryError as exc:
        return _query_error(exc)
    body: dict[str, Any] = {"@odata.context": _context(req, _with_select("devices", select))}
    if clauses:
        by_id = [v for k, v in clauses if k == "deviceId" and isinstance(v, str)]
        if by_id:
            # Indexed: deviceId is how devicemon finds a device from an Intune record.
            found = state.device_by_device_id(by_id[0])
            candidates = [found] if found is not None else []
        else:
            # Not indexed: a full scan (fine for tests, documented as O(n)).
            candidates = [record.props for record in state.devices.values()]
        body["value"] = [project(d, select) for d in candidates if matches(d, clauses)][:top]
        return GraphResponse(200, body)
    try:
        items, token = list_page(state, "devices", req.query.get("$skiptoken"), select, top)
    except TokenError:
        return graph_error(400, "Request_BadRequest", "The skip token is invalid or expired.")
    body["value"] = items
    if token:
        body["@odata.nextLink"] = _skiptoken_link(req, "/devices", token)
    return GraphResponse(200, body)


def _restart_url(req: GraphRequest, select: list[str] | None) -> str:
    """The initial query again, with an empty $deltaToken (delta-query-overview.md)."""
    selection = f"$select={','.join(select)}&" if select else ""
    return f"{req.base_url}/devices/delta?{selection}$deltatoken="


def _token_refused(rt: TenantRuntime, req: GraphRequest, exc: TokenError) -> GraphResponse:
    if exc.reason == "reset" or rt.state.settings.deltaTokenExpiredMode == "gone":
        # delta-query-overview.md, "Synchronization reset": "410 (gone) and a Location header
        # containing a request URL with an empty $deltaToken (same as the initial query)".
        # errors.md: syncStateNotFound is the basic code for an expired delta token, and the
        # innererror carries the more specific resyncRequired clients must loop down to.
        return graph_error(
            410,
            "syncStateNotFound",
            "The sync state generation is not found. The delta token is expired and data must "
            "be synchronized again.",
            headers={"Location": _restart_url(req, exc.select)},
            client_request_id=_crid(req),
            inner={"code": "resyncRequired"},
        )
    # delta-query-overview.md, "Token duration": seven days for directory objects, then "a
    # 40X-series error with error codes such as syncStateNotFound".
    return graph_error(
        400,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must "
        "be synchronized again.",
        client_request_id=_crid(req),
    )


async def devices_delta(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    settings = rt.state.settings
    try:
        select = parse_select(req.query.get("$select"), DEVICE_KNOWN, DEVICE_TYPE)
        requested = parse_max_page_size(req.headers) or _top(req)
    except ODataQueryError as exc:
        return _query_error(exc)
    skip = req.query.get("$skiptoken")
    delta_token = req.query.get("$deltatoken")
    try:
        if delta_token is not None and delta_token.lower() == "latest":
            page = rt.delta.latest(select)
        elif skip or delta_token:
            page = rt.delta.resume(skip or delta_token or "", requested, settings.deltaPageSize)
        else:
            # No token, or the empty $deltatoken of a 410's Location: a full sync from scratch.
            page = rt.delta.start(select, requested or settings.deltaPageSize)
    except TokenError as exc:
        return _token_refused(rt, req, exc)
    body: dict[str, Any] = {"@odata.context": _context(req, "devices")}
    link_base = f"{req.base_url}/devices/delta"
    if page.next_token:
        body["@odata.nextLink"] = f"{link_base}?$skiptoken={page.next_token}"
    else:
        body["@odata.deltaLink"] = f"{link_base}?$deltatoken={page.delta_token}"
    body["value"] = page.items
    headers = {}
    if parse_max_page_size(req.headers):
        headers["Preference-Applied"] = f"odata.maxpagesize={requested}"
    return GraphResponse(200, body, headers)


# --- Intune managed devices ----------------------------------------------------------------


def _managed_not_found(req: GraphRequest) -> GraphResponse:
    return intune_error(404, "ResourceNotFound", client_request_id=_crid(req))


async def list_managed_devices(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    state = rt.state
    try:
        select = parse_select(req.query.get("$select"), MANAGED_DEVICE_KNOWN, MANAGED_DEVICE_TYPE)
        clauses = parse_filter(req.query.get("$filter"), MANAGED_DEVICE_KNOWN)
        top = _top(req) or 1000  # Intune's default page
    except ODataQueryError as exc:
        return _query_error(exc)
    context = _context(req, _with_select("deviceManagement/managedDevices", select))
    body: dict[str, Any] = {"@odata.context": context}
    if clauses:
        by_aad = [v for k, v in clauses if k == "azureADDeviceId" and isinstance(v, str)]
        if by_aad:
            candidates = state.managed_for_aad_device(by_aad[0])
        else:
            candidates = list(state.managed.values())
        value = [project(d, select) for d in candidates if matches(d, clauses)][:top]
        # Intune reports a count on filtered collections.
        body["@odata.count"] = len(value)
        body["value"] = value
        return GraphResponse(200, body, content_type=INTUNE_JSON)
    try:
        items, token = list_page(state, "managedDevices", req.query.get("$skiptoken"), select, top)
    except TokenError:
        return graph_error(400, "BadRequest", "The skip token is invalid or expired.")
    body["value"] = items
    if token:
        body["@odata.nextLink"] = _skiptoken_link(req, "/deviceManagement/managedDevices", token)
    return GraphResponse(200, body, content_type=INTUNE_JSON)


async def get_managed_device(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    try:
        select = parse_select(req.query.get("$select"), MANAGED_DEVICE_KNOWN, MANAGED_DEVICE_TYPE)
    except ODataQueryError as exc:
        return _query_error(exc)
    device = rt.state.managed.get(params["id"])
    if device is None:
        return _managed_not_found(req)
    fragment = _with_select("deviceManagement/managedDevices", select) + "/$entity"
    body = {"@odata.context": _context(req, fragment)}
    body.update(project(device, select))
    return GraphResponse(200, body, content_type=INTUNE_JSON)


async def sync_device(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    device = rt.state.managed.get(params["id"])
    if device is None:
        return _managed_not_found(req)
    rt.state.sync_calls.append(
        {
            "managedDeviceId": device["id"],
            "azureADDeviceId": device.get("azureADDeviceId"),
            "deviceName": device.get("deviceName"),
            "at": iso_7(rt.state.clock.now()),
            "inBatch": req.in_batch,
        }
    )
    return GraphResponse(204)


# --- subscriptions -------------------------------------------------------------------------


def _json_body(req: GraphRequest) -> Any:
    try:
        return req.json_body()
    except (ValueError, UnicodeDecodeError):
        return None


async def create_subscription(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    return await rt.subscriptions.create(_json_body(req))


async def list_subscriptions(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    return rt.subscriptions.list()


async def get_subscription(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    return rt.subscriptions.get(params["id"])


async def patch_subscription(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    return await rt.subscriptions.update(params["id"], _json_body(req))


async def delete_subscription(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    return rt.subscriptions.delete(params["id"])


async def reauthorize_subscription(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    return await rt.subscriptions.reauthorize(params["id"])


# --- $batch (batch.py runs the items through dispatch below) --------------------------------


async def batch(rt: TenantRuntime, req: GraphRequest, params: dict[str, str]) -> GraphResponse:
    return await run_batch(rt, req, dispatch)


ROUTES: dict[str, Route] = {
    "devices": Route("/devices", {"GET": list_devices}),
    "device": Route("/devices/{id}", {"GET": get_device}),
    "device_by_device_id": Route(
        "/devices(deviceId='{deviceId}')", {"GET": get_device_by_device_id}
    ),
    "devices_delta": Route("/devices/delta", {"GET": devices_delta}),
    "managed_devices": Route("/deviceManagement/managedDevices", {"GET": list_managed_devices}),
    "managed_device": Route("/deviceManagement/managedDevices/{id}", {"GET": get_managed_device}),
    "sync_device": Route("/deviceManagement/managedDevices/{id}/syncDevice", {"POST": sync_device}),
    "subscriptions": Route(
        "/subscriptions", {"GET": list_subscriptions, "POST": create_subscription}
    ),
    "subscription": Route(
        "/subscriptions/{id}",
        {"GET": get_subscription, "PATCH": patch_subscription, "DELETE": delete_subscription},
    ),
    "reauthorize": Route("/subscriptions/{id}/reauthorize", {"POST": reauthorize_subscription}),
    "batch": Route("/$batch", {"POST": batch}),
    **{key: Route(path, h) for key, path, h in compliance_states.ROUTES},
    **{key: Route(path, h) for key, path, h in ca_policies.ROUTES},
    **{key: Route(path, h) for key, path, h in tenant_settings.ROUTES},
}


async def dispatch(rt: TenantRuntime, req: GraphRequest) -> GraphResponse:
    """Route, account, inject faults, run. Used for top-level requests and batch items."""
    stats = rt.state.stats
    # What Intune's clock has ended by now is visible to this request (intune_timeline.py).
    intune_timeline.tick(rt)
    route, params, segment = resolve(req.path)
    if route is None:
        stats.routes[f"{req.method} (unknown)"] += 1
        resp = graph_error(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        stats.statuses[str(resp.status)] += 1
        return resp
    stats.routes[f"{req.method} {route.template}"] += 1
    handler = route.handlers.get(req.method)
    if handler is None:
        resp = graph_error(
            405, "Request_BadRequest", f"The HTTP method '{req.method}' is not allowed here."
        )
    elif route.template == "/$batch" and req.in_batch:
        resp = graph_error(400, "BadRequest", "Nested batch requests are not supported.")
    else:
        fault = rt.faults.check(req.method, req.path, route.template, _crid(req))
        resp = fault if fault is not None else await handler(rt, req, params)
    stats.statuses[str(resp.status)] += 1
    return resp
