"""A connection reset between devicemon and Table storage: a real TCP reset from a proxy in front
of Azurite, through the real azure-data-tables SDK. Inserts (POST), merges (PATCH) and batches
(POST) are repeated like reads, whether the reset came before Azurite saw the request or after it
applied it (the answer lost)."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

import pytest
from azure.core.exceptions import AzureError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from local.stack import Stack
from shared.adapters.table_adapter import retry_every_method
from shared.runtime import Runtime
from shared.settings import Settings
from tests.shared.adapters.test_store import first_seen

Moment = Literal["before", "after"]


class ResettingProxy:
    """TCP to Azurite, except that the next `armed` requests are reset (RST, SO_LINGER 0) on
    whichever connection carries them, pooled keep-alive ones included: "before" as soon as the
    request starts arriving, never forwarded; "after" once Azurite answers it, so the write
    happened and only the answer is lost."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.armed = 0
        self.moment: Moment = "before"
        self.resets = 0
        self.port = 0

    async def __aenter__(self) -> ResettingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def arm(self, moment: Moment, count: int = 1) -> None:
        self.moment, self.armed = moment, count

    def _reset(self, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        self.resets += 1

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        lose_answer = asyncio.Event()

        async def downstream() -> None:
            while chunk := await up_reader.read(65536):
                if lose_answer.is_set():
                    self._reset(writer)
                    return
                writer.write(chunk)
                await writer.drain()
            writer.close()

        answers = asyncio.create_task(downstream())
        try:
            while chunk := await reader.read(65536):
                if self.armed:
                    self.armed -= 1
                    if self.moment == "before":
                        self._reset(writer)
                        return
                    lose_answer.set()
                up_writer.write(chunk)
                await up_writer.drain()
        except ConnectionError:
            pass  # either side hung up (or the proxy reset it): this connection is done
        finally:
            answers.cancel()
            await asyncio.gather(answers, return_exceptions=True)
            up_writer.close()
            self._pipes.discard(task)


def through(connection: str, port: int) -> str:
    """The same account, reached through the proxy's port."""
    parts = dict(p.split("=", 1) for p in connection.split(";") if p)
    parts["TableEndpoint"] = f"http://127.0.0.1:{port}/devstoreaccount1"
    return ";".join(f"{k}={v}" for k, v in parts.items())


def azurite_port(connection: str) -> int:
    endpoint = dict(p.split("=", 1) for p in connection.split(";") if p)["TableEndpoint"]
    return int(endpoint.split(":")[2].split("/")[0])


@pytest.fixture
def azurite(stack: Stack) -> str:
    return stack.tables_connection


@pytest.fixture
async def proxy(azurite: str) -> AsyncIterator[ResettingProxy]:
    async with ResettingProxy(azurite_port(azurite)) as running:
        yield running


@pytest.fixture
async def table(azurite: str, proxy: ResettingProxy) -> AsyncIterator[TableClient]:
    """A fresh table, reached through the proxy by a client configured like devicemon's."""
    name = f"r{uuid.uuid4().hex[:12]}"
    connection = through(azurite, proxy.port)
    async with TableServiceClient.from_connection_string(connection) as service:
        await service.create_table(name)
        async with retry_every_method(service).get_table_client(name) as client:
            yield client
        await service.delete_table(name)


def row(key: str, **columns: Any) -> dict[str, Any]:
    return {"PartitionKey": "p", "RowKey": key, **columns}


async def insert(table: TableClient) -> None:
    await table.create_entity(row("a", Seen=1))


async def merge(table: TableClient) -> None:
    await table.update_entity(row("m", Note="merged"), mode=UpdateMode.MERGE)


async def batch(table: TableClient) -> None:
    await table.submit_transaction([("upsert", row("b1", Seen=1)), ("upsert", row("b2", Seen=1))])


async def rows(table: TableClient) -> dict[str, dict[str, Any]]:
    found = {}
    async for entity in table.list_entities():
        found[entity["RowKey"]] = {
            k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")
        }
    return found


Write = Callable[[TableClient], Awaitable[None]]


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        (insert, {"m": {"Seen": 1}, "a": {"Seen": 1}}),
        (merge, {"m": {"Seen": 1, "Note": "merged"}}),
        (batch, {"m": {"Seen": 1}, "b1": {"Seen": 1}, "b2": {"Seen": 1}}),
    ],
    ids=["insert", "merge", "batch"],
)
async def test_a_write_reset_before_azurite_saw_it_is_sent_again(
    table: TableClient, proxy: ResettingProxy, write: Write, expected: dict[str, Any]
) -> None:
    await table.create_entity(row("m", Seen=1))
    proxy.arm("before")
    await write(table)
    assert proxy.resets == 1
    assert await rows(table) == expected


async def test_without_it_the_sdk_gives_up_on_the_first_reset(
    azurite: str, proxy: ResettingProxy
) -> None:
    """The control: azure-core's allow-list alone does not repeat a POST after a reset."""
    name = f"r{uuid.uuid4().hex[:12]}"
    connection = through(azurite, proxy.port)
    async with TableServiceClient.from_connection_string(connection) as service:
        await service.create_table(name)
        async with service.get_table_client(name) as client:
            proxy.arm("before")
            with pytest.raises(AzureError):
                await insert(client)
            assert await rows(client) == {}
        await service.delete_table(name)
    assert proxy.resets == 1


async def test_a_history_row_whose_answer_was_lost_is_written_once(
    settings: Settings, azurite: str, proxy: ResettingProxy
) -> None:
    """Azurite applied the insert, the reset lost its answer: the repeat finds the same row."""
    rt = Runtime(
        replace(
            settings,
            tables_connection_string=through(azurite, proxy.port),
        )
    )
    try:
        store = await rt.store()
        written = first_seen()
        proxy.arm("after")
        await store.write_history(written)
        assert proxy.resets == 1
        rows = [r async for r in store.history(written.record.object_id)]
        assert rows == [written]
    finally:
        await rt.close()
