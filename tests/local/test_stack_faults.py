"""The local stack's fault controls: kill / stop / start_again / freeze / thaw / outage.

The module runs its own stack (the session's is shared with every other test): each test takes
components of it down, checks what a client sees, and checks that what was acknowledged before
is still there afterwards. An autouse fixture brings every component back between tests.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import AzureError
from azure.data.tables import TableClient, TableServiceClient
from azure.servicebus import ServiceBusClient, ServiceBusMessage

from local import stack as local_stack
from local.stack import COMPONENTS, Stack

ROWS = 50


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with local_stack.start(log_dir=tmp_path_factory.mktemp("stack-logs")) as running:
        yield running


@pytest.fixture(autouse=True)
def all_up(fault_stack: Stack) -> Iterator[None]:
    yield
    # A failed test must not leave the next one with a component down or frozen.
    for name in COMPONENTS:
        component = fault_stack.component(name)
        if component.frozen:
            fault_stack.thaw(name)
        if not component.running:
            fault_stack.start_again(name)


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def process_state(stack: Stack, name: str) -> str:
    """The kernel's state letter for the component's process (T = stopped)."""
    proc = stack.process(name)
    assert proc is not None
    stat = Path(f"/proc/{proc.pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def write_rows(stack: Stack) -> str:
    """A fresh table with ROWS rows, all written within the last second or so, i.e. inside
    Azurite's ~5 s autosave window that SIGTERM/SIGKILL would lose."""
    name = f"t{uuid.uuid4().hex[:12]}"
    with TableServiceClient.from_connection_string(stack.tables_connection) as service:
        table = service.create_table(name)
        for start in range(0, ROWS, 25):
            table.submit_transaction(
                [
                    ("upsert", {"PartitionKey": "p", "RowKey": f"{i:03d}"})
                    for i in range(start, start + 25)
                ]
            )
    return name


def count_rows(stack: Stack, table: str) -> int:
    with TableClient.from_connection_string(stack.tables_connection, table) as client:
        return sum(1 for _ in client.list_entities())


def send(stack: Stack, queue: str, count: int) -> None:
    with (
        ServiceBusClient.from_connection_string(stack.service_bus_connection) as client,
        client.get_queue_sender(queue) as sender,
    ):
        sender.send_messages([ServiceBusMessage(f"m{i}") for i in range(count)])


def peek(stack: Stack, queue: str) -> list[str]:
    with (
        ServiceBusClient.from_connection_string(stack.service_bus_connection) as client,
        client.get_queue_receiver(queue) as receiver,
    ):
        return [str(m) for m in receiver.peek_messages(max_message_count=100)]


# ------------------------------------------------------------------------------ shape


def test_components_by_name_with_data_on_disk(fault_stack: Stack) -> None:
    assert set(fault_stack.components) == {"azurite", "broker", "graphsim"}
    assert len(fault_stack.processes) == 3
    ports = {name: c.port for name, c in fault_stack.components.items()}
    assert ports == {
        "azurite": fault_stack.tables_port,
        "broker": fault_stack.broker_port,
        "graphsim": fault_stack.graph_port,
    }
    assert fault_stack.data_dir is not None
    azurite_args = fault_stack.component("azurite").args
    assert "--inMemoryPersistence" not in azurite_args
    assert azurite_args[azurite_args.index("--location") + 1].startswith(str(fault_stack.data_dir))
    broker_args = fault_stack.component("broker").args
    assert broker_args[broker_args.index("--journal") + 1].startswith(str(fault_stack.data_dir))


def test_unknown_component_and_mode_are_refused(fault_stack: Stack) -> None:
    with pytest.raises(ValueError, match="unknown component"):
        fault_stack.kill("cosmos")
    with pytest.raises(ValueError, match="mode"):
        fault_stack.outage("broker", 1, mode="explode")  # type: ignore[arg-type]
    # Its state is in memory only: a restart would silently empty every tenant.
    with pytest.raises(ValueError, match="memory"):
        fault_stack.outage("graphsim", 1, mode="restart")
    with pytest.raises(RuntimeError, match="running"):
        fault_stack.start_again("broker")


# ------------------------------------------------------------------------------ Azurite


def test_azurite_graceful_stop_keeps_its_last_writes(fault_stack: Stack) -> None:
    table = write_rows(fault_stack)
    fault_stack.stop("azurite")  # SIGINT: Azurite saves its tables before exiting
    assert fault_stack.process("azurite") is None
    assert refused(fault_stack.tables_port)
    fault_stack.start_again("azurite")
    assert count_rows(fault_stack, table) == ROWS


def test_azurite_restart_outage_keeps_its_last_writes(fault_stack: Stack) -> None:
    table = write_rows(fault_stack)
    with fault_stack.outage("azurite", 600, mode="restart") as outage:
        assert refused(fault_stack.tables_port)
        outage.end()
    assert count_rows(fault_stack, table) == ROWS


def test_freeze_hangs_clients_and_thaw_resumes(fault_stack: Stack) -> None:
    table = write_rows(fault_stack)
    fault_stack.freeze("azurite")
    assert process_state(fault_stack, "azurite") == "T"
    # The kernel still accepts the connection; nothing answers, so the client times out.
    with (
        TableClient.from_connection_string(
            fault_stack.tables_connection, table, retry_total=0, read_timeout=1
        ) as client,
        pytest.raises(AzureError),
    ):
        client.get_entity("p", "000")
    fault_stack.thaw("azurite")
    assert process_state(fault_stack, "azurite") != "T"
    assert count_rows(fault_stack, table) == ROWS


def test_freeze_outage_comes_back_by_itself(fault_stack: Stack) -> None:
    table = write_rows(fault_stack)
    with fault_stack.outage("azurite", 0.2) as outage:
        assert outage.wait_restored(60)
    assert process_state(fault_stack, "azurite") != "T"
    assert count_rows(fault_stack, table) == ROWS


# ------------------------------------------------------------------------------ broker


def test_broker_kill_and_start_again_keeps_acknowledged_messages(fault_stack: Stack) -> None:
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    send(fault_stack, queue, 20)
    fault_stack.kill("broker")
    assert refused(fault_stack.broker_port)
    fault_stack.start_again("broker")
    assert peek(fault_stack, queue) == [f"m{i}" for i in range(20)]


def test_broker_restart_outage_waits_out_its_length(fault_stack: Stack) -> None:
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    send(fault_stack, queue, 5)
    with fault_stack.outage("broker", 0.2, mode="restart") as outage:
        assert refused(fault_stack.broker_port)
    # Leaving the block waited for the restart: the broker is back with its messages.
    assert outage.restored.is_set()
    assert peek(fault_stack, queue) == [f"m{i}" for i in range(5)]


def test_kill_works_on_a_frozen_component(fault_stack: Stack) -> None:
    fault_stack.freeze("broker")
    fault_stack.kill("broker")
    assert fault_stack.component("broker").frozen is False
    fault_stack.start_again("broker")
    assert not refused(fault_stack.broker_port)


async def test_async_outage_leaves_the_event_loop_running(fault_stack: Stack) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        async with fault_stack.outage("broker", 1.0, mode="freeze") as outage:
            before = ticks
        # Waiting for the thaw happened off the loop, so the ticker kept going meanwhile.
        assert outage.restored.is_set()
        assert ticks > before
    finally:
        task.cancel()
    assert process_state(fault_stack, "broker") != "T"
