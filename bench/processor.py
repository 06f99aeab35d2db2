"""Processor throughput: device changes drained from `device-changes` by function_app's processor
(in the dev host, sessions in parallel as host.json configures) against the Graph simulator with
injected latency, compared in the same run with a naive baseline: one device at a time, a new
Graph client per request, a new Table client per write."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from azure.data.tables.aio import TableServiceClient

from bench.common import bench_settings
from local import stack as local_stack
from local.devhost import DevHost
from local.graphsim.admin import SimAdmin
from shared.adapters.graph import GraphDevices, GraphJson
from shared.adapters.graph import make_client as make_graph_client
from shared.core.changes import DeviceChange
from shared.core.evaluation import EvaluationOptions, evaluate, fingerprint
from shared.core.models import Observation, Source
from shared.core.observations import snapshots
from shared.core.records import HistoryRow, StateRow, record_of
from shared.retry import RetryPolicy
from shared.runtime import Runtime, use_runtime
from shared.settings import Settings


async def _count_states(settings: Settings) -> int:
    assert settings.tables_connection_string
    async with TableServiceClient.from_connection_string(
        settings.tables_connection_string
    ) as service:
        table = service.get_table_client(settings.state_table)
        return len([e async for e in table.list_entities(select=["PartitionKey"])])


async def pipeline_run(settings: Settings, ids: list[str]) -> dict[str, Any]:
    runtime = Runtime(settings)
    use_runtime(runtime)
    os.environ["DEVICE_CHANGES_QUEUE"] = settings.device_changes_queue
    os.environ["DEVICE_ALERTS_TOPIC"] = settings.device_alerts_topic
    # A baseline raises no alerts: the alert consumers would only add idle receivers.
    os.environ["AzureWebJobs.teams_alert.Disabled"] = "true"
    os.environ["AzureWebJobs.remediate_alert.Disabled"] = "true"
    assert settings.service_bus_connection_string
    os.environ["ServiceBusConnection"] = settings.service_bus_connection_string
    await runtime.store()  # tables exist before the clock starts, as in a running deployment
    try:
        async with DevHost(
            "function_app:app",
            port=0,
            only={"servicebus"},
            host_json="host.json",
            session_idle_timeout=0.1,
        ) as host:
            await host.wait_listening()
            now = datetime.now(UTC).isoformat()
            started = time.perf_counter()
            await runtime.change_queue().send(
                DeviceChange(i, "updated", Source.SYNC, f"bench-{i}", f"bench-{i}", now)
                for i in ids
            )
            while await _count_states(settings) < len(ids):  # noqa: ASYNC110 - polling storage, not an in-process event
                await asyncio.sleep(0.25)
            elapsed = time.perf_counter() - started
    finally:
        use_runtime(None)
        await runtime.close()
    return {"devices": len(ids), "seconds": elapsed, "per_second": len(ids) / elapsed}


async def direct_run(settings: Settings, ids: list[str], concurrency: int = 32) -> dict[str, Any]:
    """The processor's pipeline driven straight from a list, `concurrency` devices at a time:
    what the processor costs without the local dev host's Service Bus session handling."""
    runtime = Runtime(settings)
    pipeline = await runtime.pipeline()
    pending = list(reversed(ids))
    now = datetime.now(UTC).isoformat()

    async def worker() -> None:
        while pending:
            object_id = pending.pop()
            await pipeline.process(
                DeviceChange(object_id, "updated", Source.SYNC, object_id, object_id, now)
            )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await runtime.close()
    return {"devices": len(ids), "seconds": elapsed, "per_second": len(ids) / elapsed}


async def naive_run(settings: Settings, ids: list[str]) -> dict[str, Any]:
    """What a first draft would do: strictly sequential, nothing reused."""
    assert settings.tables_connection_string
    options = EvaluationOptions()
    retry = RetryPolicy()
    async with TableServiceClient.from_connection_string(
        settings.tables_connection_string
    ) as service:
        await service.create_table_if_not_exists(settings.state_table)
        await service.create_table_if_not_exists(settings.history_table)
    started = time.perf_counter()
    for object_id in ids:
        device_reader = GraphDevices(
            GraphJson(make_graph_client(settings), retry), intune_enabled=False
        )
        facts = await device_reader.read(object_id, datetime.now(UTC))
        managed_reader = GraphDevices(
            GraphJson(make_graph_client(settings), retry), intune_enabled=True
        )
        records = await managed_reader.managed_for(facts.device)
        device, managed = snapshots(replace(facts, managed=records))
        now = datetime.now(UTC)
        evaluation = evaluate(device, managed, options, now)
        record = record_of(
            Observation(device, managed, evaluation, now, Source.SYNC),
            1,
            fingerprint(device, managed, evaluation),
        )
        for table, entity in (
            (settings.history_table, HistoryRow(record, "first_seen").entity()),
            (settings.state_table, StateRow(record, "first_seen", now).entity()),
        ):
            async with TableServiceClient.from_connection_string(
                settings.tables_connection_string
            ) as service:
                await service.get_table_client(table).upsert_entity(entity)
    elapsed = time.perf_counter() - started
    return {"devices": len(ids), "seconds": elapsed, "per_second": len(ids) / elapsed}


async def run_async(
    stack: local_stack.Stack, devices: int, naive_devices: int, latency_ms: int
) -> dict[str, Any]:
    tenant = str(uuid.uuid4())
    with SimAdmin(stack.graph_root, tenant) as sim:
        sim.ensure()
        sim.generate(2 * devices + naive_devices, seed=7)
        ids = sim.device_ids()
        ids = ids["ids"] if isinstance(ids, dict) else ids
        sim.set_latency(latency_ms)
        sim.reset_requests()
        ours = await pipeline_run(bench_settings(stack, tenant), ids[:devices])
        ours["graph_requests"] = sim.reset_requests()["httpRequests"]
        direct = await direct_run(bench_settings(stack, tenant), ids[devices : 2 * devices])
        direct["graph_requests"] = sim.reset_requests()["httpRequests"]
        naive = await naive_run(
            bench_settings(stack, tenant), ids[2 * devices : 2 * devices + naive_devices]
        )
        naive["graph_requests"] = sim.reset_requests()["httpRequests"]
    return {
        "latency_ms": latency_ms,
        "pipeline": ours,
        "direct": direct,
        "naive": naive,
        "speedup": ours["per_second"] / naive["per_second"],
        "direct_speedup": direct["per_second"] / naive["per_second"],
    }


def run(
    stack: local_stack.Stack, devices: int = 2000, naive_devices: int = 200, latency_ms: int = 50
) -> dict[str, Any]:
    return asyncio.run(run_async(stack, devices, naive_devices, latency_ms))
