"""Table storage for the Teams consumer: `{TABLE_PREFIX}TeamsNoise` (columns in docs/tables.md).

Row kinds, all in one table:
- delivery (PartitionKey = alert id, RowKey `delivery`): what was decided for the alert, the
  messages to post, how many were posted, and a permanent rejection's reason. Makes each alert's
  handling idempotent across redeliveries and keeps the dead-letter reason durably.
- arrival (PartitionKey `arrivals-{yyyymmddHHMM}`, RowKey = alert id): one per alert, keyed by
  arrival minute; counts the sliding mass window and feeds the mass-event summaries.
- storm (PartitionKey `storm`, RowKey `fleet`): the mass-event state machine (ETag-guarded).
- flap (PartitionKey = device object id, RowKey `flap`): the device's flap state (ETag-guarded).
- risk (PartitionKey = device object id, RowKey `risk`): whether the device's latest at_risk
  card was folded into a mass-event summary, so that its at_risk_cleared is not posted alone.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.adapters.table_adapter import TableAdapter
from shared.consumers.noise import (
    FlapDecision,
    Flip,
    MassDecision,
    MassSummary,
    NoiseSettings,
    flap_step,
    flips,
    mass_step,
    needs_window,
)
from shared.consumers.noise_rows import flap_columns, flap_state, storm_columns, storm_state
from shared.consumers.teams_cards import MAX_LISTED, MAX_POLICIES
from shared.core.alert_view import AlertView

T = TypeVar("T")
DELIVERY = "delivery"
RISK = "risk"
MAX_PAYLOADS = 2  # a mass-event summary and the alert's own card
_CONFLICT_RETRIES = 100


class DeliveryStatus(StrEnum):
    DECIDED = "decided"  # messages chosen, not all posted yet
    POSTED = "posted"
    SUPPRESSED = "suppressed"  # noise control: nothing to post for this alert
    REJECTED = "rejected"  # Teams refused a post permanently (4xx): dead-lettered


@dataclass(frozen=True, slots=True)
class Delivery:
    alert_id: str
    device_id: str
    device_name: str
    alert_type: str
    decision: str
    payloads: tuple[dict[str, Any], ...]
    status: DeliveryStatus
    decided_at: datetime
    posted: int = 0
    rejected_status: int | None = None
    rejected_reason: str = ""

    def entity(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "PartitionKey": self.alert_id,
            "RowKey": DELIVERY,
            "DeviceId": self.device_id,
            "DeviceName": self.device_name[:256],
            "AlertType": self.alert_type,
            "Decision": self.decision,
            "Status": self.status.value,
            "DecidedAt": self.decided_at,
            "Posted": self.posted,
            "PayloadCount": len(self.payloads),
            "RejectedStatus": self.rejected_status,
            "RejectedReason": self.rejected_reason,
        }
        for index, payload in enumerate(self.payloads[:MAX_PAYLOADS]):
            row[f"Payload{index}"] = json.dumps(payload, separators=(",", ":"))
        return row

    @classmethod
    def from_entity(cls, row: Any) -> Delivery:
        count = int(row.get("PayloadCount") or 0)
        payloads = tuple(json.loads(row[f"Payload{i}"]) for i in range(min(count, MAX_PAYLOADS)))
        return cls(
            alert_id=row["PartitionKey"],
            device_id=str(row.get("DeviceId") or ""),
            device_name=str(row.get("DeviceName") or ""),
            alert_type=str(row.get("AlertType") or ""),
            decision=str(row.get("Decision") or ""),
            payloads=payloads,
            status=DeliveryStatus(row.get("Status") or DeliveryStatus.DECIDED.value),
            decided_at=row.get("DecidedAt"),
            posted=int(row.get("Posted") or 0),
            rejected_status=row.get("RejectedStatus"),
            rejected_reason=str(row.get("RejectedReason") or ""),
        )


def blocking_names(alert: AlertView) -> list[str]:
    """The policies that block the device, for a mass event's summary: a policy change that
    blocks thousands of devices is named by the policy they share. A few per alert, clipped."""
    if not alert.judged_by_policies:
        return []
    return [(p.display_name or p.policy_id)[:120] for p in alert.blocking_policies[:MAX_POLICIES]]


def arrivals_partition(moment: datetime) -> str:
    return "arrivals-" + moment.strftime("%Y%m%d%H%M")


# --- the adapter -------------------------------------------------------------------------------


class TeamsStore(TableAdapter):
    # deliveries

    async def get_delivery(self, alert_id: str) -> Delivery | None:
        row = await self._get(alert_id, DELIVERY)
        return Delivery.from_entity(row) if row is not None else None

    async def save(self, delivery: Delivery) -> None:
        await self._table.upsert_entity(delivery.entity(), mode=UpdateMode.REPLACE)

    async def mark_posted(self, delivery: Delivery, posted: int) -> Delivery:
        done = posted >= len(delivery.payloads)
        status = DeliveryStatus.POSTED if done else DeliveryStatus.DECIDED
        updated = replace(delivery, posted=posted, status=status)
        await self._table.upsert_entity(
            {
                "PartitionKey": delivery.alert_id,
                "RowKey": DELIVERY,
                "Posted": posted,
                "Status": status.value,
            },
            mode=UpdateMode.MERGE,
        )
        return updated

    async def mark_rejected(
        self, delivery: Delivery, posted: int, status: int, reason: str
    ) -> Delivery:
        updated = replace(
            delivery,
            posted=posted,
            status=DeliveryStatus.REJECTED,
            rejected_status=status,
            rejected_reason=reason,
        )
        await self._table.upsert_entity(
            {
                "PartitionKey": delivery.alert_id,
                "RowKey": DELIVERY,
                "Posted": posted,
                "Status": DeliveryStatus.REJECTED.value,
                "RejectedStatus": status,
                "RejectedReason": reason,
            },
            mode=UpdateMode.MERGE,
        )
        return updated

    # mass events

    async def record_arrival(self, alert: AlertView, now: datetime) -> bool:
        """Write the alert's arrival row; False when it was already there (a redelivery)."""
        try:
            await self._table.create_entity(
                {
                    "PartitionKey": arrivals_partition(now),
                    "RowKey": alert.id,
                    "ArrivedAt": now,
                    "AlertType": alert.type,
                    "Reasons": ",".join(alert.subject_reasons),
                    "JoinType": alert.join_type,
                    "DeviceName": alert.name[:256],
                    "DeviceId": alert.object_id,
                    "Policies": json.dumps(blocking_names(alert), ensure_ascii=False),
                }
            )
        except ResourceExistsError:
            return False
        return True

    async def _arrivals(self, first: datetime, last: datetime) -> list[Any]:
        query = "PartitionKey ge @lo and PartitionKey le @hi and ArrivedAt ge @first and ArrivedAt le @last"
        params = {
            "lo": arrivals_partition(first),
            "hi": arrivals_partition(last),
            "first": first,
            "last": last,
        }
        return [row async for row in self._table.query_entities(query, parameters=params)]

    async def mass_step(
        self, alert_id: str, now: datetime, new: bool, settings: NoiseSettings
    ) -> MassDecision:
        async def attempt(row: Any | None) -> tuple[dict[str, Any], MassDecision, bool]:
            state = storm_state(row)
            count, first = 0, None
            if needs_window(state, now, settings):
                start = now - settings.mass_window + timedelta(microseconds=1)
                rows = await self._arrivals(start, now)
                count = len(rows)
                first = min((r["ArrivedAt"] for r in rows), default=None)
            after, decision = mass_step(
                state,
                alert_id,
                now,
                new=new,
                window_count=count,
                window_first=first,
                settings=settings,
            )
            return storm_columns(after), decision, after != state

        return await self._guarded("storm", "fleet", attempt)

    async def summary(
        self, phase: str, first: datetime, last: datetime, next_summary: int | None
    ) -> MassSummary:
        rows = await self._arrivals(first, last)
        reasons: Counter[str] = Counter()
        joins: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        policies: Counter[str] = Counter()
        for row in rows:
            kinds[str(row.get("AlertType") or "").rpartition(".")[2]] += 1
            policies.update(json.loads(row.get("Policies") or "[]"))
            reasons.update(r for r in str(row.get("Reasons") or "").split(",") if r)
            joins[str(row.get("JoinType") or "unknown")] += 1
        names = tuple(
            str(r.get("DeviceName") or r.get("DeviceId"))
            for r in sorted(rows, key=lambda r: r["ArrivedAt"])[:MAX_LISTED]
        )
        return MassSummary(
            phase=phase,
            first=first,
            last=last,
            lost=kinds["lost"],
            restored=len(rows) - kinds["lost"] - kinds["at_risk"] - kinds["at_risk_cleared"],
            at_risk=kinds["at_risk"],
            cleared=kinds["at_risk_cleared"],
            reasons=dict(reasons),
            join_types=dict(joins),
            policies=dict(policies),
            devices=names,
            next_summary_at=next_summary if phase != "end" else None,
        )

    # risk episodes

    async def note_risk(self, alert: AlertView, folded: bool, now: datetime) -> None:
        """Remember whether this at_risk alert's own card was folded into a summary. A
        redelivery writes the same row again."""
        await self._table.upsert_entity(
            {
                "PartitionKey": alert.object_id,
                "RowKey": RISK,
                "AlertId": alert.id,
                "Folded": folded,
                "DecidedAt": now,
            },
            mode=UpdateMode.REPLACE,
        )

    async def risk_folded(self, device_id: str) -> bool:
        """Whether the device's latest at_risk card was folded into a mass-event summary."""
        row = await self._get(device_id, RISK)
        return bool(row is not None and row.get("Folded"))

    # flapping

    async def flap_step(
        self, alert: AlertView, settings: NoiseSettings
    ) -> tuple[FlapDecision, list[Flip]]:
        async def attempt(row: Any | None) -> tuple[dict[str, Any], Any, bool]:
            before = flap_state(row)
            after, decision = flap_step(
                before, alert.id, alert.detected_at, alert.lost, settings, alert.subject_reasons
            )
            return flap_columns(after), (decision, flips(after, alert.detected_at, settings)), True

        result: tuple[FlapDecision, list[Flip]] = await self._guarded(
            alert.object_id, "flap", attempt
        )
        return result

    async def _guarded(
        self,
        pk: str,
        rk: str,
        attempt: Callable[[Any | None], Awaitable[tuple[dict[str, Any], T, bool]]],
    ) -> T:
        """Read-modify-write of one row under its ETag, retried on conflicts."""
        for _ in range(_CONFLICT_RETRIES):
            row = await self._get(pk, rk)
            columns, result, changed = await attempt(row)
            if not changed:
                return result
            entity = {"PartitionKey": pk, "RowKey": rk, **columns}
            try:
                if row is None:
                    await self._table.create_entity(entity)
                else:
                    await self._table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=row.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                return result
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                await asyncio.sleep(random.uniform(0, 0.02))  # let the winner's write land
        raise RuntimeError(f"TeamsNoise row {pk}/{rk}: too many concurrent updates")
