"""Read the tenant's Conditional Access policies from Graph, bounded, and keep what was read in
Table storage (`{TABLE_PREFIX}CaPolicies`, docs/tables.md).

The read is `GET /identity/conditionalAccess/policies` (microsoft-graph-docs-contrib
conditionalaccessroot-list-policies.md, permission Policy.Read.All) through the same GraphJson
(SDK pipeline, shared retries) as every other Graph read, with `Prefer:
include-unknown-enum-members` so that Graph sends evolvable enum members such as
`riskRemediation` by name instead of `unknownFutureValue` (conditionalaccessgrantcontrols.md;
best-practices-concept.md, "Handling future members in evolvable enumerations"). Next links are
followed as given (concepts/paging.md), at most MAX_PAGES.

Never raises for Graph's sake: a missing permission (403), throttling, an outage, a slow or
malformed answer come back as a PolicyRead whose status says so. A failed read leaves the policies
of the last good read in the table; only the read-status row records the failure.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx
from azure.data.tables import UpdateMode
from kiota_abstractions.api_error import APIError

from shared.adapters.graph import GraphJson, error_text
from shared.adapters.table_adapter import TableAdapter
from shared.retry import RetriesExhausted
from shared.settings import Settings

PERMISSION = "Policy.Read.All"
PATH = "/identity/conditionalAccess/policies"
PREFER_UNKNOWN_MEMBERS = {"Prefer": "include-unknown-enum-members"}
DEFAULT_TIMEOUT = 60.0  # seconds for the whole read, retries included
MAX_PAGES = 20  # tenants have tens of policies, at most a few hundred: a page or two
# A string property holds at most 64 KiB (32K UTF-16 characters); a policy listing thousands of
# users or groups is longer, so its JSON is cut across columns Json0, Json1, ...
CHUNK = 30_000
MAX_CHUNKS = 30  # well under an entity's 1 MiB
POLICY_PARTITION = "policy"
STATUS_KEY = ("read", "latest")


class ReadStatus(StrEnum):
    OK = "ok"
    PERMISSION_MISSING = "permissionMissing"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PolicyRead:
    """One read of the policies: all of them (OK), or why there are none."""

    read_at: datetime
    status: ReadStatus
    policies: tuple[dict[str, Any], ...] = ()
    detail: str = ""


def table_name(settings: Settings) -> str:
    return f"{settings.table_prefix}CaPolicies"


# --- reading from Graph --------------------------------------------------------------------


class _Malformed(ValueError):
    pass


async def _pages(graph: GraphJson) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    url: str | None = PATH
    pages = 0
    while url:
        if pages == MAX_PAGES:
            raise _Malformed(f"more than {MAX_PAGES} pages of policies; read stopped")
        page = await graph.get(url, headers=PREFER_UNKNOWN_MEMBERS)
        pages += 1
        if not isinstance(page, dict) or not isinstance(page.get("value"), list):
            raise _Malformed("the answer has no 'value' list")
        items.extend(item for item in page["value"] if isinstance(item, dict))
        link = page.get("@odata.nextLink")
        url = link if isinstance(link, str) and link else None
    return items


def _refused(status: int, text: str, now: datetime) -> PolicyRead:
    if status == 403:
        return PolicyRead(
            now,
            ReadStatus.PERMISSION_MISSING,
            detail=f"Graph refused the read ({text}); grant {PERMISSION} to devicemon's identity.",
        )
    return PolicyRead(now, ReadStatus.FAILED, detail=text)


async def read_policies(
    graph: GraphJson, now: datetime, *, within: float = DEFAULT_TIMEOUT
) -> PolicyRead:
    """Every Conditional Access policy of the tenant, or a read that says why not."""
    try:
        async with asyncio.timeout(within):
            return PolicyRead(now, ReadStatus.OK, tuple(await _pages(graph)))
    except TimeoutError:
        return PolicyRead(
            now, ReadStatus.FAILED, detail=f"Graph did not answer within {within:g} s."
        )
    except RetriesExhausted as exc:
        cause = exc.__cause__
        if isinstance(cause, APIError):
            return _refused(cause.response_status_code or 0, error_text(cause), now)
        return PolicyRead(now, ReadStatus.FAILED, detail=f"Graph could not be reached: {exc}")
    except APIError as exc:
        return _refused(exc.response_status_code or 0, error_text(exc), now)
    except (httpx.HTTPError, ValueError) as exc:
        # ValueError: a body that is not JSON, or not a policy list (_Malformed).
        return PolicyRead(now, ReadStatus.FAILED, detail=error_text(exc))


# --- keeping it in Table storage -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredPolicies:
    """What the table holds: the latest read's outcome and the policies of the last good one."""

    status: ReadStatus
    read_at: datetime
    detail: str
    last_success_at: datetime | None
    policies: tuple[dict[str, Any], ...]
    # What the fleet was last re-evaluated under (shared/sources/policy_change.py): the digest
    # of the compiled policy set, or the fallback's mark; "" before any re-evaluation.
    fleet_digest: str = ""


def _chunks(policy: Mapping[str, Any]) -> dict[str, str]:
    text = json.dumps(policy, separators=(",", ":"), ensure_ascii=False)
    parts = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
    if len(parts) > MAX_CHUNKS:
        raise ValueError(f"policy {policy.get('id')!r} is too large to store ({len(text)} chars)")
    return {f"Json{i}": part for i, part in enumerate(parts)}


def _policy_of(entity: Mapping[str, Any]) -> dict[str, Any]:
    text = "".join(str(entity[f"Json{i}"]) for i in range(MAX_CHUNKS) if f"Json{i}" in entity)
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"row {entity.get('RowKey')!r} does not hold a policy object")
    return loaded


class CaPolicyStore(TableAdapter):
    """One row per policy (PartitionKey `policy`, RowKey = policy id in lower case) and one
    read-status row (PartitionKey `read`, RowKey `latest`)."""

    async def save(self, read: PolicyRead) -> None:
        previous = await self._get(*STATUS_KEY)
        last_success = previous.get("LastSuccessAt") if previous else None
        if read.status is ReadStatus.OK:
            await self._replace_policies(read)
            last_success = read.read_at
        await self._table.upsert_entity(
            {
                "PartitionKey": STATUS_KEY[0],
                "RowKey": STATUS_KEY[1],
                "ReadAt": read.read_at,
                "Status": read.status.value,
                "Detail": read.detail[:4000],
                "PolicyCount": len(read.policies),
                "LastSuccessAt": last_success,
                # Kept across reads: only a finished fleet re-evaluation moves it.
                "FleetDigest": str(previous.get("FleetDigest") or "") if previous else "",
            },
            mode=UpdateMode.REPLACE,
        )

    async def mark_fleet(self, digest: str) -> None:
        """Record that every known device was queued for re-evaluation under `digest`."""
        await self._table.upsert_entity(
            {"PartitionKey": STATUS_KEY[0], "RowKey": STATUS_KEY[1], "FleetDigest": digest},
            mode=UpdateMode.MERGE,
        )

    async def _replace_policies(self, read: PolicyRead) -> None:
        keep: set[str] = set()
        for order, policy in enumerate(read.policies):
            key = str(policy.get("id") or "").strip().lower()
            if not key:
                continue
            keep.add(key)
            await self._table.upsert_entity(
                {
                    "PartitionKey": POLICY_PARTITION,
                    "RowKey": key,
                    "Order": order,
                    "DisplayName": str(policy.get("displayName") or ""),
                    "State": str(policy.get("state") or ""),
                    "ReadAt": read.read_at,
                    **_chunks(policy),
                },
                mode=UpdateMode.REPLACE,
            )
        async for entity in self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": POLICY_PARTITION}, select=["RowKey"]
        ):
            if entity["RowKey"] not in keep:
                await self._table.delete_entity(POLICY_PARTITION, entity["RowKey"])

    async def load(self) -> StoredPolicies | None:
        """The stored read, or None when the policies were never read."""
        status = await self._get(*STATUS_KEY)
        if status is None:
            return None
        rows = [
            entity
            async for entity in self._table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": POLICY_PARTITION}
            )
        ]
        rows.sort(key=lambda e: (int(e.get("Order", 0)), e["RowKey"]))
        return StoredPolicies(
            status=ReadStatus(status["Status"]),
            read_at=status["ReadAt"],
            detail=str(status.get("Detail") or ""),
            last_success_at=status.get("LastSuccessAt"),
            policies=tuple(_policy_of(row) for row in rows),
            fleet_digest=str(status.get("FleetDigest") or ""),
        )


async def refresh(graph: GraphJson, store: CaPolicyStore, now: datetime) -> PolicyRead:
    """Read the policies and keep the outcome: the timer's and an operator's refresh."""
    read = await read_policies(graph, now)
    await store.save(read)
    return read
