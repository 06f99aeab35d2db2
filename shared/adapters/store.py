"""Table storage adapter: DeviceState and DeviceHistory through azure-data-tables (aio).

Writes are idempotent (history rows are keyed by state version) and the state row is guarded by
its ETag, so two writers can never both think they committed the same version.

A history row, once committed, is immutable. "Committed" means the DeviceState row of the same
device (PartitionKey) has reached the row's version: the pipeline writes history row N+1, then
moves the state row from N to N+1 under its ETag. `write_history` therefore:
1. creates the row (the normal case: one request);
2. if the row exists with the same content, does nothing (an idempotent retry: the SDK retrying a
   create whose answer was lost, or a redelivery that observed the same thing);
3. if it exists with other content, the DeviceState row, read now, is below the row's version
   and no row for the next version exists, the row is a leftover of an attempt that crashed
   before its state commit: nobody can have read it as committed, so it is replaced, under the
   leftover's own ETag (a writer that got there first makes this one start over: StateConflict);
4. otherwise the row is committed and the write fails with HistoryConflict, never overwriting.
The committed version is read by this adapter from the row's own partition rather than taken from
the caller, so a caller that read another device's state (issue 17: an id in another case, i.e.
another key) cannot pass off a committed row as a leftover. The next version's row is proof too:
the pipeline writes version N+2 only after reading a state committed at N+1, so even a lost or
deleted DeviceState row cannot make a committed history row look like a leftover.

What this cannot exclude (and the former upsert could not either): two attempts on one device at
once, which the device's Service Bus session excludes unless a session lock is lost mid-attempt.
Then a replacement (3) can land between the other attempt's history write and its state commit;
one of the two state commits fails on the ETag, and the history row holds the other attempt's
observation of the same version, milliseconds apart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.adapters.table_adapter import ensure_tables, retry_every_method
from shared.core.records import STATE_ROW_KEY, HistoryRow, StateRow, history_row_key
from shared.settings import Settings, SettingsError


class StateConflict(Exception):
    """Someone else wrote the state row since we read it: re-read and start over."""


class HistoryConflict(Exception):
    """A committed history row exists with other content: history is immutable, so the write
    fails and nothing is overwritten."""

    def __init__(self, object_id: str, version: int, committed_version: int) -> None:
        super().__init__(
            f"device {object_id}: the history row for version {version} is committed (state at "
            f"version {committed_version}) with other content; it is never overwritten"
        )
        self.object_id = object_id
        self.version = version
        self.committed_version = committed_version


def make_service(settings: Settings) -> TableServiceClient:
    if settings.tables_connection_string:
        return retry_every_method(
            TableServiceClient.from_connection_string(settings.tables_connection_string)
        )
    if settings.tables_endpoint:
        from shared.adapters.identity import credential

        return retry_every_method(
            TableServiceClient(settings.tables_endpoint, credential=credential(settings, aio=True))
        )
    raise SettingsError(
        "Table storage is not configured: set TablesConnection (connection string, local) or "
        "TablesConnection__tableServiceUri (managed identity, Azure)"
    )


class DeviceStore:
    def __init__(self, service: TableServiceClient, settings: Settings) -> None:
        self._state: TableClient = service.get_table_client(settings.state_table)
        self._history: TableClient = service.get_table_client(settings.history_table)
        self._service = service

    async def ensure_tables(self) -> None:
        # Created locally, only checked in Azure: see shared/adapters/table_adapter.py.
        await ensure_tables(self._service, [self._state, self._history])

    async def get_state(self, object_id: str) -> StateRow | None:
        try:
            entity = await self._state.get_entity(object_id, STATE_ROW_KEY)
        except ResourceNotFoundError:
            return None
        return StateRow.from_entity(entity)

    async def get_history_row(self, object_id: str, version: int) -> HistoryRow | None:
        try:
            entity = await self._history.get_entity(object_id, history_row_key(version))
        except ResourceNotFoundError:
            return None
        return HistoryRow.from_entity(entity)

    async def write_history(self, row: HistoryRow) -> None:
        """Write the row for its version once; see the module docstring for when an existing row
        may be replaced (only a provably uncommitted one) and when HistoryConflict is raised."""
        entity = row.entity()
        object_id, version = row.record.object_id, row.record.version
        try:
            await self._history.create_entity(entity)
            return
        except ResourceExistsError:
            pass
        try:
            existing = await self._history.get_entity(object_id, entity["RowKey"])
        except ResourceNotFoundError as exc:
            # Nothing deletes history rows; if one vanished, guess nothing: start over.
            raise StateConflict(f"device {object_id}: history row {version} vanished") from exc
        if HistoryRow.from_entity(existing) == HistoryRow.from_entity(entity):
            return
        committed = await self._committed_version(object_id)
        if version <= committed or await self._has_history_row(object_id, version + 1):
            raise HistoryConflict(object_id, version, committed)
        try:
            await self._history.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=existing.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise StateConflict(
                f"device {object_id}: history row {version} changed while being replaced"
            ) from exc

    async def _has_history_row(self, object_id: str, version: int) -> bool:
        try:
            await self._history.get_entity(object_id, history_row_key(version), select=["Version"])
        except ResourceNotFoundError:
            return False
        return True

    async def _committed_version(self, object_id: str) -> int:
        """The version DeviceState has committed for the device, 0 before its first commit."""
        try:
            entity = await self._state.get_entity(object_id, STATE_ROW_KEY, select=["Version"])
        except ResourceNotFoundError:
            return 0
        return int(entity.get("Version") or 0)

    async def commit_state(self, row: StateRow) -> StateRow:
        """Create the row (first sighting) or replace it if nobody wrote it since we read it."""
        try:
            if row.etag is None:
                result = await self._state.create_entity(row.entity())
            else:
                result = await self._state.update_entity(
                    row.entity(),
                    mode=UpdateMode.REPLACE,
                    etag=row.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
            raise StateConflict(str(exc)) from exc
        return replace(row, etag=result.get("etag"))

    async def history(self, object_id: str, limit: int | None = None) -> AsyncIterator[HistoryRow]:
        """A device's timeline, newest first."""
        count = 0
        async for entity in self._history.query_entities(
            "PartitionKey eq @pk", parameters={"pk": object_id}
        ):
            yield HistoryRow.from_entity(entity)
            count += 1
            if limit is not None and count >= limit:
                return

    async def eligibility(self) -> AsyncIterator[bool]:
        """Each device's current eligibility, reading one column (for counts)."""
        async for entity in self._state.list_entities(select=["Eligible"]):
            yield bool(entity.get("Eligible"))

    async def live_device_ids(self) -> AsyncIterator[str]:
        """The object id of every device not stored as deleted, reading two columns (for the
        fleet re-evaluation after a policy change)."""
        async for entity in self._state.list_entities(select=["PartitionKey", "Deleted"]):
            if not entity.get("Deleted"):
                yield str(entity["PartitionKey"])

    async def states(self) -> AsyncIterator[StateRow]:
        async for entity in self._state.list_entities():
            yield StateRow.from_entity(entity)

    async def close(self) -> None:
        await self._state.close()
        await self._history.close()

    # --- read side: the CLI, the read API and the report (docs/cli.md, docs/openapi.yaml) ---

    async def find_devices(self, name_or_device_id: str) -> list[StateRow]:
        """Devices whose DisplayName (case-insensitive) or Graph deviceId is the given text.

        Table storage cannot compare case-insensitively, so this reads three columns of every
        row, then the full rows of the matches."""
        wanted = name_or_device_id.strip().casefold()
        ids: list[str] = []
        async for entity in self._state.list_entities(
            select=["PartitionKey", "DisplayName", "DeviceId"]
        ):
            names = (str(entity.get("DisplayName") or ""), str(entity.get("DeviceId") or ""))
            if wanted and any(n.casefold() == wanted for n in names):
                ids.append(entity["PartitionKey"])
        found = [await self.get_state(object_id) for object_id in ids]
        return [row for row in found if row is not None]

    async def page_states(
        self,
        query: str | None,
        parameters: dict[str, Any],
        *,
        top: int,
        resume: dict[str, Any] | None = None,
        accept: Callable[[StateRow], bool] | None = None,
        max_scan: int = 5000,
    ) -> tuple[list[StateRow], dict[str, Any] | None]:
        """Up to `top` DeviceState rows that match `query` (OData, run by Table storage) and
        `accept` (checked here), in PartitionKey order, and where to resume: None at the end.

        The resume point is {"next": <Table's own continuation>} when a page of Table storage
        ended the answer, or {"after": <last object id examined>} when the answer ended inside
        one (device ids are unique PartitionKeys, so the next query starts right after it; Table
        continuations are opaque and cannot be made up). At most `max_scan` rows are examined per
        call, so a selective `accept` answers with fewer rows, even none, and a resume point.
        """
        clauses = [query] if query else []
        parameters = dict(parameters)
        continuation = None
        if resume and resume.get("after"):
            clauses.append("PartitionKey gt @resumeAfter")
            parameters["resumeAfter"] = str(resume["after"])
        elif resume and isinstance(resume.get("next"), dict):
            continuation = resume["next"]
        page_size = top if accept is None else min(1000, max(4 * top, 200))
        if clauses:
            pager = self._state.query_entities(
                " and ".join(clauses),
                parameters=parameters,
                results_per_page=page_size,
                select=STATE_COLUMNS,
            )
        else:
            pager = self._state.list_entities(results_per_page=page_size, select=STATE_COLUMNS)
        pages = pager.by_page(continuation_token=continuation)
        found: list[StateRow] = []
        scanned = 0
        async for page in pages:
            entities = [entity async for entity in page]
            for position, entity in enumerate(entities):
                scanned += 1
                row = StateRow.from_entity(entity)
                if accept is None or accept(row):
                    found.append(row)
                last_of_page = position == len(entities) - 1
                if len(found) >= top or scanned >= max_scan:
                    if not last_of_page:
                        return found, {"after": entity["PartitionKey"]}
                    token = pages.continuation_token  # type: ignore[attr-defined]
                    return found, ({"next": dict(token)} if token else None)
        return found, None

    async def history_since(self, since: datetime) -> AsyncIterator[HistoryRow]:
        """Every device's history rows evaluated at or after `since` (a scan of DeviceHistory)."""
        async for entity in self._history.query_entities(
            "EvaluatedAt ge @since", parameters={"since": since}
        ):
            yield HistoryRow.from_entity(entity)


# The columns the read side maps (PendingAlert, an alert body, and Snapshot, the device's last
# observed facts, stay in the table).
STATE_COLUMNS = [
    "PartitionKey",
    "RowKey",
    "Version",
    "EvaluatedAt",
    "Eligible",
    "Reasons",
    "Warnings",
    "Policy",
    "JoinType",
    "Compliance",
    "Management",
    "DisplayName",
    "DeviceId",
    "TrustType",
    "OperatingSystem",
    "OperatingSystemVersion",
    "AccountEnabled",
    "Deleted",
    "GracePeriodExpires",
    "UserPrincipalName",
    "ManagedDeviceId",
    "Source",
    "CorrelationId",
    "Fingerprint",
    "LastTransition",
    "LastTransitionAt",
    # issues 12 and 14: the risk episode, deadlines and who judged (shared/core/records.py)
    "RiskReasons",
    "Deadline",
    "NextCheckAt",
    "ComplianceErrorSince",
    "BlockingPolicies",
    "ReportOnlyFailures",
    "JudgedBy",
]
