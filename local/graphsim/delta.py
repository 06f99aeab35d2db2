"""`GET /devices/delta` and plain collection paging over a TenantState.

Tokens are opaque to clients (base64url JSON) and carry everything a page needs, so the
server keeps no per-client session state and every page costs O(page size):
- baseline round ("b"): creation-order positions [pos, end) as of the first request, then a
  deltaLink anchored at the change seq of that first request;
- change round ("c"): change-log seqs (from, upto] walked from `pos`;
- deltaLink ("d"): the seq the next round starts after.
Tokens embed the tenant incarnation and the delta-token epoch; the admin "expire" call
bumps the epoch, which makes every outstanding token fail like an expired Graph token.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from .odata import project
from .state import TenantState


class TokenError(Exception):
    """The token is malformed, from another tenant incarnation, or expired."""


def encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError("malformed token") from exc
    if not isinstance(payload, dict):
        raise TokenError("malformed token")
    return payload


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_token: str | None  # -> @odata.nextLink ($skiptoken)
    delta_token: str | None  # -> @odata.deltaLink ($deltatoken)


def _select_list(select: tuple[str, ...] | None) -> list[str] | None:
    return list(select) if select is not None else None


def _delta_item(props: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    # Delta always carries id, even when $select does not name it.
    if select is None:
        return dict(props)
    item = {"id": props["id"]}
    for name in select:
        item[name] = props.get(name)
    return item


class DeltaEngine:
    def __init__(self, tenant: TenantState) -> None:
        self.tenant = tenant

    def _stamp(self, payload: dict[str, Any]) -> str:
        payload["i"] = self.tenant.incarnation
        payload["e"] = self.tenant.token_epoch
        return encode_token(payload)

    def _check(self, token: str) -> dict[str, Any]:
        payload = decode_token(token)
        if payload.get("i") != self.tenant.incarnation or payload.get("e") != (
            self.tenant.token_epoch
        ):
            raise TokenError("expired")
        return payload

    # --- entry points ----------------------------------------------------------------------

    def start(self, select: tuple[str, ...] | None, page_size: int) -> Page:
        """First request of a full sync: snapshot positions and the current seq."""
        state = {
            "k": "b",
            "p": 0,
            "n": len(self.tenant.order),
            "s": self.tenant.seq,
            "sel": _select_list(select),
        }
        return self._baseline_page(state, page_size)

    def latest(self, select: tuple[str, ...] | None) -> Page:
        """`$deltatoken=latest`: no data, just a deltaLink from now on."""
        token = self._stamp({"k": "d", "s": self.tenant.seq, "sel": _select_list(select)})
        return Page([], None, token)

    def resume(self, token: str, page_size: int | None, default_size: int) -> Page:
        payload = self._check(token)
        kind = payload.get("k")
        size = page_size or int(payload.get("ps") or default_size)
        if kind == "b":
            return self._baseline_page(payload, size)
        if kind == "d":
            # A deltaLink opens a new change round bounded by the seq right now.
            since = int(payload["s"])
            if since + 1 < self.tenant.log_start:
                raise TokenError("expired")  # the change log was compacted past it
            state = {"k": "c", "f": since, "p": since + 1, "u": self.tenant.seq}
            state["sel"] = payload.get("sel")
            return self._change_page(state, size)
        if kind == "c":
            return self._change_page(payload, size)
        raise TokenError("wrong token kind")

    # --- pages -----------------------------------------------------------------------------

    def _baseline_page(self, state: dict[str, Any], size: int) -> Page:
        tenant = self.tenant
        order, devices = tenant.order, tenant.devices
        select = state.get("sel")
        pos, end = int(state["p"]), int(state["n"])
        items: list[dict[str, Any]] = []
        while pos < end and len(items) < size:
            object_id = order[pos]
            record = devices.get(object_id)
            # Skip deleted devices and stale slots of devices restored to a new position.
            if record is not None and record.pos == pos:
                items.append(_delta_item(record.props, select))
            pos += 1
        if pos < end:
            nxt = {**state, "p": pos, "ps": size}
            return Page(items, self._stamp(nxt), None)
        return Page(items, None, self._stamp({"k": "d", "s": state["s"], "sel": select}))

    def _change_page(self, state: dict[str, Any], size: int) -> Page:
        tenant = self.tenant
        select = state.get("sel")
        since, seq, upto = int(state["f"]), int(state["p"]), int(state["u"])
        if seq < tenant.log_start:
            raise TokenError("expired")
        partial = tenant.settings.deltaChangedPropertiesOnly and select is not None
        items: list[dict[str, Any]] = []
        while seq <= upto and len(items) < size:
            object_id = tenant.log_entry(seq)
            if object_id is not None:
                item = self._change_item(object_id, seq, since, select, partial)
                if item is not None:
                    items.append(item)
            seq += 1
        if seq <= upto:
            nxt = {**state, "p": seq, "ps": size}
            return Page(items, self._stamp(nxt), None)
        return Page(items, None, self._stamp({"k": "d", "s": upto, "sel": select}))

    def _change_item(
        self, object_id: str, seq: int, since: int, select: list[str] | None, partial: bool
    ) -> dict[str, Any] | None:
        tenant = self.tenant
        record = tenant.devices.get(object_id)
        if record is not None:
            if record.seq != seq:
                return None  # superseded by a later change: reported there
            if partial and select is not None:
                changed = tenant.changed_fields_since(record, since)
                if changed is not None:
                    # Like Graph for directory objects: updated instances carry id plus
                    # (at least) the changed properties, not the whole selection.
                    select = [name for name in select if name in changed]
            return _delta_item(record.props, select)
        tomb = tenant.tombstones.get(object_id)
        if tomb is not None and tomb[0] == seq:
            return {"id": object_id, "@removed": {"reason": tomb[1]}}
        return None


# --- plain collection paging (GET /devices, GET /deviceManagement/managedDevices) ---------


def list_page(
    tenant: TenantState,
    collection: str,
    token: str | None,
    select: tuple[str, ...] | None,
    size: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Page a collection in creation order; returns (items, next skiptoken)."""
    if collection == "devices":
        order: list[str] = tenant.order

        def lookup(pos: int) -> dict[str, Any] | None:
            record = tenant.devices.get(order[pos])
            return record.props if record is not None and record.pos == pos else None

    else:
        order = tenant.managed_order

        def lookup(pos: int) -> dict[str, Any] | None:
            return tenant.managed.get(order[pos])

    if token is None:
        state: dict[str, Any] = {"k": "l", "c": collection, "p": 0, "n": len(order)}
        state["sel"] = _select_list(select)
        state["ps"] = size
    else:
        state = decode_token(token)
        if state.get("k") != "l" or state.get("c") != collection:
            raise TokenError("wrong token kind")
        if state.get("i") != tenant.incarnation:
            raise TokenError("expired")
    sel = state.get("sel")
    page_size = int(state.get("ps") or size)
    pos, end = int(state["p"]), int(state["n"])
    items: list[dict[str, Any]] = []
    while pos < end and len(items) < page_size:
        entity = lookup(pos)
        if entity is not None:
            items.append(project(entity, sel))
        pos += 1
    if pos < end:
        state = {**state, "p": pos, "i": tenant.incarnation}
        return items, encode_token(state)
    return items, None
