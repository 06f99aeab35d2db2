"""Admin API, devices: create, generate, mutate, patch, delete and restore Entra devices, and
the Intune managed devices linked to them (see README.md for the routes)."""

from __future__ import annotations

import gc
import random
import time
from typing import Any

from aiohttp import web

from .admin_http import Status
from .admin_http import body as _body
from .admin_http import flag as _flag
from .entities import EntityError
from .fleet import generate_fleet
from .runtime import TenantRuntime

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
            pending_fraction=float(body.get("pendingFraction", 0.0)),
            now=rt.state.clock.now(),
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


async def _props(request: web.Request, entity: str) -> dict[str, Any]:
    body = await _body(request)
    if not isinstance(body, dict):
        raise EntityError(f"expected a JSON object of {entity} properties")
    return body


async def patch_device(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _props(request, "device")
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
    body = await _props(request, "managedDevice")
    sync = _flag(request, "syncToEntra", True)
    return rt.state.patch_managed(request.match_info["id"], body, sync_to_entra=sync)


async def delete_managed(rt: TenantRuntime, request: web.Request) -> Any:
    rt.state.delete_managed(request.match_info["id"])
    return {"deleted": request.match_info["id"]}
