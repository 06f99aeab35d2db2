"""Conditional Access policies of a tenant: the Graph routes and an admin call.

Graph, under /{tenant}/v1.0 (microsoft-graph-docs-contrib):
- GET /identity/conditionalAccess/policies (api-reference/v1.0/api/conditionalaccessroot-list-
  policies.md: permission Policy.Read.All, `$top`/`$skip` among the supported query options, a
  collection of conditionalAccessPolicy in `value`; the example's @odata.context is
  `$metadata#conditionalAccess/policies`);
- GET /identity/conditionalAccess/policies/{id} (conditionalaccesspolicy-get.md).

Policies are stored as the admin gives them (resources/conditionalaccesspolicy.md shapes) and
served as they are, except for evolvable enums: best-practices-concept.md, "Handling future
members in evolvable enumerations": members defined after the `unknownFutureValue` sentinel are
sent only to a client that asks with `Prefer: include-unknown-enum-members`; others get
`unknownFutureValue` in their place. The members after the sentinel, per resource page:
`riskRemediation` in grantControls.builtInControls (conditionalaccessgrantcontrols.md) and
`linux` in conditionalAccessDevicePlatform (the v1.0 schema lists it after the sentinel).

Admin: PUT /_sim/{tenant}/conditionalAccess/policies with `{"policies": [...],
"policyReadGranted": true, "pageSize": null}` replaces the tenant's policies (GET reads them
back). `policyReadGranted: false` makes the reads answer 403, as for an app without
Policy.Read.All; `pageSize` makes the list server-paged (`@odata.nextLink` with a skip token).
`set_ca_policies(admin, ...)` is the Python side.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from .admin import _AdminApi
from .entities import EntityError
from .odata import GraphRequest, GraphResponse, graph_error
from .runtime import TenantRuntime

R = TypeVar("R")
Handler = Callable[[TenantRuntime, GraphRequest, dict[str, str]], Awaitable[GraphResponse]]
SENTINEL = "unknownFutureValue"
# (path into the policy, members after the sentinel), from the resource pages named above.
EVOLVED: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = (
    (("grantControls", "builtInControls"), frozenset({"riskRemediation"})),
    (("conditions", "platforms", "includePlatforms"), frozenset({"linux"})),
    (("conditions", "platforms", "excludePlatforms"), frozenset({"linux"})),
)
_STATES = ("enabled", "disabled", "enabledForReportingButNotEnforced")


@dataclass
class TenantPolicies:
    policies: list[dict[str, Any]] = field(default_factory=list)
    granted: bool = True  # False: the app lacks Policy.Read.All
    page_size: int | None = None  # None: one page


_STORE: weakref.WeakKeyDictionary[TenantRuntime, TenantPolicies] = weakref.WeakKeyDictionary()


def _tenant(rt: TenantRuntime) -> TenantPolicies:
    return _STORE.setdefault(rt, TenantPolicies())


# --- admin ---------------------------------------------------------------------------------


def _policy(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise EntityError("each policy must be an object")
    if raw.get("state") not in _STATES:
        raise EntityError(f"state must be one of {list(_STATES)}, not {raw.get('state')!r}")
    return {"id": str(raw.get("id") or uuid.uuid4()), **{k: v for k, v in raw.items() if k != "id"}}


async def put_policies(rt: TenantRuntime, request: web.Request) -> Any:
    body = await request.json() if request.can_read_body else None
    if not isinstance(body, Mapping) or not isinstance(body.get("policies"), list):
        raise EntityError("expected {'policies': [...]}")
    page_size = body.get("pageSize")
    if page_size is not None and (not isinstance(page_size, int) or page_size < 1):
        raise EntityError("pageSize must be a positive integer or null")
    policies = [_policy(p) for p in body["policies"]]
    if len({p["id"].lower() for p in policies}) != len(policies):
        raise EntityError("policy ids must be unique")
    _STORE[rt] = TenantPolicies(policies, bool(body.get("policyReadGranted", True)), page_size)
    return await get_policies(rt, request)


async def get_policies(rt: TenantRuntime, request: web.Request) -> Any:
    found = _tenant(rt)
    return {
        "policies": found.policies,
        "policyReadGranted": found.granted,
        "pageSize": found.page_size,
    }


def set_ca_policies(
    admin: _AdminApi[R],
    policies: list[dict[str, Any]],
    *,
    policy_read_granted: bool = True,
    page_size: int | None = None,
) -> R:
    """Replace a tenant's Conditional Access policies (sync or async admin client)."""
    body = {
        "policies": policies,
        "policyReadGranted": policy_read_granted,
        "pageSize": page_size,
    }
    return admin._call("PUT", "/conditionalAccess/policies", body)


# --- Graph ---------------------------------------------------------------------------------


def resolve(parts: list[str]) -> tuple[str, dict[str, str]] | None:
    """(route key, params) for the paths above; None for anything else."""
    low = [p.lower() for p in parts]
    if low[:3] != ["identity", "conditionalaccess", "policies"]:
        return None
    if len(parts) == 3:
        return "ca_policies", {}
    if len(parts) == 4:
        return "ca_policy", {"id": parts[3]}
    return None


def wants_unknown_members(req: GraphRequest) -> bool:
    prefer = req.headers.get("Prefer") or req.headers.get("prefer") or ""
    return any(p.strip().lower() == "include-unknown-enum-members" for p in prefer.split(","))


def _hide_evolved(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy as a client that did not opt in sees it: evolved members become the sentinel
    (once per list: a list holding both keeps one sentinel)."""
    out = _copy(policy)
    for path, evolved in EVOLVED:
        parent: Any = out
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        values = parent.get(path[-1]) if isinstance(parent, dict) else None
        if not isinstance(values, list) or not evolved.intersection(values):
            continue
        shown: list[Any] = []
        for value in values:
            item = SENTINEL if value in evolved else value
            if item != SENTINEL or SENTINEL not in shown:
                shown.append(item)
        assert isinstance(parent, dict)
        parent[path[-1]] = shown
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _served(req: GraphRequest, policy: dict[str, Any]) -> dict[str, Any]:
    return _copy(policy) if wants_unknown_members(req) else _hide_evolved(policy)


def _denied(found: TenantPolicies, req: GraphRequest) -> GraphResponse | None:
    if found.granted:
        return None
    # The Conditional Access service answers AccessDenied for a token without the scope it
    # needs (its 403s in the wild, e.g. almenscorner/IntuneCD#142), in the errors.md shape.
    return graph_error(
        403,
        "AccessDenied",
        "You cannot perform the requested operation, required scopes are missing in the token.",
        client_request_id=req.headers.get("client-request-id"),
    )


def _context(req: GraphRequest, tail: str = "") -> str:
    return f"{req.base_url}/$metadata#conditionalAccess/policies{tail}"


def _non_negative(req: GraphRequest, name: str) -> int | None:
    raw = req.query.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ValueError(f"Invalid value '{raw}' for query option {name}.")
    return int(raw)


async def list_policies(
    rt: TenantRuntime, req: GraphRequest, params: dict[str, str]
) -> GraphResponse:
    found = _tenant(rt)
    if (refused := _denied(found, req)) is not None:
        return refused
    try:
        top = _non_negative(req, "$top")
        skip = _non_negative(req, "$skip") or 0
        token = _non_negative(req, "$skiptoken")
    except ValueError as exc:
        return graph_error(400, "BadRequest", str(exc))
    chosen = found.policies[skip:]
    if top is not None:
        # OData $top: the client asked for at most this many, and gets no next link for more.
        chosen = chosen[:top]
    start = token or 0
    end = start + found.page_size if found.page_size else len(chosen)
    body: dict[str, Any] = {
        "@odata.context": _context(req),
        "value": [_served(req, p) for p in chosen[start:end]],
    }
    if end < len(chosen):
        # Server-driven paging (concepts/paging.md): the next link is opaque to the client.
        query = "".join(f"${k}={v}&" for k, v in (("top", top), ("skip", skip)) if v)
        body["@odata.nextLink"] = (
            f"{req.base_url}/identity/conditionalAccess/policies?{query}$skiptoken={end}"
        )
    return GraphResponse(200, body)


async def get_policy(rt: TenantRuntime, req: GraphRequest, params: dict[str, str]) -> GraphResponse:
    found = _tenant(rt)
    if (refused := _denied(found, req)) is not None:
        return refused
    wanted = params["id"].lower()
    policy = next((p for p in found.policies if p["id"].lower() == wanted), None)
    if policy is None:
        return graph_error(
            404,
            "ResourceNotFound",
            f"Policy with id '{params['id']}' was not found.",
            client_request_id=req.headers.get("client-request-id"),
        )
    return GraphResponse(200, {"@odata.context": _context(req, "/$entity"), **_served(req, policy)})


_BASE = "/identity/conditionalAccess/policies"
# (route key, accounting template, handlers by method) for graph_api.ROUTES.
ROUTES: tuple[tuple[str, str, dict[str, Handler]], ...] = (
    ("ca_policies", _BASE, {"GET": list_policies}),
    ("ca_policy", _BASE + "/{id}", {"GET": get_policy}),
)
