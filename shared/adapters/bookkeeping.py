"""The DevicemonSync table: the delta sync's cursor and lease, the Graph subscription's record, and
whether the optional compliance details read is allowed.

The first two rows are ETag-guarded. Columns are documented in docs/tables.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.adapters.table_adapter import TableAdapter

SYNC_KEY = ("sync", "devices")
SUBSCRIPTION_KEY = ("subscription", "devices")
COMPLIANCE_READ_KEY = ("permissions", "complianceDetails")


class LeaseLost(Exception):
    """Another run took the sync lease (ours had expired); stop without writing the cursor."""


@dataclass(frozen=True, slots=True)
class SyncState:
    link: str = ""  # next link mid-run, delta link between runs; empty: baseline next time
    phase: str = "baseline"  # what the next/current run is: baseline or incremental
    run_id: str = ""
    run_started_at: datetime | None = None
    last_success_at: datetime | None = None
    last_run_pages: int = 0
    last_run_changes: int = 0
    last_run_seconds: float = 0.0
    last_error: str = ""
    last_error_at: datetime | None = None
    full_resyncs: int = 0
    lease_owner: str = ""
    lease_until: datetime | None = None
    etag: str | None = None

    def leased_by_other(self, owner: str, now: datetime) -> bool:
        return (
            bool(self.lease_owner) and self.lease_owner != owner and (self.lease_until or now) > now
        )

    def entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": SYNC_KEY[0],
            "RowKey": SYNC_KEY[1],
            "Link": self.link,
            "Phase": self.phase,
            "RunId": self.run_id,
            "RunStartedAt": self.run_started_at,
            "LastSuccessAt": self.last_success_at,
            "LastRunPages": self.last_run_pages,
            "LastRunChanges": self.last_run_changes,
            "LastRunSeconds": self.last_run_seconds,
            "LastError": self.last_error[:4000],
            "LastErrorAt": self.last_error_at,
            "FullResyncs": self.full_resyncs,
            "LeaseOwner": self.lease_owner,
            "LeaseUntil": self.lease_until,
        }

    @classmethod
    def from_entity(cls, entity: Any) -> SyncState:
        return cls(
            link=str(entity.get("Link") or ""),
            phase=str(entity.get("Phase") or "baseline"),
            run_id=str(entity.get("RunId") or ""),
            run_started_at=entity.get("RunStartedAt"),
            last_success_at=entity.get("LastSuccessAt"),
            last_run_pages=int(entity.get("LastRunPages") or 0),
            last_run_changes=int(entity.get("LastRunChanges") or 0),
            last_run_seconds=float(entity.get("LastRunSeconds") or 0.0),
            last_error=str(entity.get("LastError") or ""),
            last_error_at=entity.get("LastErrorAt"),
            full_resyncs=int(entity.get("FullResyncs") or 0),
            lease_owner=str(entity.get("LeaseOwner") or ""),
            lease_until=entity.get("LeaseUntil"),
            etag=(getattr(entity, "metadata", {}) or {}).get("etag"),
        )


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    subscription_id: str = ""
    status: str = "absent"  # active, refused, error, absent
    expires_at: datetime | None = None
    created_at: datetime | None = None
    last_renewed_at: datetime | None = None
    last_checked_at: datetime | None = None
    last_error: str = ""
    last_error_at: datetime | None = None
    notification_url: str = ""
    etag: str | None = None

    def entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": SUBSCRIPTION_KEY[0],
            "RowKey": SUBSCRIPTION_KEY[1],
            "SubscriptionId": self.subscription_id,
            "Status": self.status,
            "ExpiresAt": self.expires_at,
            "CreatedAt": self.created_at,
            "LastRenewedAt": self.last_renewed_at,
            "LastCheckedAt": self.last_checked_at,
            "LastError": self.last_error[:4000],
            "LastErrorAt": self.last_error_at,
            "NotificationUrl": self.notification_url,
        }

    @classmethod
    def from_entity(cls, entity: Any) -> SubscriptionRecord:
        return cls(
            subscription_id=str(entity.get("SubscriptionId") or ""),
            status=str(entity.get("Status") or "absent"),
            expires_at=entity.get("ExpiresAt"),
            created_at=entity.get("CreatedAt"),
            last_renewed_at=entity.get("LastRenewedAt"),
            last_checked_at=entity.get("LastCheckedAt"),
            last_error=str(entity.get("LastError") or ""),
            last_error_at=entity.get("LastErrorAt"),
            notification_url=str(entity.get("NotificationUrl") or ""),
            etag=(getattr(entity, "metadata", {}) or {}).get("etag"),
        )


@dataclass(frozen=True, slots=True)
class PermissionMark:
    """What the last Graph read that needs an optional permission found: `granted` or `missing`
    (Graph answered 403). Health turns `missing` into a problem that names the permission."""

    status: str = ""  # empty: never tried
    at: datetime | None = None
    detail: str = ""


class Bookkeeping(TableAdapter):
    async def _put(self, entity: dict[str, Any], etag: str | None) -> str:
        """Create, or replace if unchanged since read; LeaseLost when someone else wrote it."""
        try:
            if etag is None:
                result = await self._table.create_entity(entity)
            else:
                result = await self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
            raise LeaseLost(str(exc)) from exc
        return str(result.get("etag"))

    async def sync_state(self) -> SyncState:
        entity = await self._get(*SYNC_KEY)
        return SyncState.from_entity(entity) if entity is not None else SyncState()

    async def save_sync(self, state: SyncState) -> SyncState:
        return replace(state, etag=await self._put(state.entity(), state.etag))

    async def acquire_sync(
        self, owner: str, run_id: str, now: datetime, lease: timedelta
    ) -> SyncState | None:
        """Take the sync lease; None when another run holds a live one."""
        state = await self.sync_state()
        if state.leased_by_other(owner, now):
            return None
        try:
            return await self.save_sync(
                replace(
                    state,
                    lease_owner=owner,
                    lease_until=now + lease,
                    run_id=run_id,
                    run_started_at=now,
                )
            )
        except LeaseLost:
            return None  # someone took it between our read and write

    async def subscription(self) -> SubscriptionRecord:
        entity = await self._get(*SUBSCRIPTION_KEY)
        return (
            SubscriptionRecord.from_entity(entity) if entity is not None else SubscriptionRecord()
        )

    async def save_subscription(self, record: SubscriptionRecord) -> SubscriptionRecord:
        try:
            etag = await self._put(record.entity(), record.etag)
        except LeaseLost:
            # Upkeep runs are rare and idempotent: the latest writer wins.
            await self._table.upsert_entity(record.entity(), mode=UpdateMode.REPLACE)
            fresh = await self._get(*SUBSCRIPTION_KEY)
            return SubscriptionRecord.from_entity(fresh)
        return replace(record, etag=etag)

    async def compliance_read_permission(self) -> PermissionMark:
        entity = await self._get(*COMPLIANCE_READ_KEY)
        if entity is None:
            return PermissionMark()
        return PermissionMark(
            str(entity.get("Status") or ""), entity.get("At"), str(entity.get("Detail") or "")
        )

    async def note_compliance_read(self, granted: bool, at: datetime, detail: str = "") -> None:
        """Record whether the last compliance details read was allowed. Last writer wins: each
        lost compliance alert reads once, so this is one small upsert per such alert."""
        await self._table.upsert_entity(
            {
                "PartitionKey": COMPLIANCE_READ_KEY[0],
                "RowKey": COMPLIANCE_READ_KEY[1],
                "Status": "granted" if granted else "missing",
                "At": at,
                "Detail": detail[:4000],
            },
            mode=UpdateMode.REPLACE,
        )
