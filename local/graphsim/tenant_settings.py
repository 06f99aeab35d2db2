"""The tenant's Intune compliance settings: the Graph route and an admin call.

Graph, under /{tenant}/v1.0: GET /deviceManagement/settings answers the deviceManagementSettings
complex type of the deviceManagement singleton (microsoft-graph-docs-contrib,
api-reference/v1.0/resources/intune-deviceconfig-devicemanagementsettings.md: its three properties
and their JSON representation). Its values are those of the admin center's "Compliance policy
settings" (memdocs device-compliance-get-started.md): a validity period of 30 days and devices
with no policy marked compliant unless changed.

Admin: PUT /_sim/{tenant}/deviceManagement/settings with any of
`{"deviceComplianceCheckinThresholdDays": 10, "secureByDefault": true, "forbidden": false}`
changes them (GET reads them back); `forbidden` answers the Graph read 403, as Intune does for an
app without DeviceManagementConfiguration.Read.All. `set_tenant_settings(admin, ...)` is the
Python side. Routing and admin routes are registered by graph_api.py and admin_api.py.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from .admin import _AdminApi
from .entities import EntityError
from .odata import INTUNE_JSON, GraphRequest, GraphResponse, intune_error
from .runtime import TenantRuntime

R = TypeVar("R")
Handler = Callable[[TenantRuntime, GraphRequest, dict[str, str]], Awaitable[GraphResponse]]
SETTINGS_TYPE = "#microsoft.graph.deviceManagementSettings"


@dataclass
class TenantSettings:
    # The admin center's defaults (memdocs device-compliance-get-started.md).
    checkin_threshold_days: int = 30
    secure_by_default: bool = False
    is_scheduled_action_enabled: bool = True
    forbidden: bool = False

    def to_graph(self) -> dict[str, Any]:
        return {
            "@odata.type": SETTINGS_TYPE,
            "deviceComplianceCheckinThresholdDays": self.checkin_threshold_days,
            "isScheduledActionEnabled": self.is_scheduled_action_enabled,
            "secureByDefault": self.secure_by_default,
        }


_STORE: weakref.WeakKeyDictionary[TenantRuntime, TenantSettings] = weakref.WeakKeyDictionary()


def _settings(rt: TenantRuntime) -> TenantSettings:
    return _STORE.setdefault(rt, TenantSettings())


# --- admin ---------------------------------------------------------------------------------


def _update(current: TenantSettings, body: Mapping[str, Any]) -> None:
    days = body.get("deviceComplianceCheckinThresholdDays", current.checkin_threshold_days)
    # The admin center accepts 1 to 120 days (memdocs device-compliance-get-started.md); the
    # simulator may serve any integer so that clients can be tested against a bad answer.
    if isinstance(days, bool) or not isinstance(days, int):
        raise EntityError("deviceComplianceCheckinThresholdDays must be an integer")
    flags = {}
    for name in ("secureByDefault", "isScheduledActionEnabled", "forbidden"):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            raise EntityError(f"{name} must be a boolean")
        flags[name] = value
    current.checkin_threshold_days = days
    if flags["secureByDefault"] is not None:
        current.secure_by_default = flags["secureByDefault"]
    if flags["isScheduledActionEnabled"] is not None:
        current.is_scheduled_action_enabled = flags["isScheduledActionEnabled"]
    if flags["forbidden"] is not None:
        current.forbidden = flags["forbidden"]


async def put_settings(rt: TenantRuntime, request: web.Request) -> Any:
    body = await request.json() if request.can_read_body else None
    if not isinstance(body, Mapping):
        raise EntityError("expected a JSON object")
    _update(_settings(rt), body)
    return await get_settings(rt, request)


async def get_settings(rt: TenantRuntime, request: web.Request) -> Any:
    current = _settings(rt)
    return {**current.to_graph(), "forbidden": current.forbidden}


def set_tenant_settings(
    admin: _AdminApi[R],
    *,
    checkin_threshold_days: int | None = None,
    secure_by_default: bool | None = None,
    forbidden: bool | None = None,
) -> R:
    """Change the tenant's compliance settings (sync or async admin client)."""
    body: dict[str, Any] = {"secureByDefault": secure_by_default, "forbidden": forbidden}
    if checkin_threshold_days is not None:
        body["deviceComplianceCheckinThresholdDays"] = checkin_threshold_days
    return admin._call("PUT", "/deviceManagement/settings", body)


# --- Graph ---------------------------------------------------------------------------------


def resolve(parts: list[str]) -> tuple[str, dict[str, str]] | None:
    if [p.lower() for p in parts] == ["devicemanagement", "settings"]:
        return "tenant_settings", {}
    return None


async def get_tenant_settings(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    current = _settings(rt)
    if current.forbidden:
        # Intune's 403 for a token without a deviceconfig read permission.
        return intune_error(
            403, "Forbidden", client_request_id=req.headers.get("client-request-id")
        )
    # A property of the singleton served on its own: OData's context names the property path.
    body = {"@odata.context": f"{req.base_url}/$metadata#deviceManagement/settings"}
    body.update(current.to_graph())
    return GraphResponse(200, body, content_type=INTUNE_JSON)


# (route key, accounting template, handlers by method) for graph_api.ROUTES.
ROUTES: tuple[tuple[str, str, dict[str, Handler]], ...] = (
    ("tenant_settings", "/deviceManagement/settings", {"GET": get_tenant_settings}),
)
