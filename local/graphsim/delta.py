"""`GET /devices/delta` and plain collection paging over a TenantState.

Tokens are opaque to clients (base64url JSON) and carry everything a page needs, so the
server keeps no per-client session state and every page costs O(page size):
- baseline round ("b"): creation-order positions [pos, end) as of the first request; once
  they are paged, the round goes on as a change walk from the seq of that first request;
- change walk ("c"): change-log seqs after `f` (the round's starting point), walked from
  `p` up to whatever the tenant's seq is when each page is served;
- deltaLink ("d"): the seq the next round starts after.
Tokens embed the tenant incarnation, the delta-token epoch (bumped by the admin "expire" and
"reset" calls) and the tenant-clock time they were issued, which is how they expire after
Graph's seven days.

What the docs say and this reproduces (concepts/delta-query-overview.md):
- "Updated instances are represented by their id with at least the properties that have been
  updated": an updated device carries `id` plus the properties changed since the round's
  starting point (setting deltaChangedPropertiesOnly, on by default); a device created (or
  restored) since then comes whole, "using their standard representation".
- "If a change occurs to a property that is not selected, the resource for which that
  property changed does not appear in the delta response" (stated for users and groups,
  directory objects like devices).
- "Assume that the same item can show up anywhere in the @odata.nextLink sequence": a walk
  that reaches a device changed again after an earlier page sends it again; setting
  deltaRepeatCount repeats the tail of every page at the head of the next one.
- "The number of objects in each page can vary": setting deltaPageSizes.
- "Token duration ... For directory objects, the limit is seven days."
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .odata import project
from .state import DeviceRecord, TenantState

TOKEN_LIFETIME = timedelta(days=7)


class TokenError(Exception):
    """The token cannot be resumed: `reason` is "expired" (too old, from an older epoch or
    another tenant incarnation, or malformed) or "reset" (Graph asks for a full resync)."""

    def __init__(self, reason: str, select: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.select = select


def encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError("expired") from exc
    if not isinstance(payload, dict):
        raise TokenError("expired")
    return payload


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_token: str | None  # -> @odata.nextLink ($skiptoken)
    delta_token: str | None  # -> @odata.deltaLink ($deltatoken)


def _select_list(select: tuple[str, ...] | None) -> list[str] | None:
    return list(select) if select is not None else None


def _delta_item(props: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    # device-delta.md: "The id property is always returned", even when $select omits it.
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
        payload["t"] = int(self.tenant.clock.now().timestamp())
        return encode_token(payload)

    def _check(self, token: str) -> dict[str, Any]:
        payload = decode_token(token)
        select = payload.get("sel")
        if payload.get("i") != self.tenant.incarnation:
            raise TokenError("expired", select)
        if payload.get("e") != self.tenant.token_epoch:
            raise TokenError(self.tenant.token_epoch_reason, select)
        issued = payload.get("t")
        now = self.tenant.clock.now().timestamp()
        if not isinstance(issued, int) or now - issued > TOKEN_LIFETIME.total_seconds():
            raise TokenError("expired", select)
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
            "ps": page_size,
        }
        return self._page(state)

    def latest(self, select: tuple[str, ...] | None) -> Page:
        """`$deltatoken=latest`: no data, just a deltaLink from now on."""
        token = self._stamp({"k": "d", "s": self.tenant.seq, "sel": _select_list(select)})
        return Page([], None, token)

    def resume(self, token: str, page_size: int | None, default_size: int) -> Page:
        payload = self._check(token)
        kind = payload.get("k")
        if kind in ("b", "c"):
            if page_size:
                payload["ps"] = page_size
            return self._page(payload)
        if kind == "d":
            since = int(payload["s"])
            if since + 1 < self.tenant.log_start:
                raise TokenError("expired", payload.get("sel"))  # log compacted past it
            state = {"k": "c", "f": since, "p": since + 1, "sel": payload.get("sel")}
            state["ps"] = page_size or default_size
            return self._page(state)
        raise TokenError("expired", payload.get("sel"))

    # --- pages -----------------------------------------------------------------------------

    def _page(self, state: dict[str, Any]) -> Page:
        settings = self.tenant.settings
        index = int(state.get("pi", 0))
        size = int(state["ps"])
        if settings.deltaPageSizes:
            size = min(size, settings.deltaPageSizes[index % len(settings.deltaPageSizes)])
        # Repeats never fill a page: each page must also move the walk forward.
        repeat_ids = list(state.get("r") or ())[: max(0, size - 1)]
        items = [item for object_id in repeat_ids if (item := self._render(state, object_id))]
        fresh: list[dict[str, Any]] = []
        budget = size - len(items)
        if state["k"] == "b":
            self._baseline_walk(state, fresh, budget)
            if int(state["p"]) >= int(state["n"]):
                # Baseline positions done: the round goes on with what changed since it began.
                state = {**state, "k": "c", "f": state["s"], "p": int(state["s"]) + 1}
        if state["k"] == "c":
            self._change_walk(state, fresh, budget)
        items.extend(fresh)
        more = state["k"] == "b" or int(state["p"]) <= self.tenant.seq
        if more:
            repeat = [item["id"] for item in fresh[len(fresh) - settings.deltaRepeatCount :]]
            nxt = {**state, "pi": index + 1, "r": repeat if settings.deltaRepeatCount else []}
            return Page(items, self._stamp(nxt), None)
        delta = {"k": "d", "s": int(state["p"]) - 1, "sel": state.get("sel")}
        return Page(items, None, self._stamp(delta))

    def _baseline_walk(self, state: dict[str, Any], out: list[dict[str, Any]], budget: int) -> None:
        order, devices = self.tenant.order, self.tenant.devices
        select = state.get("sel")
        pos, end = int(state["p"]), int(state["n"])
        while pos < end and len(out) < budget:
            record = devices.get(order[pos])
            # Skip deleted devices and stale slots of devices restored to a new position.
            if record is not None and record.pos == pos:
                out.append(_delta_item(record.props, select))
            pos += 1
        state["p"] = pos

    def _change_walk(self, state: dict[str, Any], out: list[dict[str, Any]], budget: int) -> None:
        tenant = self.tenant
        seq = int(state["p"])
        if seq < tenant.log_start:
            raise TokenError("expired", state.get("sel"))
        while seq <= tenant.seq and len(out) < budget:
            object_id = tenant.log_entry(seq)
            record = tenant.devices.get(object_id) if object_id is not None else None
            if record is not None and record.seq != seq:
                pass  # superseded by a later change, reported at that one
            elif object_id is not None:
                item = self._render(state, object_id, record=record, at_seq=seq)
                if item is not None:
                    out.append(item)
            seq += 1
        state["p"] = seq

    def _render(
        self,
        state: dict[str, Any],
        object_id: str,
        *,
        record: DeviceRecord | None = None,
        at_seq: int | None = None,
    ) -> dict[str, Any] | None:
        """The delta item for a device as of now, or None when it has nothing to report."""
        tenant = self.tenant
        record = record or tenant.devices.get(object_id)
        select: list[str] | None = state.get("sel")
        if record is not None:
            if state["k"] == "b":
                return _delta_item(record.props, select)
            return self._updated_item(record, int(state["f"]), select)
        tomb = tenant.tombstones.get(object_id)
        if tomb is not None and (at_seq is None or tomb[0] == at_seq):
            return {"id": object_id, "@removed": {"reason": tomb[1]}}
        return None

    def _updated_item(
        self, record: DeviceRecord, since: int, select: list[str] | None
    ) -> dict[str, Any] | None:
        changed = self.tenant.changed_fields_since(record, since)
        if changed is None:
            return _delta_item(record.props, select)  # new since the round began: whole
        names = [n for n in (select or record.props) if n in changed and n != "id"]
        if select is not None and not names:
            return None  # only unselected properties changed
        if self.tenant.settings.deltaChangedPropertiesOnly:
            return _delta_item(record.props, names)
        return _delta_item(record.props, select)


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
            raise TokenError("expired")
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
