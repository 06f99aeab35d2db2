"""GET /api/devices/{id} and GET /api/devices: the read API over DeviceState and DeviceHistory.

Function-key auth (the app's default). Bodies are described in docs/openapi.yaml; errors are
`{"error": {"code", "message"}}` like the other routes: 400 for a bad parameter, 404 for an
unknown device, 503 when Table storage cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError

from handlers.responses import json_error
from shared import logs
from shared.adapters.compliance_details import read_compliance_details
from shared.core.changes import normalize_graph_id
from shared.runtime import Runtime, current
from shared.views.device_json import compliance_target, device_detail_json, state_json
from shared.views.fleet import DeviceFilter, FilterError, decode_token, encode_token, is_guid

log = logging.getLogger("devicemon.read_api")
DEFAULT_HISTORY = 50
DEFAULT_TOP = 100
MAX_PAGE = 1000


def _json(body: dict[str, Any], status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def _int_param(req: func.HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = req.params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise FilterError(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


# A frozen storage account accepts connections and answers nothing: the SDK would wait minutes.
STORAGE_BOUND_SECONDS = 10.0
# Intune's failing compliance settings of the one device asked about: a slow Intune answers
# `unavailable` (timeout) rather than holding the device's page.
COMPLIANCE_BOUND_SECONDS = 10.0


def _unavailable(exc: AzureError | TimeoutError, route: str) -> func.HttpResponse:
    logs.event(log, "read_failed", level=logging.ERROR, route=route, error=type(exc).__name__)
    return json_error(503, "storageUnavailable", "Table storage could not be read; retry later")


async def get_device(req: func.HttpRequest, runtime: Runtime | None = None) -> func.HttpResponse:
    """The device's current evaluation and its timeline, newest first (`limit` rows, 1..1000)."""
    # Normalised like every id at the edge: the tables key devices by Graph's lower-case id.
    object_id = normalize_graph_id(req.route_params.get("id") or "")
    if not is_guid(object_id):
        return json_error(400, "invalidDeviceId", "the device id must be a Graph object id (GUID)")
    try:
        limit = _int_param(req, "limit", DEFAULT_HISTORY, 1, MAX_PAGE)
    except FilterError as exc:
        return json_error(400, "invalidParameter", str(exc))
    rt = runtime or current()
    try:
        async with asyncio.timeout(STORAGE_BOUND_SECONDS):
            store = await rt.store()
            state = await store.get_state(object_id)
            if state is None:
                return json_error(404, "deviceNotFound", f"no device {object_id} in DeviceState")
            history = [row async for row in store.history(state.record.object_id, limit + 1)]
    except (AzureError, TimeoutError) as exc:
        return _unavailable(exc, "devices/{id}")
    managed_id = compliance_target(state.record)
    compliance = None
    if managed_id is not None:
        compliance = await read_compliance_details(
            rt.graph_json(), managed_id, within=COMPLIANCE_BOUND_SECONDS
        )
    return _json(device_detail_json(state, history[:limit], len(history) > limit, compliance))


async def list_devices(req: func.HttpRequest, runtime: Runtime | None = None) -> func.HttpResponse:
    """Devices, filtered by eligible, joinType, reason, os and blockedBy (a CA policy's id or
    name), `top` per page (1..1000), with a continuationToken while more may follow (a page can
    hold fewer than `top`, even none)."""
    try:
        wanted = DeviceFilter.parse(
            eligible=req.params.get("eligible"),
            join_type=req.params.get("joinType"),
            reason=req.params.get("reason"),
            os=req.params.get("os"),
            blocked_by=req.params.get("blockedBy"),
        )
        top = _int_param(req, "top", DEFAULT_TOP, 1, MAX_PAGE)
        token = req.params.get("continuationToken")
        resume = decode_token(token) if token else None
    except FilterError as exc:
        return json_error(400, "invalidParameter", str(exc))
    query, parameters = wanted.table_query()
    rt = runtime or current()
    try:
        async with asyncio.timeout(STORAGE_BOUND_SECONDS):
            store = await rt.store()
            rows, following = await store.page_states(
                query,
                parameters,
                top=top,
                resume=resume,
                accept=(lambda row: wanted.matches(row.record)) if wanted.checks_rows else None,
            )
    except (AzureError, TimeoutError) as exc:
        return _unavailable(exc, "devices")
    return _json(
        {
            "devices": [state_json(row) for row in rows],
            "count": len(rows),
            "continuationToken": encode_token(following) if following else None,
        }
    )
