"""Per-tenant state: devices with a change log, managed devices, settings, counters.

Design (why it stays O(changes) on a 100,000-device tenant):
- every device mutation takes the next tenant-wide sequence number and appends the object
  id to `log`, so `log[seq - log_start]` is the id changed at `seq`;
- a device remembers the seq of its latest change (`DeviceRecord.seq`), so a log entry is
  "live" only if it is still the device's latest change - older entries are skipped;
- deleted devices leave a tombstone (seq, reason) so a delta can report `@removed`;
- `order` is the append-only creation order; a device remembers its position, which
  gives stateless, snapshot-consistent paging (positions < end-at-start-of-round).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from . import entities
from .clock import TenantClock
from .entities import EntityError
from .odata import iso_z, tenant_guid
from .settings import TenantSettings

ChangeKind = Literal["created", "updated", "deleted"]
# (tenant state, object id, kind) - the notification hub listens to this.
ChangeListener = Callable[["TenantState", str, ChangeKind], None]

# Oldest change-log entries are dropped past this; older delta tokens then expire, like
# Graph's bounded sync state.
MAX_LOG = 5_000_000


# Patches remembered per device for delta's "changed properties only"; a delta token older
# than the oldest one remembered gets the whole object, which the docs allow ("at least").
MAX_HISTORY = 64


@dataclass(slots=True)
class DeviceRecord:
    props: dict[str, Any]
    seq: int  # seq of the latest change
    pos: int  # position in TenantState.order
    created_seq: int  # seq at which this object (re)appeared: a delta since before sends it all
    # (seq, names patched) after creation, oldest first; None until the first patch.
    history: list[tuple[int, frozenset[str]]] | None = None
    detail_from: int = 0  # patches at or before this seq were forgotten (history trimmed)


@dataclass
class RequestStats:
    """Request accounting the benchmarks read (reset through the admin API)."""

    http_requests: int = 0
    batch_items: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "httpRequests": self.http_requests,
            "batchItems": self.batch_items,
            # Graph operations: plain requests plus batch items, not the batch envelopes.
            "logicalRequests": sum(self.routes.values()) - self.routes["POST /$batch"],
            "routes": dict(sorted(self.routes.items())),
            "statuses": dict(sorted(self.statuses.items())),
        }


class TenantState:
    def __init__(self, name: str) -> None:
        self.name = name
        self.tenant_id = tenant_guid(name)
        self.clock = TenantClock()
        # Changes with every (re)creation, so tokens from a dropped tenant never validate.
        self.incarnation = secrets.token_hex(4)
        self.settings = TenantSettings()
        self.stats = RequestStats()
        # Entra devices
        self.devices: dict[str, DeviceRecord] = {}
        self.by_device_id: dict[str, str] = {}  # lower-case deviceId -> object id
        self.soft_deleted: dict[str, dict[str, Any]] = {}  # restorable props
        self.tombstones: dict[str, tuple[int, str]] = {}  # id -> (seq, "deleted"|"changed")
        self.order: list[str] = []
        self.seq = 0
        self.log: list[str] = []
        self.log_start = 1  # seq of log[0]
        self.token_epoch = 0  # bumped by the admin "expire" or "reset" of delta tokens
        self.token_epoch_reason = "expired"  # what the latest bump means: expired | reset
        # Intune managed devices
        self.managed: dict[str, dict[str, Any]] = {}
        self.managed_order: list[str] = []
        self.managed_by_aad: dict[str, list[str]] = {}  # lower-case azureADDeviceId -> ids
        self.sync_calls: list[dict[str, Any]] = []
        self.listeners: list[ChangeListener] = []

    # --- change log ----------------------------------------------------------------------

    def _next_seq(self, object_id: str) -> int:
        self.seq += 1
        self.log.append(object_id)
        if len(self.log) > MAX_LOG:
            drop = len(self.log) // 2
            del self.log[:drop]
            self.log_start += drop
        return self.seq

    def log_entry(self, seq: int) -> str | None:
        index = seq - self.log_start
        if 0 <= index < len(self.log):
            return self.log[index]
        return None

    def _notify(self, object_id: str, kind: ChangeKind) -> None:
        for listener in self.listeners:
            listener(self, object_id, kind)

    # --- devices ---------------------------------------------------------------------------

    def get_device(self, object_id: str) -> dict[str, Any] | None:
        record = self.devices.get(object_id.lower())
        return record.props if record else None

    def device_by_device_id(self, device_id: str) -> dict[str, Any] | None:
        object_id = self.by_device_id.get(device_id.lower())
        return self.get_device(object_id) if object_id else None

    def upsert_device(self, props: Mapping[str, Any], *, notify: bool = True) -> dict[str, Any]:
        """Create (full defaults) or, when the id exists, patch."""
        object_id = props.get("id")
        if isinstance(object_id, str) and object_id.lower() in self.devices:
            patch = {k: v for k, v in props.items() if k != "id"}
            return self.patch_device(object_id, patch, notify=notify)
        device = entities.new_device(props, self.clock.now())
        device["id"] = device["id"].lower()
        self._insert(device, notify=notify)
        return device

    def insert_many(self, devices: Iterable[dict[str, Any]], *, notify: bool) -> int:
        """Bulk insert of already-complete device dicts (the fleet generator's fast path)."""
        count = 0
        for device in devices:
            self._insert(device, notify=notify)
            count += 1
        return count

    def _insert(self, device: dict[str, Any], *, notify: bool) -> None:
        object_id = device["id"]
        if object_id in self.devices:
            raise EntityError(f"device {object_id} already exists")
        other = self.by_device_id.get(device["deviceId"].lower())
        if other is not None and other != object_id:
            raise EntityError(f"deviceId {device['deviceId']} already used by device {other}")
        self.tombstones.pop(object_id, None)
        self.soft_deleted.pop(object_id, None)
        seq = self._next_seq(object_id)
        self.devices[object_id] = DeviceRecord(device, seq, len(self.order), seq)
        self.order.append(object_id)
        self.by_device_id[device["deviceId"].lower()] = object_id
        if notify:
            # Entra reports creations to subscribers as "updated" (a subscription for
            # "created" alone stays silent), so the hub maps this accordingly.
            self._notify(object_id, "created")

    def patch_device(
        self, object_id: str, patch: Mapping[str, Any], *, notify: bool = True
    ) -> dict[str, Any]:
        entities.check_device_patch(patch)
        record = self.devices.get(object_id.lower())
        if record is None:
            raise KeyError(object_id)
        candidate = {**record.props, **patch}
        entities.validate_device(candidate)
        new_device_id = candidate["deviceId"].lower()
        old_device_id = record.props["deviceId"].lower()
        if new_device_id != old_device_id:
            if new_device_id in self.by_device_id:
                raise EntityError(f"deviceId {candidate['deviceId']} already in use")
            del self.by_device_id[old_device_id]
            self.by_device_id[new_device_id] = record.props["id"]
        record.props.update(patch)
        record.seq = self._next_seq(record.props["id"])
        history = record.history if record.history is not None else []
        history.append((record.seq, frozenset(patch)))
        if len(history) > MAX_HISTORY:
            record.detail_from = history.pop(0)[0]
        record.history = history
        if notify:
            self._notify(record.props["id"], "updated")
        return record.props

    def delete_device(self, object_id: str, *, soft: bool = False, notify: bool = True) -> None:
        record = self.devices.pop(object_id.lower(), None)
        if record is None:
            raise KeyError(object_id)
        device = record.props
        self.by_device_id.pop(device["deviceId"].lower(), None)
        seq = self._next_seq(device["id"])
        # Graph's @removed reason: "changed" = soft-deleted (restorable), "deleted" = gone.
        self.tombstones[device["id"]] = (seq, "changed" if soft else "deleted")
        if soft:
            device["deletedDateTime"] = iso_z(self.clock.now())
            self.soft_deleted[device["id"]] = device
        if notify:
            self._notify(device["id"], "deleted")

    def restore_device(self, object_id: str, *, notify: bool = True) -> dict[str, Any]:
        device = self.soft_deleted.pop(object_id.lower(), None)
        if device is None:
            raise KeyError(object_id)
        device["deletedDateTime"] = None
        self.tombstones.pop(device["id"], None)
        seq = self._next_seq(device["id"])
        # Restored devices keep their old position: "order" is only appended on creation,
        # so give it a fresh slot to stay visible to baselines.
        self.devices[device["id"]] = DeviceRecord(device, seq, len(self.order), seq)
        self.order.append(device["id"])
        self.by_device_id[device["deviceId"].lower()] = device["id"]
        if notify:
            self._notify(device["id"], "updated")
        return device

    def changed_fields_since(self, record: DeviceRecord, since_seq: int) -> frozenset[str] | None:
        """Props patched after since_seq, or None when the whole object is news: it was
        created (or restored) after since_seq, or its patches back then were forgotten."""
        if record.created_seq > since_seq or since_seq < record.detail_from:
            return None
        changed: set[str] = set()
        for seq, names in reversed(record.history or ()):
            if seq <= since_seq:
                break
            changed |= names
        return frozenset(changed)

    # --- managed devices -------------------------------------------------------------------

    def upsert_managed(self, props: Mapping[str, Any]) -> dict[str, Any]:
        managed_id = props.get("id")
        if isinstance(managed_id, str) and managed_id in self.managed:
            return self.patch_managed(managed_id, {k: v for k, v in props.items() if k != "id"})
        device = entities.new_managed_device(props, self.clock.now())
        self.insert_managed(device)
        return device

    def insert_managed(self, device: dict[str, Any]) -> None:
        if device["id"] in self.managed:
            raise EntityError(f"managedDevice {device['id']} already exists")
        self.managed[device["id"]] = device
        self.managed_order.append(device["id"])
        key = str(device.get("azureADDeviceId") or "").lower()
        self.managed_by_aad.setdefault(key, []).append(device["id"])

    def patch_managed(
        self, managed_id: str, patch: Mapping[str, Any], *, sync_to_entra: bool = True
    ) -> dict[str, Any]:
        entities.check_managed_device_patch(patch)
        device = self.managed.get(managed_id)
        if device is None:
            raise KeyError(managed_id)
        candidate = {**device, **patch}
        entities.validate_managed_device(candidate)
        old_key = str(device.get("azureADDeviceId") or "").lower()
        device.update(patch)
        new_key = str(device.get("azureADDeviceId") or "").lower()
        if new_key != old_key:
            self.managed_by_aad[old_key].remove(managed_id)
            self.managed_by_aad.setdefault(new_key, []).append(managed_id)
        if sync_to_entra and "complianceState" in patch:
            # Intune writes compliance to the Entra device; that write is what Graph
            # change notifications on /devices report.
            entra = self.device_by_device_id(new_key)
            compliant = entities.entra_compliance(device["complianceState"])
            if entra is not None and entra.get("isCompliant") != compliant:
                self.patch_device(entra["id"], {"isCompliant": compliant})
        return device

    def delete_managed(self, managed_id: str) -> None:
        device = self.managed.pop(managed_id, None)
        if device is None:
            raise KeyError(managed_id)
        key = str(device.get("azureADDeviceId") or "").lower()
        self.managed_by_aad.get(key, []).remove(managed_id)

    def managed_for_aad_device(self, azure_ad_device_id: str) -> list[dict[str, Any]]:
        ids = self.managed_by_aad.get(azure_ad_device_id.lower(), [])
        return [self.managed[i] for i in ids]

    # --- admin views -----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {
            "tenant": self.name,
            "tenantId": self.tenant_id,
            "clock": self.clock.to_json(),
            "devices": len(self.devices),
            "softDeletedDevices": len(self.soft_deleted),
            "managedDevices": len(self.managed),
            "changeSequence": self.seq,
            "deltaTokenEpoch": self.token_epoch,
            "deltaTokenEpochReason": self.token_epoch_reason,
            "settings": self.settings.to_json(),
        }
