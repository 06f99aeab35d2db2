"""The part every single-table adapter shares: the client, creating the table, point reads."""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient, TableServiceClient


class TableAdapter:
    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self._service = service
        self._name = table_name
        self._table: TableClient = service.get_table_client(table_name)

    async def ensure_table(self) -> None:
        await self._service.create_table_if_not_exists(self._name)

    async def _get(self, partition_key: str, row_key: str) -> Any | None:
        """The entity, or None when it does not exist."""
        try:
            return await self._table.get_entity(partition_key, row_key)
        except ResourceNotFoundError:
            return None

    async def close(self) -> None:
        await self._table.close()
