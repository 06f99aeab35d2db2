"""Admin API under /_sim/{tenant}/...: set up tenants, mutate devices, inject faults, inspect.

Every admin call creates its tenant implicitly. Errors: 400 {"error": "..."} for bad
input, 404 {"error": "..."} for unknown ids. See README.md for the full list.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .compliance_states import get_states, put_states
from .entities import EntityError
from .faults import FaultRule
from .fleet import generate_fleet
from .odata import dumps, parse_datetime
from .runtime import Simulator, TenantRuntime

SIM_KEY = web.AppKey("graphsim", Simulator)
AdminHandler = Callable[[TenantRuntime, web.Request], Awaitable[Any]]


class Status:
    """A non-200 admin answer."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body


def _json_response(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=dumps(body), content_type="application/json")


def tenant_route(handler: AdminHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def wrapped(request: web.Request) -> web.Response:
        sim = request.app[SIM_KEY]
        runtime = sim.ensure(request.match_info["tenant"])
        try:
            result = await handler(runtime, request)
        except EntityError as exc:
            return _json_response(400, {"error": str(exc)})
        except KeyError as exc:
            return _json_response(404, {"error": f"not found: {exc.args[0] if exc.args else ''}"})
        except ValueError as exc:
            return _json_response(400, {"error": f"invalid request: {exc}"})
        if isinstance(result, Status):
            return _json_response(result.status, result.body)
        return _json_response(200, result)

    return wrapped


async def _body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    raw = await request.read()
    if not raw:
        return None
    return await request.json()


def _flag(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.lower() in ("1", "true", "yes", "on")


# --- tenant ----------------------------------------------------------------------------------


async def put_tenant(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request)
    if isinstance(body, dict) and body.get("settings"):
        rt.state.settings.update(body["settings"])
    return rt.state.summary()


async def get_tenant(rt: TenantRuntime, request: web.Request) -> Any:
    summary = rt.state.summary()
    summary["subscriptions"] = len(rt.subscriptions.items)
    summary["faults"] = rt.faults.to_json()
    return summary


async def get_settings(rt: TenantRuntime, request: web.Request) -> Any:
    return rt.state.settings.to_json()


async def patch_settings(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request)
    if not isinstance(body, dict):
        raise EntityError("expected a JSON object of settings")
    rt.state.settings.update(body)
    return rt.state.settings.to_json()


# --- devices -----------------------------------------------------------------------------------


async def post_devices(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request)
    notify = _flag(request, "notify", True)
    if isinstance(body, dict) and isinstance(body.get("devices"), list):
        created = [rt.state.upsert_device(d, notify=notify) for d in body["devices"]]
        return Status(201, {"devices": created})
    if not isinstance(body, dict):
        raise EntityError("expected a device object or {'devices': [...]}")
    return Status(201, rt.state.upsert_device(body, notify=notify))


async def list_devices(rt: TenantRuntime, request: web.Request) -> Any:
    offset = int(request.query.get("offset", "0"))
    limit = int(request.query.get("limit", "100"))
    records = rt.state.devices
    ids = list(records)[offset : offset + limit]
    return {"total": len(records), "devices": [records[i].props for i in ids]}


async def device_ids(rt: TenantRuntime, request: web.Request) -> Any:
    return {"ids": list(rt.state.devices)}


async def generate(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request) or {}
    count = int(body.get("count", 1000))
    if count < 0 or count > 2_000_000:
        raise EntityError("count must be between 0 and 2,000,000")
    started = time.perf_counter()
    # Hundreds of thousands of small dicts: the cyclic GC would rescan them over and over
    # while they are built; afterwards freeze them so later collections skip them too.
    gc.disable()
    try:
        fleet = generate_fleet(
            count,
            int(body.get("seed", 0)),
            with_managed=bool(body.get("managedDevices", True)),
            domain=str(body.get("domain", "contoso.onmicrosoft.com")),
        )
        # Setup data is not news: no notifications unless asked for.
        rt.state.insert_many(fleet.devices, notify=bool(body.get("notify", False)))
        for managed in fleet.managed:
            rt.state.insert_managed(managed)
    finally:
        gc.enable()
        gc.freeze()
    return Status(
        201,
        {
            "created": len(fleet.devices),
            "managedCreated": len(fleet.managed),
            "durationMs": round((time.perf_counter() - started) * 1000, 1),
            "sampleIds": [d["id"] for d in fleet.devices[:10]],
            "devices": len(rt.state.devices),
        },
    )


async def mutate(rt: TenantRuntime, request: web.Request) -> Any:
    """Change `count` random devices: some hard/soft deleted, the rest patched."""
    body = await _body(request) or {}
    state = rt.state
    rng = random.Random(body.get("seed", 0))
    count = min(int(body.get("count", 10)), len(state.devices))
    notify = bool(body.get("notify", True))
    delete_fraction = float(body.get("deleteFraction", 0.0))
    soft_fraction = float(body.get("softDeleteFraction", 0.0))
    patch = body.get("patch")
    chosen = rng.sample(list(state.devices), count)
    result: dict[str, list[str]] = {"updated": [], "deleted": [], "softDeleted": []}
    for object_id in chosen:
        roll = rng.random()
        if roll < delete_fraction:
            state.delete_device(object_id, notify=notify)
            result["deleted"].append(object_id)
        elif roll < delete_fraction + soft_fraction:
            state.delete_device(object_id, soft=True, notify=notify)
            result["softDeleted"].append(object_id)
        else:
            current = state.devices[object_id].props
            change = patch or {
                # Flip compliance: the change devicemon cares about.
                "isCompliant": not bool(current.get("isCompliant")),
            }
            state.patch_device(object_id, change, notify=notify)
            result["updated"].append(object_id)
    return result


async def bulk_patch(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request)
    if not isinstance(body, dict) or not isinstance(body.get("devices"), list):
        raise EntityError("expected {'devices': [{'id': ..., <props>}, ...]}")
    notify = _flag(request, "notify", True)
    for item in body["devices"]:
        patch = {k: v for k, v in item.items() if k != "id"}
        rt.state.patch_device(str(item["id"]), patch, notify=notify)
    return {"updated": len(body["devices"])}


async def bulk_delete(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request)
    if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
        raise EntityError("expected {'ids': [...], 'mode': 'hard'|'soft'}")
    soft = _delete_mode(str(body.get("mode", "hard")))
    notify = _flag(request, "notify", True)
    for object_id in body["ids"]:
        rt.state.delete_device(str(object_id), soft=soft, notify=notify)
    return {"deleted": len(body["ids"]), "mode": "soft" if soft else "hard"}


def _delete_mode(mode: str) -> bool:
    if mode not in ("hard", "soft"):
        raise EntityError("mode must be 'hard' or 'soft'")
    return mode == "soft"


async def get_device(rt: TenantRuntime, request: web.Request) -> Any:
    object_id = request.match_info["id"].lower()
    state = rt.state
    record = state.devices.get(object_id)
    if record is not None:
        return {"state": "active", "seq": record.seq, "device": record.props}
    if object_id in state.soft_deleted:
        seq = state.tombstones[object_id][0]
        return {"state": "softDeleted", "seq": seq, "device": state.soft_deleted[object_id]}
    if object_id in state.tombstones:
        return {"state": "deleted", "seq": state.tombstones[object_id][0], "device": None}
    raise KeyError(object_id)


async def patch_device(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request)
    if not isinstance(body, dict):
        raise EntityError("expected a JSON object of device properties")
    notify = _flag(request, "notify", True)
    return rt.state.patch_device(request.match_info["id"], body, notify=notify)


async def delete_device(rt: TenantRuntime, request: web.Request) -> Any:
    soft = _delete_mode(request.query.get("mode", "hard"))
    notify = _flag(request, "notify", True)
    rt.state.delete_device(request.match_info["id"], soft=soft, notify=notify)
    return {"deleted": request.match_info["id"], "mode": "soft" if soft else "hard"}


async def restore_device(rt: TenantRuntime, request: web.Request) -> Any:
    return rt.state.restore_device(request.match_info["id"], notify=_flag(request, "notify", True))


# --- managed devices ---------------------------------------------------------------------------


async def post_managed(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request)
    if isinstance(body, dict) and isinstance(body.get("managedDevices"), list):
        return Status(
            201, {"managedDevices": [rt.state.upsert_managed(d) for d in body["managedDevices"]]}
        )
    if not isinstance(body, dict):
        raise EntityError("expected a managedDevice object or {'managedDevices': [...]}")
    return Status(201, rt.state.upsert_managed(body))


async def list_managed(rt: TenantRuntime, request: web.Request) -> Any:
    aad = request.query.get("azureADDeviceId")
    if aad is not None:
        items = rt.state.managed_for_aad_device(aad)
    else:
        limit = int(request.query.get("limit", "100"))
        items = list(rt.state.managed.values())[:limit]
    return {"total": len(rt.state.managed), "managedDevices": items}


async def get_managed(rt: TenantRuntime, request: web.Request) -> Any:
    return rt.state.managed[request.match_info["id"]]


async def patch_managed(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request)
    if not isinstance(body, dict):
        raise EntityError("expected a JSON object of managedDevice properties")
    sync = _flag(request, "syncToEntra", True)
    return rt.state.patch_managed(request.match_info["id"], body, sync_to_entra=sync)


async def delete_managed(rt: TenantRuntime, request: web.Request) -> Any:
    rt.state.delete_managed(request.match_info["id"])
    return {"deleted": request.match_info["id"]}


# --- faults --------------------------------------------------------------------------------------


async def get_faults(rt: TenantRuntime, request: web.Request) -> Any:
    return rt.faults.to_json()


async def put_latency(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request) or {}
    rt.faults.set_latency(float(body.get("ms", 0)), float(body.get("jitterMs", 0)))
    return rt.faults.to_json()


async def add_fault(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request)
    if not isinstance(body, dict):
        raise EntityError("expected a fault rule object")
    return Status(201, rt.faults.add(FaultRule.from_json(body)).to_json())


async def delete_fault(rt: TenantRuntime, request: web.Request) -> Any:
    rule_id = request.match_info["rule"]
    before = len(rt.faults.rules)
    rt.faults.rules = [rule for rule in rt.faults.rules if rule.id != rule_id]
    if len(rt.faults.rules) == before:
        raise KeyError(rule_id)
    return rt.faults.to_json()


async def clear_faults(rt: TenantRuntime, request: web.Request) -> Any:
    rt.faults.clear()
    return rt.faults.to_json()


# --- notifications and subscriptions -------------------------------------------------------------


async def flush(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request) or {}
    return await rt.subscriptions.hub.flush(float(body.get("timeoutSeconds", 10.0)))


async def deliveries(rt: TenantRuntime, request: web.Request) -> Any:
    log = rt.subscriptions.hub.deliveries
    since = int(request.query.get("since", "0"))
    kind = request.query.get("kind")
    items = log[since:]
    if kind:
        items = [entry for entry in items if entry.get("kind") == kind]
    return {"total": len(log), "deliveries": items}


async def clear_deliveries(rt: TenantRuntime, request: web.Request) -> Any:
    rt.subscriptions.hub.deliveries.clear()
    return {"total": 0}


async def list_subscriptions(rt: TenantRuntime, request: web.Request) -> Any:
    return {
        "subscriptions": [
            {**sub.to_json(), "live": sub.is_live()} for sub in rt.subscriptions.items.values()
        ]
    }


async def patch_subscription(rt: TenantRuntime, request: web.Request) -> Any:
    """Force-set expirationDateTime (no limits, no handshake): e.g. to expire one now."""
    sub = rt.subscriptions.items[request.match_info["id"]]
    body = await _body(request) or {}
    if "expirationDateTime" in body:
        sub.expiration = parse_datetime(str(body["expirationDateTime"]))
    return {**sub.to_json(), "live": sub.is_live()}


async def delete_subscription(rt: TenantRuntime, request: web.Request) -> Any:
    del rt.subscriptions.items[request.match_info["id"]]
    return {"deleted": request.match_info["id"]}


async def lifecycle(rt: TenantRuntime, request: web.Request) -> Any:
    sub = rt.subscriptions.items[request.match_info["id"]]
    body = await _body(request) or {}
    event = str(body.get("event") or body.get("lifecycleEvent") or "")
    rt.subscriptions.hub.send_lifecycle(sub, event)
    return Status(202, {"queued": True, "event": event, "subscriptionId": sub.id})


# --- delta, syncDevice calls, request accounting -------------------------------------------------


async def expire_delta(rt: TenantRuntime, request: web.Request) -> Any:
    rt.state.token_epoch += 1
    return {"deltaTokenEpoch": rt.state.token_epoch}


async def sync_calls(rt: TenantRuntime, request: web.Request) -> Any:
    return {"calls": rt.state.sync_calls}


async def clear_sync_calls(rt: TenantRuntime, request: web.Request) -> Any:
    rt.state.sync_calls.clear()
    return {"calls": []}


async def get_requests(rt: TenantRuntime, request: web.Request) -> Any:
    return rt.state.stats.to_json()


async def reset_requests(rt: TenantRuntime, request: web.Request) -> Any:
    previous = rt.state.stats.to_json()
    rt.state.stats = type(rt.state.stats)()
    return previous


# --- global --------------------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return _json_response(200, {"ok": True, "tenants": sorted(sim.tenants)})


async def drop_tenant(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    dropped = await sim.drop(request.match_info["tenant"])
    return _json_response(200, {"dropped": dropped})


def add_admin_routes(app: web.Application) -> None:
    r = app.router
    t = "/_sim/{tenant}"
    r.add_get("/_sim", index)
    r.add_delete(t, drop_tenant)
    routes: list[tuple[str, str, AdminHandler]] = [
        ("PUT", t, put_tenant),
        ("GET", t, get_tenant),
        ("GET", f"{t}/settings", get_settings),
        ("PATCH", f"{t}/settings", patch_settings),
        # devices (fixed paths before {id})
        ("POST", f"{t}/devices", post_devices),
        ("GET", f"{t}/devices", list_devices),
        ("PATCH", f"{t}/devices", bulk_patch),
        ("GET", f"{t}/devices/ids", device_ids),
        ("POST", f"{t}/devices/generate", generate),
        ("POST", f"{t}/devices/mutate", mutate),
        ("POST", f"{t}/devices/delete", bulk_delete),
        ("GET", f"{t}/devices/{{id}}", get_device),
        ("PATCH", f"{t}/devices/{{id}}", patch_device),
        ("DELETE", f"{t}/devices/{{id}}", delete_device),
        ("POST", f"{t}/devices/{{id}}/restore", restore_device),
        # Intune
        ("POST", f"{t}/managedDevices", post_managed),
        ("GET", f"{t}/managedDevices", list_managed),
        ("GET", f"{t}/managedDevices/{{id}}", get_managed),
        ("PATCH", f"{t}/managedDevices/{{id}}", patch_managed),
        ("DELETE", f"{t}/managedDevices/{{id}}", delete_managed),
        ("PUT", f"{t}/managedDevices/{{id}}/compliancePolicyStates", put_states),
        ("GET", f"{t}/managedDevices/{{id}}/compliancePolicyStates", get_states),
        # faults
        ("GET", f"{t}/faults", get_faults),
        ("DELETE", f"{t}/faults", clear_faults),
        ("PUT", f"{t}/faults/latency", put_latency),
        ("POST", f"{t}/faults/rules", add_fault),
        ("DELETE", f"{t}/faults/rules/{{rule}}", delete_fault),
        # notifications and subscriptions
        ("POST", f"{t}/notifications/flush", flush),
        ("GET", f"{t}/notifications", deliveries),
        ("DELETE", f"{t}/notifications", clear_deliveries),
        ("GET", f"{t}/subscriptions", list_subscriptions),
        ("PATCH", f"{t}/subscriptions/{{id}}", patch_subscription),
        ("DELETE", f"{t}/subscriptions/{{id}}", delete_subscription),
        ("POST", f"{t}/subscriptions/{{id}}/lifecycle", lifecycle),
        # delta, Intune actions, accounting
        ("POST", f"{t}/delta/expire", expire_delta),
        ("GET", f"{t}/syncDeviceCalls", sync_calls),
        ("DELETE", f"{t}/syncDeviceCalls", clear_sync_calls),
        ("GET", f"{t}/requests", get_requests),
        ("DELETE", f"{t}/requests", reset_requests),
    ]
    for method, path, handler in routes:
        r.add_route(method, path, tenant_route(handler))
