"""Observations: what a source saw of one device, when, and what the processor still has to read.

A source that already holds a device's facts (a delta item, a page of the Intune list) hands them
over with the instant it read them, so the processor evaluates without asking Graph again. Pure.

Facts are kept as Graph wrote them (camelCase JSON), not as parsed snapshots: an update item of a
delta round may carry only the properties that changed, and "not sent" must stay distinguishable
from "sent as null" until the item is merged onto the last full snapshot (`plan`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.core.evaluation import INTUNE_MDM_APP_ID
from shared.core.models import DeviceSnapshot, ManagedDeviceSnapshot
from shared.core.snapshots import (
    SnapshotError,
    device_from_json,
    managed_device_from_json,
    parse_time,
)

Json = dict[str, Any]
# Intune writes these on the Entra device (microsoft-graph-docs-contrib resources/device.md:
# isCompliant and isManaged "can only be updated by Intune ... or by an approved MDM app";
# mdmAppId names the MDM the device is enrolled in; deviceId links the Intune record). While none
# of them moved, the Intune facts already held still describe the device.
INTUNE_WRITTEN = (
    "isCompliant",
    "isManaged",
    "mdmAppId",
    "deviceId",
    "complianceExpirationDateTime",
)
# A device-changes message holds one observation; Service Bus standard allows 256 KB a message.
# Real facts are about 1 KB: anything far larger is sent as a bare hint instead (re-read).
MAX_OBSERVATION_CHARS = 16_000


class ObservationError(ValueError):
    """Stored or queued facts that cannot be read back."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What one source saw of one device.

    `device` is Graph's device JSON as the source had it: complete, partial (a delta update item)
    or a removal (`@removed`). `managed` are the Intune records found for it, read at `managed_at`;
    None when nobody looked (a delta update item, Intune switched off).
    """

    observed_at: datetime
    device: Mapping[str, Any]
    managed: tuple[Mapping[str, Any], ...] | None = None
    managed_at: datetime | None = None

    @property
    def removed(self) -> bool:
        return "@removed" in self.device

    def to_dict(self) -> Json:
        body: Json = {"observedAt": self.observed_at.isoformat(), "device": dict(self.device)}
        if self.managed is not None:
            body["managed"] = [dict(m) for m in self.managed]
            body["managedAt"] = (self.managed_at or self.observed_at).isoformat()
        return body

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, body: Any) -> Facts:
        if not isinstance(body, dict) or not isinstance(body.get("device"), dict):
            raise ObservationError("an observation needs a 'device' object")
        if not isinstance(body["device"].get("id"), str):
            raise ObservationError("an observed device needs its 'id'")
        observed_at = _instant(body.get("observedAt"), "observedAt")
        managed = body.get("managed")
        if managed is None:
            return cls(observed_at, body["device"])
        if not isinstance(managed, list) or not all(isinstance(m, dict) for m in managed):
            raise ObservationError("'managed' must be a list of objects")
        managed_at = _instant(body.get("managedAt") or body.get("observedAt"), "managedAt")
        return cls(observed_at, body["device"], tuple(managed), managed_at)

    @classmethod
    def from_json(cls, raw: str) -> Facts:
        try:
            return cls.from_dict(json.loads(raw))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ObservationError(f"not JSON: {exc}") from None

    def fits_a_message(self) -> bool:
        return len(self.to_json()) <= MAX_OBSERVATION_CHARS


def _instant(value: Any, name: str) -> datetime:
    try:
        parsed = parse_time(value)
    except SnapshotError as exc:
        raise ObservationError(str(exc)) from None
    if parsed is None:
        raise ObservationError(f"an observation needs '{name}'")
    return parsed


def graph_item(item: Mapping[str, Any]) -> Json:
    """An item as Graph sent it, without OData annotations (`@odata.context`, `@odata.type`…):
    they describe the response, not the device. `@removed` is kept: it is the removal."""
    return {k: v for k, v in item.items() if not k.startswith("@odata.")}


def complete(device: Mapping[str, Any], required: Collection[str]) -> bool:
    """Whether the JSON holds every property devicemon reads (or is a removal). A property Graph
    returns as null is present; one it left out is not."""
    return "@removed" in device or all(name in device for name in required)


def merge_items(earlier: Mapping[str, Any] | None, later: Mapping[str, Any]) -> Json:
    """Two items for one device in one delta response (Graph: "the same item can show up anywhere
    in the @odata.nextLink sequence"), or a later update onto a stored snapshot: the later one's
    properties win. A removal replaces whatever came before; an update after a removal starts
    from the update alone (the object came back)."""
    if earlier is None or "@removed" in later or "@removed" in earlier:
        return graph_item(later)
    return {**graph_item(earlier), **graph_item(later)}


def newest_record(records: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Of several Intune records for one device (re-enrolment leaves the old one behind), the one
    that checked in last. Compared as instants: `2026-11-29T20:00:00-08:00` is later than
    `2026-11-30T03:00:00Z`, though it sorts first as text. A record without a check-in, or with
    one that cannot be read, loses to any that has one."""
    best: Mapping[str, Any] | None = None
    best_at: datetime | None = None
    for record in records:
        try:
            at = parse_time(record.get("lastSyncDateTime"))
        except SnapshotError:
            at = None
        if best is None or (at is not None and (best_at is None or at > best_at)):
            best, best_at = record, at
    return best


def may_have_intune_record(device: Mapping[str, Any]) -> bool:
    """Whether Intune may hold a record for this device (Graph's device JSON), so that reading
    one is worth a request.

    Decided from documented properties of the Entra device (microsoft-graph-docs-contrib
    resources/device.md). `managementType` (beta only) is "set by Intune": any value but
    `unknown` says Intune has the device. `mdmAppId` is the application the device was enrolled
    into MDM with: another app than Intune's is a third-party MDM, or an Intune compliance partner
    that "becomes the MDM authority" for the device and reports its compliance to Entra itself
    (memdocs third-party-partners.md). `isManaged` false with no `mdmAppId` means no MDM at all.
    Anything else, unknown included, may have one.
    """
    management = device.get("managementType")
    if isinstance(management, str) and management.strip().lower() not in ("", "unknown"):
        return True
    app = device.get("mdmAppId")
    if isinstance(app, str) and app.strip():
        return app.strip().lower() == INTUNE_MDM_APP_ID
    return device.get("isManaged") is not False


def intune_written_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    return any(before.get(name) != after.get(name) for name in INTUNE_WRITTEN)


@dataclass(frozen=True, slots=True)
class Plan:
    """What the processor does with one change.

    stale: the change's facts are older than the stored ones: nothing to do.
    facts None: nothing usable in hand (a bare hint, or a partial item with no full snapshot to
    merge onto): re-read the device from Graph.
    facts with `managed` None: the device's facts are in hand, its Intune records are not (read
    them if Intune may be the device's MDM, see `may_have_intune_record`).
    """

    stale: bool = False
    facts: Facts | None = None


STALE = Plan(stale=True)
REREAD = Plan()


def plan(
    change: Facts | None,
    stored: Facts | None,
    *,
    stored_deleted: bool,
    required: Collection[str],
) -> Plan:
    """Decide from a change's facts and the stored snapshot (the last full one) what to evaluate.

    The merge of a partial update item onto the stored snapshot is safe because of how both came
    to be. Graph's delta returns, for an updated object, "at least the properties that have been
    updated" since the token the round started from. The stored snapshot is complete and holds
    everything observed up to its `observedAt`: it was built from a full read (a baseline item,
    a Graph re-read) and from every later item of this device in order, since one device's
    messages go through one Service Bus session, in the order the sync queued them, and an older
    observation than the stored one is never applied. So a property missing from the update did
    not change since the previous round, and the stored value is the current one. Where that
    chain is broken the item is not merged but the device re-read: no full snapshot yet, a
    snapshot from an older `$select` (a property devicemon now reads is missing), or a device
    stored as deleted that comes back (restored objects are read whole). A change that left the
    queue's order (a scheduled retry, a dead letter sent back) arrives without its observation
    (changes.retry_of) and is re-read too: the re-read repairs a snapshot that later items were
    merged onto in its absence.
    """
    if change is None:
        return REREAD
    if stored is not None and change.observed_at < stored.observed_at:
        if _newer_intune(change, stored) and not (stored_deleted or stored.removed):
            # The Intune watch read its list before a delta item of the same device was
            # processed: the item's device facts are newer, the watch's Intune records too. Only
            # the records apply; dropping them would leave a grace period unseen until the
            # device next changes, since the watch does not report the same digest twice.
            return Plan(facts=replace(stored, managed=change.managed, managed_at=change.managed_at))
        return STALE
    if change.removed:
        return Plan(facts=replace(change, device=graph_item(change.device), managed=()))
    device = graph_item(change.device)
    if not complete(device, required):
        if stored is None or stored_deleted or stored.removed:
            return REREAD
        if not complete(stored.device, required):
            return REREAD
        device = merge_items(stored.device, device)
    return Plan(facts=with_held_intune(replace(change, device=device), stored, stored_deleted))


def _newer_intune(change: Facts, stored: Facts) -> bool:
    """Whether the change holds Intune records read after the stored ones."""
    if change.managed is None:
        return False
    if stored.managed is None:
        return True
    read = change.managed_at or change.observed_at
    return read > (stored.managed_at or stored.observed_at)


def with_held_intune(facts: Facts, stored: Facts | None, stored_deleted: bool) -> Facts:
    """The facts, with the stored Intune records where those are the better knowledge.

    When nobody looked at Intune (a delta update item, a re-read that skipped Intune), the stored
    records still describe the device while nothing Intune writes on the Entra device moved.
    When the facts come with the Intune list of a baseline, read before its delta pages, a re-read
    in between may already have stored newer records."""
    if stored is None or stored.managed is None or stored_deleted or facts.removed:
        return facts
    if facts.managed is None:
        keep = not intune_written_changed(stored.device, facts.device)
    else:
        keep = (stored.managed_at or stored.observed_at) > (facts.managed_at or facts.observed_at)
    if keep:
        return replace(facts, managed=stored.managed, managed_at=stored.managed_at)
    return facts


def snapshots(facts: Facts) -> tuple[DeviceSnapshot, ManagedDeviceSnapshot | None]:
    """The domain's view of complete facts: the device and its newest Intune record."""
    device = device_from_json(facts.device)
    if device.deleted or not facts.managed:
        return device, None
    record = newest_record(facts.managed)
    return device, managed_device_from_json(record) if record is not None else None


def same_facts(a: Facts | None, b: Facts | None) -> bool:
    """Equal content, whenever observed: no reason to rewrite the stored snapshot."""
    if a is None or b is None:
        return a is b
    return (dict(a.device), _records(a.managed)) == (dict(b.device), _records(b.managed))


def _records(managed: tuple[Mapping[str, Any], ...] | None) -> list[Json] | None:
    return None if managed is None else [dict(m) for m in managed]
