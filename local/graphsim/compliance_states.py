"""Intune compliance policy states of managed devices: the Graph routes and an admin call.

Graph, under /{tenant}/v1.0 (shapes from microsoft-graph-docs-contrib: the deviceCompliancePolicyState
resource and its list example, intune-deviceconfig-devicecompliancepolicysettingstate.md, and
intune-shared-compliancestatus.md for the states):

- GET /deviceManagement/managedDevices/{id}/deviceCompliancePolicyStates
- GET /deviceManagement/managedDevices/{id}/deviceCompliancePolicyStates/{stateId}
- GET /deviceManagement/managedDevices/{id}/deviceCompliancePolicyStates/{stateId}/settingStates

Admin: PUT /_sim/{tenant}/managedDevices/{id}/compliancePolicyStates with
`{"policyStates": [...], "inlineSettingStates": true, "pageSize": null}` replaces the device's
states (GET reads them back). `set_policy_states(admin, ...)` is the Python side.

Routing and admin routes are registered by graph_api.py and admin_api.py; the states live here,
per tenant runtime, so the tenant state module stays as it is.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web

from .admin import _AdminApi
from .entities import EntityError
from .odata import INTUNE_JSON, GraphRequest, GraphResponse, intune_error
from .runtime import TenantRuntime

R = TypeVar("R")
Handler = Callable[[TenantRuntime, GraphRequest, dict[str, str]], Awaitable[GraphResponse]]
POLICY_STATE_TYPE = "#microsoft.graph.deviceCompliancePolicyState"
SETTING_STATE_TYPE = "microsoft.graph.deviceCompliancePolicySettingState"
SETTING_SOURCE_TYPE = "microsoft.graph.settingSource"
# complianceStatus members (intune-shared-compliancestatus.md).
COMPLIANCE_STATUS = (
    "unknown",
    "notApplicable",
    "compliant",
    "remediated",
    "nonCompliant",
    "error",
    "conflict",
    "notAssigned",
)
# policyPlatformType values listed on the deviceCompliancePolicyState resource.
PLATFORM_TYPES = (
    "android",
    "androidForWork",
    "iOS",
    "macOS",
    "windowsPhone81",
    "windows81AndLater",
    "windows10AndLater",
    "androidWorkProfile",
    "all",
)
_SETTING_FIELDS = (
    "instanceDisplayName",
    "errorDescription",
    "userId",
    "userName",
    "userEmail",
    "userPrincipalName",
    "currentValue",
)


@dataclass
class DeviceStates:
    policies: list[dict[str, Any]] = field(default_factory=list)
    # False answers the list with empty settingStates, so clients must read
    # .../{stateId}/settingStates as community tools do (microsoft-graph-docs#17617).
    inline: bool = True
    page_size: int | None = None  # None: one page


_STORE: weakref.WeakKeyDictionary[TenantRuntime, dict[str, DeviceStates]] = (
    weakref.WeakKeyDictionary()
)


def _device_store(rt: TenantRuntime) -> dict[str, DeviceStates]:
    return _STORE.setdefault(rt, {})


# --- admin ---------------------------------------------------------------------------------


def _enum(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise EntityError(f"{name} must be one of {list(allowed)}, not {value!r}")
    return str(value)


def _setting_state(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("setting"), str):
        raise EntityError("each settingStates item needs a string 'setting'")
    setting = raw["setting"]
    out: dict[str, Any] = {
        "@odata.type": SETTING_STATE_TYPE,
        "setting": setting,
        "settingName": raw.get("settingName", setting.rsplit(".", 1)[-1]),
        "state": _enum("setting state", raw.get("state", "compliant"), COMPLIANCE_STATUS),
        "errorCode": int(raw.get("errorCode", 0)),
    }
    out.update({name: raw.get(name) for name in _SETTING_FIELDS})
    sources = raw.get("sources", [])
    if not isinstance(sources, list):
        raise EntityError("sources must be a list")
    out["sources"] = [
        {"@odata.type": SETTING_SOURCE_TYPE, "id": s.get("id"), "displayName": s.get("displayName")}
        for s in sources
        if isinstance(s, Mapping)
    ]
    return out


def _policy_state(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise EntityError("each policyStates item must be an object")
    settings = raw.get("settingStates", [])
    if not isinstance(settings, list):
        raise EntityError("settingStates must be a list")
    setting_states = [_setting_state(s) for s in settings]
    return {
        "@odata.type": POLICY_STATE_TYPE,
        "id": str(raw.get("id") or uuid.uuid4()),
        "settingStates": setting_states,
        "displayName": raw.get("displayName", "Compliance policy"),
        "version": int(raw.get("version", 1)),
        "platformType": _enum(
            "platformType", raw.get("platformType", "windows10AndLater"), PLATFORM_TYPES
        ),
        "state": _enum("state", raw.get("state", "compliant"), COMPLIANCE_STATUS),
        "settingCount": int(raw.get("settingCount", len(setting_states))),
        "userId": raw.get("userId"),
        "userPrincipalName": raw.get("userPrincipalName"),
    }


def _existing(rt: TenantRuntime, request: web.Request) -> str:
    """The managed device id of the admin path; KeyError (answered 404) if there is none."""
    managed_id = request.match_info["id"]
    if managed_id not in rt.state.managed:
        raise KeyError(managed_id)
    return managed_id


async def put_states(rt: TenantRuntime, request: web.Request) -> Any:
    managed_id = _existing(rt, request)
    body = await request.json() if request.can_read_body else None
    if not isinstance(body, Mapping) or not isinstance(body.get("policyStates"), list):
        raise EntityError("expected {'policyStates': [...]}")
    page_size = body.get("pageSize")
    if page_size is not None and (not isinstance(page_size, int) or page_size < 1):
        raise EntityError("pageSize must be a positive integer or null")
    states = DeviceStates(
        [_policy_state(p) for p in body["policyStates"]],
        inline=bool(body.get("inlineSettingStates", True)),
        page_size=page_size,
    )
    _device_store(rt)[managed_id] = states
    return await get_states(rt, request)


async def get_states(rt: TenantRuntime, request: web.Request) -> Any:
    managed_id = _existing(rt, request)
    states = _device_store(rt).get(managed_id, DeviceStates())
    return {
        "policyStates": states.policies,
        "inlineSettingStates": states.inline,
        "pageSize": states.page_size,
    }


def set_policy_states(
    admin: _AdminApi[R],
    managed_id: str,
    policy_states: list[dict[str, Any]],
    *,
    inline_setting_states: bool = True,
    page_size: int | None = None,
) -> R:
    """Replace a managed device's compliance policy states (sync or async admin client)."""
    body = {
        "policyStates": policy_states,
        "inlineSettingStates": inline_setting_states,
        "pageSize": page_size,
    }
    return admin._call(
        "PUT", f"/managedDevices/{quote(managed_id, safe='')}/compliancePolicyStates", body
    )


# --- Graph ---------------------------------------------------------------------------------


def resolve(parts: list[str]) -> tuple[str, dict[str, str]] | None:
    """(route key, params) for the paths above; None for anything else."""
    low = [p.lower() for p in parts]
    if len(parts) < 4 or low[:2] != ["devicemanagement", "manageddevices"]:
        return None
    if low[3] != "devicecompliancepolicystates":
        return None
    if len(parts) == 4:
        return "compliance_policy_states", {"id": parts[2]}
    if len(parts) == 5:
        return "compliance_policy_state", {"id": parts[2], "stateId": parts[4]}
    if len(parts) == 6 and low[5] == "settingstates":
        return "compliance_setting_states", {"id": parts[2], "stateId": parts[4]}
    return None


def _not_found(req: GraphRequest) -> GraphResponse:
    return intune_error(
        404, "ResourceNotFound", client_request_id=req.headers.get("client-request-id")
    )


def _lookup(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> DeviceStates | GraphResponse:
    if params["id"] not in rt.state.managed:
        return _not_found(req)
    return _device_store(rt).get(params["id"], DeviceStates())


def _context(req: GraphRequest, managed_id: str, tail: str) -> str:
    return (
        f"{req.base_url}/$metadata#deviceManagement/managedDevices('{managed_id}')/"
        f"deviceCompliancePolicyStates{tail}"
    )


def _as_listed(policy: dict[str, Any], inline: bool) -> dict[str, Any]:
    return policy if inline else {**policy, "settingStates": []}


async def list_policy_states(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    found = _lookup(rt, req, params)
    if isinstance(found, GraphResponse):
        return found
    raw_skip = req.query.get("$skiptoken", "0")
    start = int(raw_skip) if raw_skip.isdigit() else 0
    end = start + found.page_size if found.page_size else len(found.policies)
    body: dict[str, Any] = {
        "@odata.context": _context(req, params["id"], ""),
        "value": [_as_listed(p, found.inline) for p in found.policies[start:end]],
    }
    if end < len(found.policies):
        body["@odata.nextLink"] = (
            f"{req.base_url}/deviceManagement/managedDevices/{quote(params['id'], safe='')}"
            f"/deviceCompliancePolicyStates?$skiptoken={end}"
        )
    return GraphResponse(200, body, content_type=INTUNE_JSON)


def _policy(found: DeviceStates, state_id: str) -> dict[str, Any] | None:
    return next((p for p in found.policies if p["id"].lower() == state_id.lower()), None)


def _lookup_policy(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> dict[str, Any] | GraphResponse:
    found = _lookup(rt, req, params)
    if isinstance(found, GraphResponse):
        return found
    policy = _policy(found, params["stateId"])
    return policy if policy is not None else _not_found(req)


async def get_policy_state(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    policy = _lookup_policy(rt, req, params)
    if isinstance(policy, GraphResponse):
        return policy
    body = {"@odata.context": _context(req, params["id"], "/$entity"), **policy}
    return GraphResponse(200, body, content_type=INTUNE_JSON)


async def list_setting_states(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    """settingStates is a collection property of the policy state; OData serves a property
    path as {"value": [...]} (the form a Microsoft engineer gave in microsoft-graph-docs#17617)."""
    policy = _lookup_policy(rt, req, params)
    if isinstance(policy, GraphResponse):
        return policy
    body = {
        "@odata.context": _context(req, params["id"], f"('{policy['id']}')/settingStates"),
        "value": policy["settingStates"],
    }
    return GraphResponse(200, body, content_type=INTUNE_JSON)


_BASE = "/deviceManagement/managedDevices/{id}/deviceCompliancePolicyStates"
# (route key, accounting template, handlers by method) for graph_api.ROUTES.
ROUTES: tuple[tuple[str, str, dict[str, Handler]], ...] = (
    ("compliance_policy_states", _BASE, {"GET": list_policy_states}),
    ("compliance_policy_state", _BASE + "/{stateId}", {"GET": get_policy_state}),
    ("compliance_setting_states", _BASE + "/{stateId}/settingStates", {"GET": list_setting_states}),
)
