"""The process's clients, built once from settings and reused by every invocation.

Lazy on purpose: the webhook touches only Service Bus, so Graph (msgraph, seconds to import) and
Tables are created the first time a processor or sync invocation asks for them. Tests and the dev
host install their own Runtime with `use_runtime`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from shared.settings import Settings

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient
    from azure.servicebus.aio import ServiceBusClient

    from shared.graph import GraphDevices
    from shared.pipeline import Pipeline
    from shared.retry import RetryPolicy
    from shared.servicebus import AlertPublisher, ChangeQueue
    from shared.store import DeviceStore


class Runtime:
    def __init__(self, settings: Settings, *, retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self._retry = retry
        self._service_bus: ServiceBusClient | None = None
        self._change_queue: ChangeQueue | None = None
        self._publisher: AlertPublisher | None = None
        self._tables: TableServiceClient | None = None
        self._store: DeviceStore | None = None
        self._graph: GraphDevices | None = None
        self._pipeline: Pipeline | None = None
        self._tables_ready = asyncio.Lock()
        self._tables_created = False

    def service_bus(self) -> ServiceBusClient:
        if self._service_bus is None:
            from shared.servicebus import make_client

            self._service_bus = make_client(self.settings)
        return self._service_bus

    def change_queue(self) -> ChangeQueue:
        if self._change_queue is None:
            from shared.servicebus import ChangeQueue

            self._change_queue = ChangeQueue(self.service_bus(), self.settings.device_changes_queue)
        return self._change_queue

    def publisher(self) -> AlertPublisher:
        if self._publisher is None:
            from shared.servicebus import AlertPublisher

            self._publisher = AlertPublisher(self.service_bus(), self.settings.device_alerts_topic)
        return self._publisher

    async def store(self) -> DeviceStore:
        if self._store is None:
            from shared.store import DeviceStore, make_service

            self._tables = make_service(self.settings)
            self._store = DeviceStore(self._tables, self.settings)
        if not self._tables_created:
            async with self._tables_ready:
                if not self._tables_created:
                    await self._store.ensure_tables()
                    self._tables_created = True
        return self._store

    def graph(self) -> GraphDevices:
        if self._graph is None:
            from shared.graph import GraphDevices, make_client
            from shared.retry import RetryPolicy

            self._graph = GraphDevices(
                make_client(self.settings),
                intune_enabled=self.settings.intune_enabled,
                retry=self._retry or RetryPolicy(attempts=self.settings.graph_max_retries + 1),
            )
        return self._graph

    async def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            from shared.evaluation import EvaluationOptions
            from shared.pipeline import Pipeline

            s = self.settings
            self._pipeline = Pipeline(
                graph=self.graph(),
                store=await self.store(),
                publisher=self.publisher(),
                options=EvaluationOptions(
                    s.policy, s.stale_sign_in_days, s.intune_checkin_stale_days
                ),
                event_source=s.event_source,
            )
        return self._pipeline

    async def close(self) -> None:
        for closeable in (self._change_queue, self._publisher, self._store):
            if closeable is not None:
                await closeable.close()
        if self._tables is not None:
            await self._tables.close()
        if self._service_bus is not None:
            await self._service_bus.close()


_current: Runtime | None = None


def current() -> Runtime:
    """The process-wide runtime, created from the environment on first use."""
    global _current
    if _current is None:
        _current = Runtime(Settings.from_env())
    return _current


def use_runtime(runtime: Runtime | None) -> None:
    global _current
    _current = runtime
