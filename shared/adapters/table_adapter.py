"""The part every single-table adapter shares: the client, making sure the table is there, point
reads.

Who creates the tables depends on how the app reaches Table storage, and is decided here once, for
DeviceStore and every TableAdapter (not by each caller in shared/runtime.py):
- with a connection string (local: Azurite's account key) the app creates its tables on first use
  (create_table_if_not_exists), so a fresh Azurite needs no setup;
- with an identity-based connection (Azure: TablesConnection__tableServiceUri and an Entra token)
  the tables come from infra/modules/storage.bicep, and the identity holds Storage Table Data
  Contributor on each of devicemon's tables only (infra/modules/rbac.bicep). Create Table is a
  request to the account's table service, outside those scopes, so Storage would refuse it (403):
  the app only checks that each table exists, and says which one is missing and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline.policies import AsyncRetryPolicy
from azure.data.tables import TableErrorCode
from azure.data.tables.aio import TableClient, TableServiceClient

# A key no row ever has: reading it costs one request and tells a missing table (TableNotFound)
# from an existing one (ResourceNotFound, the entity), with only the table-scoped read right.
_PROBE_KEY = "devicemon-table-check"
# azure-core's RetryPolicy retries a failed connection (a reset, a pooled keep-alive connection
# the server had closed) only for the methods on its allow-list: HEAD, GET, PUT, DELETE, OPTIONS,
# TRACE (azure/core/pipeline/policies/_retry.py, `_is_method_retryable`). Table inserts and
# batches are POST and merges PATCH, so one reset failed them at once and sent the whole message
# back to its queue. Repeating them is safe: when the first attempt did land, the repeat meets
# exactly what a redelivery of the message would meet (the row exists, or its ETag moved), and
# every devicemon write is built for redelivery (store.py's versioned, ETag-guarded rows).
RETRIED_METHODS = frozenset({"HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST", "PATCH"})


class TableMissing(RuntimeError):
    """A table devicemon needs does not exist, and the app is not the one that creates it."""

    def __init__(self, table_name: str) -> None:
        super().__init__(
            f"Table storage has no table {table_name!r}. With an identity-based connection "
            "(TablesConnection__tableServiceUri) devicemon does not create tables: its identity's "
            "role is scoped to each table, which does not allow creating one. The tables are "
            "created by infra (infra/modules/storage.bicep): run `azd provision`, and check that "
            "TABLE_PREFIX matches the deployment's."
        )
        self.table_name = table_name


def retry_every_method(service: TableServiceClient) -> TableServiceClient:
    """Let the client's retry policy repeat any method after a connection error (see
    RETRIED_METHODS). The table clients `get_table_client` hands out share the policy."""
    # No public knob: the allow-list is read from per-call options (`retry_on_methods`) or from
    # this attribute, and only RetryPolicyBase.__init__ sets it.
    retries = [p for p in getattr(service, "_policies", []) if isinstance(p, AsyncRetryPolicy)]
    if len(retries) != 1 or not hasattr(retries[0], "_method_whitelist"):
        raise RuntimeError("azure-data-tables changed: no single retry policy to configure")
    retries[0]._method_whitelist = RETRIED_METHODS
    return service


def creates_tables(credential: object) -> bool:
    """Whether the app creates its tables itself, for a Table client's credential.

    A token credential (managed identity, DefaultAzureCredential: what make_service builds from
    TablesConnection__tableServiceUri) means Azure RBAC with table-scoped roles: no. A key (or SAS)
    from a connection string (Azurite locally): yes. `get_token` is the same test azure-data-tables
    uses to decide to send a bearer token.
    """
    return not callable(getattr(credential, "get_token", None))


async def ensure_tables(service: TableServiceClient, tables: Iterable[TableClient]) -> None:
    """Create the tables (connection string) or check that each exists (identity): TableMissing."""
    create = creates_tables(service.credential)
    for table in tables:
        if create:
            await service.create_table_if_not_exists(table.table_name)
        else:
            await _check_exists(table)


async def _check_exists(table: TableClient) -> None:
    try:
        await table.get_entity(_PROBE_KEY, _PROBE_KEY)
    except ResourceNotFoundError as exc:
        # The SDK sets error_code on the errors it decodes (a str enum, not in the type stubs).
        if getattr(exc, "error_code", None) == TableErrorCode.TABLE_NOT_FOUND:
            raise TableMissing(table.table_name) from exc


class TableAdapter:
    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self._service = service
        self._name = table_name
        self._table: TableClient = service.get_table_client(table_name)

    async def ensure_table(self) -> None:
        await ensure_tables(self._service, [self._table])

    async def _get(self, partition_key: str, row_key: str) -> Any | None:
        """The entity, or None when it does not exist."""
        try:
            return await self._table.get_entity(partition_key, row_key)
        except ResourceNotFoundError:
            return None

    async def close(self) -> None:
        await self._table.close()
