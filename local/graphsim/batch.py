"""`POST /$batch` (concepts/json-batching.md): up to 20 requests, each answered on its own.

Items run through the same dispatch as top-level requests (routing, faults, accounting), so
an item can be throttled inside a 200 envelope, as the docs describe.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .odata import GraphRequest, GraphResponse, dumps, graph_error
from .runtime import TenantRuntime

MAX_BATCH = 20
Dispatch = Callable[[TenantRuntime, GraphRequest], Awaitable[GraphResponse]]


def _item_path(url: str, req: GraphRequest) -> tuple[str, str] | str:
    """Item url -> (relative path, raw query), or an error message.

    Graph documents relative urls ("/devices/{id}?$select=..."); msgraph-sdk-python sends
    the *absolute* url of the RequestInformation, so both are accepted.
    """
    parts = urlsplit(url)
    path = parts.path
    if parts.scheme:
        prefix = urlsplit(req.base_url).path  # "/{tenant}/v1.0"
        if not path.startswith(prefix + "/") and path != prefix:
            return f"Batch item url '{url}' does not belong to this tenant's API root."
        path = path[len(prefix) :]
    for version in ("/v1.0", "v1.0"):
        if path.startswith(version + "/"):
            path = path[len(version) :]
    if not path.startswith("/"):
        path = "/" + path
    return path, parts.query


def _encode_item_body(rt: TenantRuntime, resp: GraphResponse) -> Any:
    if resp.body is None:
        return None
    if rt.state.settings.batchBodyEncoding == "base64":
        # Graph base64-encodes non-JSON bodies; this mode forces it for JSON too, which is
        # the only form msgraph-core's BatchResponseItem can turn back into bytes.
        return base64.b64encode(dumps(resp.body)).decode()
    return resp.body


def _body_bytes(raw_body: Any) -> bytes | None:
    if raw_body is None:
        return None
    if isinstance(raw_body, str):
        return base64.b64decode(raw_body)
    return json.dumps(raw_body).encode()


def _parse(
    items: list[Any], req: GraphRequest
) -> list[tuple[str, GraphRequest, list[str]]] | GraphResponse:
    seen: set[str] = set()
    parsed: list[tuple[str, GraphRequest, list[str]]] = []
    for item in items:
        if not isinstance(item, dict) or not item.get("id") or not item.get("method"):
            return graph_error(400, "BadRequest", "Each batch request needs id, method and url.")
        item_id = str(item["id"])
        # json-batching.md, id: "Not case-sensitive. Must be unique in the batch, otherwise,
        # the batch request fails with a 400 error code." - "a" and "A" are the same id.
        if item_id.casefold() in seen:
            return graph_error(400, "BadRequest", f"Duplicate batch request id '{item_id}'.")
        seen.add(item_id.casefold())
        target = _item_path(str(item.get("url") or ""), req)
        if isinstance(target, str):
            return graph_error(400, "BadRequest", target)
        path, raw_query = target
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        # msgraph-core serialises dependsOn as "depends_on"; accept both spellings.
        depends = item.get("dependsOn") or item.get("depends_on") or []
        inner = GraphRequest(
            method=str(item["method"]).upper(),
            path=path,
            query={k.lower(): v for k, v in parse_qsl(raw_query, keep_blank_values=True)},
            headers=headers,
            body=_body_bytes(item.get("body")),
            base_url=req.base_url,
            in_batch=True,
        )
        parsed.append((item_id, inner, [str(d) for d in depends]))
    return parsed


async def run_batch(rt: TenantRuntime, req: GraphRequest, dispatch: Dispatch) -> GraphResponse:
    try:
        body = req.json_body()
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        return graph_error(400, "BadRequest", "Invalid batch payload format.")
    items: list[Any] = body["requests"]
    if not items:
        return graph_error(400, "BadRequest", "Batch request must contain at least one request.")
    if len(items) > MAX_BATCH:
        return graph_error(
            400,
            "BadRequest",
            f"Number of batch requests ({len(items)}) exceeds the limit of {MAX_BATCH}.",
        )
    parsed = _parse(items, req)
    if isinstance(parsed, GraphResponse):
        return parsed
    rt.state.stats.batch_items += len(parsed)
    results: dict[str, GraphResponse] = {}
    if any(depends for _, _, depends in parsed):
        # dependsOn: run in order; a step whose dependency failed is answered 424.
        by_folded: dict[str, GraphResponse] = {}
        for item_id, inner, depends in parsed:
            done = [by_folded.get(d.casefold()) for d in depends]
            if any(resp is None or resp.status >= 400 for resp in done):
                results[item_id] = graph_error(424, "FailedDependency", "Dependency failed.")
            else:
                results[item_id] = await dispatch(rt, inner)
            by_folded[item_id.casefold()] = results[item_id]
    else:
        responses = await asyncio.gather(*(dispatch(rt, inner) for _, inner, _ in parsed))
        results = {item_id: resp for (item_id, _, _), resp in zip(parsed, responses, strict=True)}
    out = []
    for item_id, _, _ in parsed:
        resp = results[item_id]
        entry: dict[str, Any] = {"id": item_id, "status": resp.status}
        entry["headers"] = resp.header_items()
        encoded = _encode_item_body(rt, resp)
        if encoded is not None:
            entry["body"] = encoded
        out.append(entry)
    if rt.state.settings.batchResponseOrder == "reversed":
        out.reverse()  # "Individual responses might appear in a different order" (the docs)
    return GraphResponse(200, {"responses": out}, content_type="application/json")
