"""The Intune watch's memory: the last-seen digest of each device's Intune facts, packed in buckets.

Table `IntuneWatch` (TABLE_PREFIX first). A run compares every managed device with what the last
run saw, so it reads the whole memory each time; one row per device would be 100 query pages and
up to 100,000 writes for a 100,000-device tenant. Packed instead:

- PartitionKey `digests`, RowKey = the first two hex digits of the Entra `deviceId` (a GUID, so
  the 256 rows fill evenly: ~390 devices each at 100,000). One query reads them all, in one page
  (the service returns up to 1,000 entities a page).
- A row holds its devices as fixed 44-byte entries sorted by device id: deviceId (16 bytes),
  digest of the watched facts (8), hash of the managed device id (4: a re-enrolment forgets the
  cached object id), Entra object id (16, zeros until resolved). Binary properties `E00`, `E01`...
  of at most 59,972 bytes (1,363 entries; Table storage allows 64 KiB a property and 1 MiB an
  entity: ~23,000 devices a row, 5.8 million a tenant). ~17 KB a row at 100,000 devices.
- A run rewrites only the rows in which something changed, in entity group transactions (one
  partition: at most 100 entities and 4 MiB each), each row under the ETag it was read with: two
  runs that overlap cannot both write a row, and the loser's changes are found again next run.

PartitionKey `run`, RowKey `last`: when the last run finished and its figures.

Every Table request is counted in `requests` (by kind): the figure docs/intune-watch.md gives.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode

from shared import logs
from shared.adapters.table_adapter import TableAdapter

log = logging.getLogger("devicemon.intune_watch")
DIGESTS = "digests"
RUN_KEY = ("run", "last")
DIGEST_BYTES = 8
IDENTITY_BYTES = 4
ENTRY = 16 + DIGEST_BYTES + IDENTITY_BYTES + 16
CHUNK = (60_000 // ENTRY) * ENTRY  # under Table storage's 64 KiB a binary property
NO_OBJECT = bytes(16)
# Entity group transaction limits: 100 operations, 4 MiB of payload (rows are ~17 KB at 100,000
# devices; the byte budget matters only for tenants of millions).
TRANSACTION_ROWS = 100
TRANSACTION_BYTES = 3_500_000


def table_name(table_prefix: str) -> str:
    return f"{table_prefix}IntuneWatch"


def device_key(device_id: str) -> bytes | None:
    """The 16 bytes of an Entra device id (a GUID), None for anything else."""
    text = device_id.strip().replace("-", "") if isinstance(device_id, str) else ""
    if len(text) != 32 or len(device_id.strip()) != 36:
        return None
    try:
        return bytes.fromhex(text)  # a tenth of uuid.UUID's cost, 100,000 times a run
    except ValueError:
        return None


@dataclass(slots=True)
class Held:
    """What the last run saw of one device."""

    digest: bytes
    identity: bytes
    object_id: str | None  # the Entra object id, once resolved


@dataclass(slots=True)
class Bucket:
    etag: str | None  # None: the row does not exist yet
    entries: dict[bytes, bytes] = field(default_factory=dict)  # device key -> rest of the entry
    dirty: bool = False


class Digests:
    """Every bucket, as read; changed in memory, then saved (the dirty buckets only)."""

    def __init__(self, buckets: dict[str, Bucket]) -> None:
        self.buckets = buckets

    def __len__(self) -> int:
        return sum(len(b.entries) for b in self.buckets.values())

    def get(self, key: bytes) -> Held | None:
        bucket = self.buckets.get(f"{key[0]:02x}")
        raw = bucket.entries.get(key) if bucket else None
        if raw is None:
            return None
        digest, identity, obj = (
            raw[:DIGEST_BYTES],
            raw[DIGEST_BYTES : DIGEST_BYTES + IDENTITY_BYTES],
            raw[DIGEST_BYTES + IDENTITY_BYTES :],
        )
        return Held(digest, identity, None if obj == NO_OBJECT else str(uuid.UUID(bytes=obj)))

    def put(self, key: bytes, held: Held) -> None:
        obj = uuid.UUID(held.object_id).bytes if held.object_id else NO_OBJECT
        raw = held.digest + held.identity + obj
        bucket = self.buckets.setdefault(f"{key[0]:02x}", Bucket(etag=None))
        if bucket.entries.get(key) != raw:
            bucket.entries[key] = raw
            bucket.dirty = True

    def drop(self, key: bytes) -> None:
        bucket = self.buckets.get(f"{key[0]:02x}")
        if bucket is not None and bucket.entries.pop(key, None) is not None:
            bucket.dirty = True

    def device_keys(self) -> Iterator[bytes]:
        for bucket in self.buckets.values():
            yield from bucket.entries


def _entity(row_key: str, bucket: Bucket) -> dict[str, Any]:
    packed = b"".join(k + v for k, v in sorted(bucket.entries.items()))
    entity: dict[str, Any] = {
        "PartitionKey": DIGESTS,
        "RowKey": row_key,
        "Count": len(bucket.entries),
    }
    for i in range(0, len(packed), CHUNK):
        entity[f"E{i // CHUNK:02d}"] = packed[i : i + CHUNK]
    return entity


def _entries(entity: Any) -> dict[bytes, bytes]:
    chunks = sorted(k for k in entity if len(k) == 3 and k[0] == "E" and k[1:].isdigit())
    packed = b"".join(bytes(entity[k]) for k in chunks)
    if len(packed) % ENTRY:
        raise ValueError(f"IntuneWatch row {entity.get('RowKey')!r} is not whole entries")
    return {packed[i : i + 16]: packed[i + 16 : i + ENTRY] for i in range(0, len(packed), ENTRY)}


def _batches(rows: list[tuple[str, Bucket]]) -> Iterable[list[tuple[str, Bucket]]]:
    batch: list[tuple[str, Bucket]] = []
    size = 0
    for row in rows:
        row_bytes = len(row[1].entries) * ENTRY + 1024
        if batch and (len(batch) == TRANSACTION_ROWS or size + row_bytes > TRANSACTION_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_bytes
    if batch:
        yield batch


class DigestBook(TableAdapter):
    """The IntuneWatch table (Settings.intune_watch_table)."""

    def __init__(self, service: Any, table_name: str) -> None:
        super().__init__(service, table_name)
        self.requests: Counter[str] = Counter()

    async def load(self) -> Digests:
        buckets: dict[str, Bucket] = {}
        pages = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": DIGESTS}
        ).by_page()
        async for page in pages:
            self.requests["query"] += 1
            async for entity in page:
                etag = entity.metadata.get("etag")
                buckets[entity["RowKey"]] = Bucket(etag=etag, entries=_entries(entity))
        return Digests(buckets)

    async def save(self, digests: Digests) -> tuple[int, int]:
        """Write the changed buckets: (rows written, rows refused because another run wrote them
        since they were read; their changes are found again by the next run)."""
        dirty = sorted((k, b) for k, b in digests.buckets.items() if b.dirty)
        written = refused = 0
        for batch in _batches(dirty):
            operations: list[Any] = []
            for row_key, bucket in batch:
                entity = _entity(row_key, bucket)
                if bucket.etag is None:
                    operations.append(("create", entity))
                else:
                    condition = {
                        "mode": UpdateMode.REPLACE,
                        "etag": bucket.etag,
                        "match_condition": MatchConditions.IfNotModified,
                    }
                    operations.append(("update", entity, condition))
            self.requests["transaction"] += 1
            try:
                await self._table.submit_transaction(operations)
            except TableTransactionError as exc:
                refused += len(batch)
                logs.event(
                    log,
                    "intune_watch_rows_refused",
                    level=logging.WARNING,
                    rows=len(batch),
                    error=str(exc)[:300],
                )
                continue
            written += len(batch)
            for _, bucket in batch:
                bucket.dirty = False
        return written, refused

    async def record_run(self, at: datetime, figures: dict[str, int | float | str]) -> None:
        self.requests["upsert"] += 1
        entity = {"PartitionKey": RUN_KEY[0], "RowKey": RUN_KEY[1], "FinishedAt": at, **figures}
        await self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def last_run(self) -> dict[str, Any] | None:
        self.requests["get"] += 1
        entity = await self._get(*RUN_KEY)
        return dict(entity) if entity is not None else None
