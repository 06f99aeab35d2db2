"""The process's clients, built once from settings and reused by every invocation.

Lazy on purpose: the webhook touches only Service Bus, so Graph (msgraph, seconds to import) and
Tables are created the first time a processor or sync invocation asks for them, unless the worker
warmed them first (`warm_up_soon`, called when function_app is imported). Tests and the dev host
install their own Runtime with `use_runtime`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

from shared import logs
from shared.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from azure.data.tables.aio import TableServiceClient
    from azure.servicebus.aio import ServiceBusClient

    from shared.adapters.bookkeeping import Bookkeeping
    from shared.adapters.ca_policies import CaPolicyStore
    from shared.adapters.deadlines import DeadlineIndex
    from shared.adapters.failure_log import FailureLog
    from shared.adapters.graph import GraphDevices, GraphJson
    from shared.adapters.pending_alerts import PendingAlerts
    from shared.adapters.servicebus import AlertPublisher, ChangeQueue
    from shared.adapters.store import DeviceStore
    from shared.consumers.remediation import Remediator
    from shared.consumers.remediation_log import RemediationLog
    from shared.consumers.teams import TeamsClient, TeamsNotifier
    from shared.consumers.teams_store import TeamsStore
    from shared.core.compliance_details import ComplianceDetails
    from shared.core.policy_eligibility import CompiledPolicySet
    from shared.core.tenant_settings import TenantSettings
    from shared.processing.pipeline import Pipeline
    from shared.retry import RetryPolicy
    from shared.sources.subscription import SubscriptionKeeper
    from shared.sources.sync import DeltaSync


log = logging.getLogger("devicemon.runtime")


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self._retry = retry
        # The time the pipeline judges by and the deadline timer runs at: tests and the demo
        # pass the Graph simulator's tenant clock, so deadlines days away pass in seconds.
        self._clock = clock
        self._service_bus: ServiceBusClient | None = None
        self._change_queue: ChangeQueue | None = None
        self._publisher: AlertPublisher | None = None
        self._tables: TableServiceClient | None = None
        self._store: DeviceStore | None = None
        self._graph_json: GraphJson | None = None
        self._graph: GraphDevices | None = None
        self._pipeline: Pipeline | None = None
        self._books: Bookkeeping | None = None
        self._pending: PendingAlerts | None = None
        self._failures: FailureLog | None = None
        self._deadlines: DeadlineIndex | None = None
        self._policy_store: CaPolicyStore | None = None
        self._tables_ready = asyncio.Lock()
        # Concurrent invocations ask for the same adapter at once: one builds it, the others
        # wait for that one instead of building (and leaking) their own.
        self._building: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tables_created = False

    def now(self) -> datetime:
        if self._clock is not None:
            return self._clock()
        from shared.core.models import utc_now

        return utc_now()

    def service_bus(self) -> ServiceBusClient:
        if self._service_bus is None:
            from shared.adapters.servicebus import make_client

            self._service_bus = make_client(self.settings)
        return self._service_bus

    def change_queue(self) -> ChangeQueue:
        """The change queue for HTTP routes: sends bounded by ENQUEUE_TIMEOUT_MS."""
        if self._change_queue is None:
            from shared.adapters.servicebus import ChangeQueue, queue_senders

            s = self.settings
            self._change_queue = ChangeQueue(
                queue_senders(
                    self.service_bus(),
                    s.device_changes_queue,
                    size=s.service_bus_senders,
                    timeout=s.service_bus_send_timeout_seconds,
                ),
                timeout=s.enqueue_timeout_seconds,
            )
        return self._change_queue

    def publisher(self) -> AlertPublisher:
        if self._publisher is None:
            from shared.adapters.servicebus import AlertPublisher, topic_senders

            s = self.settings
            self._publisher = AlertPublisher(
                topic_senders(
                    self.service_bus(),
                    s.device_alerts_topic,
                    size=s.service_bus_senders,
                    timeout=s.service_bus_send_timeout_seconds,
                )
            )
        return self._publisher

    async def store(self) -> DeviceStore:
        if self._store is None:
            from shared.adapters.store import DeviceStore, make_service

            self._tables = make_service(self.settings)
            self._store = DeviceStore(self._tables, self.settings)
        if not self._tables_created:
            async with self._tables_ready:
                if not self._tables_created:
                    await self._store.ensure_tables()
                    self._tables_created = True
        return self._store

    async def table_service(self) -> TableServiceClient:
        """The one Table service client every table adapter of this runtime shares."""
        await self.store()
        assert self._tables is not None
        return self._tables

    def graph_json(self) -> GraphJson:
        if self._graph_json is None:
            from shared.adapters.graph import GraphJson, make_client
            from shared.retry import RetryPolicy

            self._graph_json = GraphJson(
                make_client(self.settings),
                self._retry or RetryPolicy(attempts=self.settings.graph_max_retries + 1),
            )
        return self._graph_json

    def graph(self) -> GraphDevices:
        if self._graph is None:
            from shared.adapters.graph import GraphDevices

            self._graph = GraphDevices(
                self.graph_json(), intune_enabled=self.settings.intune_enabled
            )
        return self._graph

    async def pipeline(self) -> Pipeline:
        async with self._building["pipeline"]:
            if self._pipeline is None:
                from datetime import timedelta

                from shared.adapters.compliance_details import read_compliance_details
                from shared.core.evaluation import EvaluationOptions
                from shared.processing.pipeline import Pipeline

                s = self.settings
                graph_json = self.graph_json()
                self._pipeline = Pipeline(
                    graph=self.graph(),
                    store=await self.store(),
                    publisher=self.publisher(),
                    outbox=await self.pending_alerts(),
                    options=EvaluationOptions(
                        s.policy,
                        s.stale_sign_in_days,
                        s.intune_checkin_stale_days,
                        checkin_warning_days=s.intune_checkin_warn_days,
                        at_risk_lead=timedelta(hours=s.at_risk_lead_hours),
                    ),
                    tenant=await self._tenant_settings(),
                    policies=await self._policies(),
                    event_source=s.event_source,
                    compliance=self._noting_permission(
                        lambda managed_id: read_compliance_details(graph_json, managed_id)
                    ),
                    scheduler=await self.deadlines(),
                    clock=self.now,
                )
        return self._pipeline

    def _noting_permission(
        self, read: Callable[[str], Awaitable[ComplianceDetails]]
    ) -> Callable[[str], Awaitable[ComplianceDetails]]:
        """The compliance details reader, recording whether Graph allowed the read, so that
        /api/health can name a missing permission instead of alerts quietly lacking details."""

        async def reading(managed_id: str) -> ComplianceDetails:
            from shared.core.compliance_details import PERMISSION_MISSING
            from shared.core.models import utc_now

            details = await read(managed_id)
            if details.unavailable in (None, PERMISSION_MISSING):
                try:
                    await (await self.bookkeeping()).note_compliance_read(
                        details.unavailable is None, utc_now(), details.detail
                    )
                except Exception as exc:  # the alert matters more than the health mark
                    logs.event(
                        log,
                        "permission_mark_failed",
                        level=logging.WARNING,
                        error=type(exc).__name__,
                    )
            return details

        return reading

    async def _tenant_settings(self) -> Callable[[], Awaitable[TenantSettings]]:
        """The tenant's stored Intune compliance settings, reloaded every few minutes."""
        from shared.adapters.tenant_settings import CachedTenantSettings, TenantSettingsBook

        await self.bookkeeping()  # the row lives in the bookkeeping table: make sure it exists
        assert self._tables is not None
        book = TenantSettingsBook(self._tables, self.settings.sync_table)
        # On the runtime's clock: a test that moves it days ahead sees a changed threshold.
        return CachedTenantSettings(book, self.now).current

    async def _policies(self) -> Callable[[], Awaitable[CompiledPolicySet | None]]:
        """The tenant's stored Conditional Access policies in force (None: the CA_POLICY setting
        judges), reloaded at most every POLICY_CACHE_SECONDS (shared/adapters/policy_source.py)."""
        from datetime import timedelta

        from shared.adapters.ca_policies import CaPolicyStore, table_name
        from shared.adapters.policy_source import CachedPolicies

        await self.store()  # creates the Table service client
        assert self._tables is not None
        store = CaPolicyStore(self._tables, table_name(self.settings))
        try:
            await store.ensure_table()
        except Exception as exc:  # the policy timer creates it too: judge by the setting
            logs.event(log, "policy_table_unavailable", level=logging.WARNING, error=str(exc))
        self._policy_store = store
        s = self.settings
        ttl = timedelta(seconds=s.policy_cache_seconds)
        return CachedPolicies(store, s.eligibility_source, self.now, ttl).current

    async def pending_alerts(self) -> PendingAlerts:
        async with self._building["pending_alerts"]:
            if self._pending is None:
                from shared.adapters.pending_alerts import PendingAlerts

                await self.store()  # creates the Table service client
                assert self._tables is not None
                index = PendingAlerts(self._tables, self.settings.pending_alerts_table)
                await index.ensure_table()
                self._pending = index
        return self._pending

    async def failure_log(self) -> FailureLog:
        async with self._building["failure_log"]:
            if self._failures is None:
                from shared.adapters.failure_log import FailureLog

                await self.store()
                assert self._tables is not None
                failures = FailureLog(self._tables, self.settings.failures_table)
                await failures.ensure_table()
                self._failures = failures
        return self._failures

    async def deadlines(self) -> DeadlineIndex:
        """When each device must be evaluated again (shared/adapters/deadlines.py)."""
        async with self._building["deadlines"]:
            if self._deadlines is None:
                from shared.adapters.deadlines import DeadlineIndex

                await self.store()
                assert self._tables is not None
                index = DeadlineIndex(self._tables, self.settings.deadlines_table)
                await index.ensure_table()
                self._deadlines = index
        return self._deadlines

    async def bookkeeping(self) -> Bookkeeping:
        async with self._building["bookkeeping"]:
            if self._books is None:
                from shared.adapters.bookkeeping import Bookkeeping

                await self.store()  # creates the Table service client
                assert self._tables is not None
                books = Bookkeeping(self._tables, self.settings.sync_table)
                await books.ensure_table()
                self._books = books
        return self._books

    async def delta_sync(self) -> DeltaSync:
        from shared.sources.sync import DeltaSync

        return DeltaSync(
            graph=self.graph_json(),
            books=await self.bookkeeping(),
            sink=self.change_queue().with_timeout(None),
            page_size=self.settings.sync_page_size,
            intune_enabled=self.settings.intune_enabled,
        )

    async def subscription_keeper(self) -> SubscriptionKeeper:
        from shared.sources.subscription import SubscriptionKeeper

        return SubscriptionKeeper(
            graph=self.graph_json(), books=await self.bookkeeping(), settings=self.settings
        )

    async def warm_up(self) -> None:
        """Open what the first invocations would otherwise wait for: one sender of the change
        queue (its AMQP link and CBS handshake, ~0.5 s: the webhook's first POST and the sync's
        first batch), the Graph client (msgraph's import, imported in a thread so the loop keeps
        serving, and a token), and the tables. Each part on its own: one that fails is logged
        and left to be built lazily, as without a warm-up."""
        started = time.perf_counter()
        failed: list[str] = []

        async def sender() -> None:
            # An empty send creates a message batch, which opens the sender's link, and sends
            # nothing.
            await self.change_queue().send([])

        async def graph() -> None:
            await asyncio.to_thread(importlib.import_module, "shared.adapters.graph")
            await self.graph_json().warm()

        async def tables() -> None:
            await self.store()

        for name, part in (("service_bus", sender), ("graph", graph), ("tables", tables)):
            try:
                await part()
            except Exception as exc:  # warming is an optimisation: never fail the worker
                failed.append(f"{name}: {type(exc).__name__}")
        logs.event(
            log,
            "runtime_warmed",
            level=logging.WARNING if failed else logging.INFO,
            failed=failed or None,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def close(self) -> None:
        await self.close_alert_consumers()
        for closeable in (
            self._change_queue,
            self._publisher,
            self._store,
            self._books,
            self._pending,
            self._failures,
            self._deadlines,
            self._policy_store,
        ):
            if closeable is not None:
                await closeable.close()
        if self._tables is not None:
            await self._tables.close()
        if self._service_bus is not None:
            await self._service_bus.close()

    # --- alert consumers: Teams and remediation (call close_alert_consumers before close) ---
    _consumers_lock: asyncio.Lock | None = None
    _teams_client: TeamsClient | None = None
    _teams_store: TeamsStore | None = None
    _teams: TeamsNotifier | None = None
    _remediation_log: RemediationLog | None = None
    _remediator: Remediator | None = None

    def _consumers_ready(self) -> asyncio.Lock:
        if self._consumers_lock is None:
            self._consumers_lock = asyncio.Lock()
        return self._consumers_lock

    def teams_client(self) -> TeamsClient:
        """The Workflows webhook client (TeamsNotConfigured when TEAMS_WEBHOOK_URL is unusable)."""
        if self._teams_client is None:
            from shared.consumers.teams import DEFAULT_RETRY, TeamsClient

            self._teams_client = TeamsClient(
                self.settings.teams_webhook_url or "", retry=self._retry or DEFAULT_RETRY
            )
        return self._teams_client

    async def teams_notifier(self) -> TeamsNotifier:
        async with self._consumers_ready():
            if self._teams is None:
                from shared.consumers.teams import TeamsNotifier, noise_settings
                from shared.consumers.teams_store import TeamsStore

                client = self.teams_client()
                await self.store()  # creates the Table service client
                assert self._tables is not None
                store = TeamsStore(self._tables, f"{self.settings.table_prefix}TeamsNoise")
                await store.ensure_table()
                self._teams_store = store
                # On the runtime's clock, like the deadlines an at_risk card counts down to.
                self._teams = TeamsNotifier(
                    client, store, noise_settings(self.settings), clock=self.now
                )
        return self._teams

    async def remediator(self) -> Remediator:
        async with self._consumers_ready():
            if self._remediator is None:
                from shared.consumers.checkins import StoredCheckins
                from shared.consumers.remediation import GraphDeviceSync, Mode, Remediator
                from shared.consumers.remediation_log import RemediationLog

                store = await self.store()
                assert self._tables is not None
                log = RemediationLog(self._tables, f"{self.settings.table_prefix}RemediationLog")
                await log.ensure_table()
                self._remediation_log = log
                self._remediator = Remediator(
                    log,
                    GraphDeviceSync(self.graph_json),
                    mode=Mode(self.settings.remediation_mode),
                    max_actions_per_hour=self.settings.remediation_max_actions_per_hour,
                    checkins=StoredCheckins(store),
                    clock=self.now,  # a check-in's age on the clock Intune's timeline runs on
                )
        return self._remediator

    async def close_alert_consumers(self) -> None:
        for closeable in (self._teams_client, self._teams_store, self._remediation_log):
            if closeable is not None:
                await closeable.close()
        self._teams_client = self._teams_store = self._remediation_log = None
        self._teams = self._remediator = None


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


_warming: set[asyncio.Task[None]] = set()


def warm_up_soon() -> bool:
    """Warm the process's runtime in the background, on the event loop that runs the functions.

    Called when function_app is imported. The Python worker imports it while handling the host's
    metadata (indexing) request, on the loop the async functions later run on, so warming starts
    at worker start rather than on the first request. Azure Functions' documented start hook,
    the warmup trigger, runs only when an instance is added by scale-out (not on restarts, nor on
    the Consumption plan): hence this. Without a running loop (a script, a test importing the
    app) it does nothing: the first invocation builds what it needs, as before. True when a
    warm-up was scheduled."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    try:
        runtime = current()
    except Exception as exc:  # settings missing: the first invocation reports it properly
        logs.event(log, "runtime_warm_skipped", level=logging.WARNING, error=type(exc).__name__)
        return False
    task = loop.create_task(runtime.warm_up())
    _warming.add(task)
    task.add_done_callback(_warming.discard)
    return True
