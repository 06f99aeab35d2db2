"""Admin API under /_sim/{tenant}/...: set up tenants, mutate devices, inject faults, inspect.

Every admin call creates its tenant implicitly. Errors: 400 {"error": "..."} for bad
input, 404 {"error": "..."} for unknown ids. See README.md for the full list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import admin_devices as devices
from .admin_http import Status, json_response
from .admin_http import body as _body
from .ca_policies import get_policies, put_policies
from .compliance_states import get_states, put_states
from .entities import EntityError
from .faults import FaultRule
from .intune_timeline import advance as advance_intune_timeline
from .intune_timeline import get_timeline, post_timeline
from .odata import parse_datetime
from .runtime import Simulator, TenantRuntime
from .tenant_settings import get_settings as get_tenant_settings
from .tenant_settings import put_settings as put_tenant_settings

SIM_KEY = web.AppKey("graphsim", Simulator)
AdminHandler = Callable[[TenantRuntime, web.Request], Awaitable[Any]]


def tenant_route(handler: AdminHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def wrapped(request: web.Request) -> web.Response:
        sim = request.app[SIM_KEY]
        runtime = sim.ensure(request.match_info["tenant"])
        try:
            result = await handler(runtime, request)
        except EntityError as exc:
            return json_response(400, {"error": str(exc)})
        except KeyError as exc:
            return json_response(404, {"error": f"not found: {exc.args[0] if exc.args else ''}"})
        except ValueError as exc:
            return json_response(400, {"error": f"invalid request: {exc}"})
        if isinstance(result, Status):
            return json_response(result.status, result.body)
        return json_response(200, result)

    return wrapped


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
    """Live subscriptions; `expired` lists those Graph deleted for lapsing (oldest first)."""
    hub = rt.subscriptions.hub
    hub.purge()
    now = rt.state.clock.now()
    return {
        "subscriptions": [
            {**sub.to_json(), "live": sub.is_live(now)} for sub in rt.subscriptions.items.values()
        ],
        "expired": list(hub.expired),
    }


async def patch_subscription(rt: TenantRuntime, request: web.Request) -> Any:
    """Force-set expirationDateTime (no limits, no handshake). A time already past makes the
    next access delete the subscription, as Graph deletes lapsed ones."""
    rt.subscriptions.hub.purge()
    sub = rt.subscriptions.items[request.match_info["id"]]
    body = await _body(request) or {}
    if "expirationDateTime" in body:
        sub.expiration = parse_datetime(str(body["expirationDateTime"]))
    return {**sub.to_json(), "live": sub.is_live(rt.state.clock.now())}


async def delete_subscription(rt: TenantRuntime, request: web.Request) -> Any:
    del rt.subscriptions.items[request.match_info["id"]]
    return {"deleted": request.match_info["id"]}


async def lifecycle(rt: TenantRuntime, request: web.Request) -> Any:
    rt.subscriptions.hub.purge()
    sub = rt.subscriptions.items[request.match_info["id"]]
    body = await _body(request) or {}
    event = str(body.get("event") or body.get("lifecycleEvent") or "")
    rt.subscriptions.hub.send_lifecycle(sub, event)
    return Status(202, {"queued": True, "event": event, "subscriptionId": sub.id})


# --- delta, syncDevice calls, request accounting -------------------------------------------------


async def expire_delta(rt: TenantRuntime, request: web.Request) -> Any:
    """Every outstanding delta/skip token now fails as expired (deltaTokenExpiredMode)."""
    rt.state.token_epoch += 1
    rt.state.token_epoch_reason = "expired"
    return {"deltaTokenEpoch": rt.state.token_epoch}


async def reset_delta(rt: TenantRuntime, request: web.Request) -> Any:
    """Every outstanding token now gets Graph's synchronization reset: 410 + Location."""
    rt.state.token_epoch += 1
    rt.state.token_epoch_reason = "reset"
    return {"deltaTokenEpoch": rt.state.token_epoch}


# --- the tenant's clock ----------------------------------------------------------------------


async def get_clock(rt: TenantRuntime, request: web.Request) -> Any:
    return rt.state.clock.to_json()


async def advance_clock(rt: TenantRuntime, request: web.Request) -> Any:
    """{"seconds": n} (or "days"/"hours"/"minutes"): delta tokens and subscriptions age."""
    body = await _body(request) or {}
    units = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
    unknown = set(body) - set(units)
    if unknown or not body:
        raise EntityError(f"give one or more of {sorted(units)}")
    seconds = sum(float(body[name]) * factor for name, factor in units.items() if name in body)
    before = rt.state.clock.now()
    rt.state.clock.advance(seconds)
    rt.subscriptions.hub.purge()
    # Intune's timeline: check-ins, grace periods, validity period, Error (intune_timeline.py).
    advance_intune_timeline(rt, before)
    return rt.state.clock.to_json()


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
    return json_response(200, {"ok": True, "tenants": sorted(sim.tenants)})


async def drop_tenant(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    dropped = await sim.drop(request.match_info["tenant"])
    return json_response(200, {"dropped": dropped})


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
        ("POST", f"{t}/devices", devices.post_devices),
        ("GET", f"{t}/devices", devices.list_devices),
        ("PATCH", f"{t}/devices", devices.bulk_patch),
        ("GET", f"{t}/devices/ids", devices.device_ids),
        ("POST", f"{t}/devices/generate", devices.generate),
        ("POST", f"{t}/devices/mutate", devices.mutate),
        ("POST", f"{t}/devices/delete", devices.bulk_delete),
        ("GET", f"{t}/devices/{{id}}", devices.get_device),
        ("PATCH", f"{t}/devices/{{id}}", devices.patch_device),
        ("DELETE", f"{t}/devices/{{id}}", devices.delete_device),
        ("POST", f"{t}/devices/{{id}}/restore", devices.restore_device),
        # Intune
        ("POST", f"{t}/managedDevices", devices.post_managed),
        ("GET", f"{t}/managedDevices", devices.list_managed),
        ("GET", f"{t}/managedDevices/{{id}}", devices.get_managed),
        ("PATCH", f"{t}/managedDevices/{{id}}", devices.patch_managed),
        ("DELETE", f"{t}/managedDevices/{{id}}", devices.delete_managed),
        ("PUT", f"{t}/managedDevices/{{id}}/compliancePolicyStates", put_states),
        ("POST", f"{t}/managedDevices/{{id}}/timeline", post_timeline),
        ("GET", f"{t}/timeline", get_timeline),
        ("GET", f"{t}/managedDevices/{{id}}/compliancePolicyStates", get_states),
        ("PUT", f"{t}/deviceManagement/settings", put_tenant_settings),
        ("GET", f"{t}/deviceManagement/settings", get_tenant_settings),
        # Conditional Access
        ("PUT", f"{t}/conditionalAccess/policies", put_policies),
        ("GET", f"{t}/conditionalAccess/policies", get_policies),
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
        ("POST", f"{t}/delta/reset", reset_delta),
        ("GET", f"{t}/clock", get_clock),
        ("POST", f"{t}/clock/advance", advance_clock),
        ("GET", f"{t}/syncDeviceCalls", sync_calls),
        ("DELETE", f"{t}/syncDeviceCalls", clear_sync_calls),
        ("GET", f"{t}/requests", get_requests),
        ("DELETE", f"{t}/requests", reset_requests),
    ]
    for method, path, handler in routes:
        r.add_route(method, path, tenant_route(handler))
