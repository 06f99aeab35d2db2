"""The tenant settings timer through the real path: msgraph-sdk (GraphJson) against the Graph
simulator serving deviceManagement/settings, Table storage in Azurite, and the pipeline
evaluating a device with what the timer stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from handlers.tenant_settings import refresh_tenant_settings
from local.graphsim.admin import SimAdmin
from local.graphsim.tenant_settings import set_tenant_settings
from shared.adapters.store import make_service
from shared.adapters.tenant_settings import (
    PERMISSION,
    CachedTenantSettings,
    StoredSettings,
    TenantSettingsBook,
)
from shared.core.changes import DeviceChange
from shared.core.models import Source, Warning_
from shared.core.tenant_settings import DEFAULT, KEPT, READ, TenantSettings
from shared.runtime import Runtime
from shared.settings import Settings
from tests.devhost_helpers import run_timer_in_dev_host
from tests.graph_helpers import add_device

ROUTE = "GET /deviceManagement/settings"


@pytest.fixture
async def book(settings: Settings) -> AsyncIterator[TenantSettingsBook]:
    service = make_service(settings)
    books = TenantSettingsBook(service, settings.sync_table)
    await books.ensure_table()
    yield books
    await books.close()
    await service.close()


def routes(sim: SimAdmin) -> dict[str, int]:
    return dict(sim.requests()["routes"])


async def test_the_timer_stores_what_graph_says_in_one_request(
    runtime: Runtime, sim: SimAdmin, book: TenantSettingsBook
) -> None:
    set_tenant_settings(sim, checkin_threshold_days=10, secure_by_default=True)
    sim.reset_requests()
    before = datetime.now(UTC)

    returned = await refresh_tenant_settings(runtime)

    stored = await book.load()
    assert stored.settings == returned
    assert (returned.checkin_threshold_days, returned.secure_by_default) == (10, True)
    assert returned.status == READ and returned.note == ""
    assert returned.read_at is not None and returned.read_at >= before
    assert stored.checked_at == returned.read_at
    assert routes(sim) == {ROUTE: 1}


async def test_a_refused_read_keeps_the_last_known_values_and_says_so(
    runtime: Runtime, sim: SimAdmin, book: TenantSettingsBook
) -> None:
    set_tenant_settings(sim, checkin_threshold_days=14)
    first = await refresh_tenant_settings(runtime)
    set_tenant_settings(sim, checkin_threshold_days=60, forbidden=True)

    kept = await refresh_tenant_settings(runtime)

    stored = await book.load()
    assert stored.settings == kept
    assert (kept.checkin_threshold_days, kept.status, kept.read_at) == (14, KEPT, first.read_at)
    assert "403" in kept.note and PERMISSION in kept.note
    assert stored.checked_at is not None and first.read_at is not None
    assert stored.checked_at > first.read_at


async def test_a_refused_first_read_leaves_intunes_defaults(
    runtime: Runtime, sim: SimAdmin, book: TenantSettingsBook
) -> None:
    set_tenant_settings(sim, forbidden=True)

    settings = await refresh_tenant_settings(runtime)

    assert settings == (await book.load()).settings
    assert (settings.checkin_threshold_days, settings.secure_by_default) == (30, False)
    assert (settings.status, settings.read_at) == (DEFAULT, None)
    assert PERMISSION in settings.note


async def test_an_answer_outside_the_documented_range_is_not_used(
    runtime: Runtime, sim: SimAdmin
) -> None:
    set_tenant_settings(sim, checkin_threshold_days=0)
    settings = await refresh_tenant_settings(runtime)
    assert (settings.checkin_threshold_days, settings.status) == (30, DEFAULT)
    assert "outside 1..120" in settings.note


async def test_a_worker_sees_a_changed_threshold_after_its_cache_period(
    book: TenantSettingsBook,
) -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    clock = [now]
    cache = CachedTenantSettings(book, lambda: clock[0], ttl=timedelta(minutes=10))
    await book.save(StoredSettings(TenantSettings(30, False, now, READ), now))
    assert (await cache.current()).checkin_threshold_days == 30

    await book.save(StoredSettings(TenantSettings(10, False, now, READ), now))
    clock[0] = now + timedelta(minutes=9)
    assert (await cache.current()).checkin_threshold_days == 30  # within the period: no read
    clock[0] = now + timedelta(minutes=10)
    assert (await cache.current()).checkin_threshold_days == 10


class CountingBook(TenantSettingsBook):
    """The real table adapter, counting the loads that reach the table."""

    loads = 0

    async def load(self) -> StoredSettings:
        self.loads += 1
        await asyncio.sleep(0)  # let the other callers pile up behind the first load
        return await super().load()


async def test_many_concurrent_evaluations_share_one_load_per_period(
    settings: Settings, book: TenantSettingsBook
) -> None:
    service = make_service(settings)
    counting = CountingBook(service, settings.sync_table)
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    clock = [now]
    cache = CachedTenantSettings(counting, lambda: clock[0], ttl=timedelta(minutes=10))
    await book.save(StoredSettings(TenantSettings(14, True, now, READ), now))

    first = await asyncio.gather(*(cache.current() for _ in range(200)))
    assert {s.checkin_threshold_days for s in first} == {14} and counting.loads == 1
    clock[0] = now + timedelta(minutes=10)
    await asyncio.gather(*(cache.current() for _ in range(200)))
    assert counting.loads == 2
    await counting.close()
    await service.close()


def _change(device_id: str) -> DeviceChange:
    return DeviceChange(device_id, "updated", Source.SYNC, "m-" + device_id, "c-" + device_id, "")


async def _evaluate(settings: Settings, device_id: str) -> tuple[str, ...]:
    """A fresh worker (its own Runtime) processing one change, and what it stored."""
    runtime = Runtime(settings)
    try:
        await (await runtime.pipeline()).process(_change(device_id))
        row = await (await runtime.store()).get_state(device_id)
        assert row is not None
        return row.record.warnings
    finally:
        await runtime.close()


async def test_a_device_is_evaluated_under_the_tenant_threshold_and_a_change_of_it(
    runtime: Runtime, sim: SimAdmin, settings: Settings
) -> None:
    device = add_device(sim)
    # Six days without a check-in: nothing to say under Intune's default 30 days, overdue under
    # a 10-day period (warned from 5 days on, docs/reason-codes.md).
    last_sync = datetime.now(UTC) - timedelta(days=6)
    sim.patch_managed_device(
        device["managedId"],
        sync_to_entra=False,
        lastSyncDateTime=last_sync.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    set_tenant_settings(sim, checkin_threshold_days=10)
    await refresh_tenant_settings(runtime)

    warnings = await _evaluate(settings, device["id"])
    assert Warning_.INTUNE_CHECKIN_STALE.value in warnings

    set_tenant_settings(sim, checkin_threshold_days=30)
    await refresh_tenant_settings(runtime)

    warnings = await _evaluate(settings, device["id"])
    assert Warning_.INTUNE_CHECKIN_STALE.value not in warnings


async def test_the_timer_declared_in_function_app_runs_in_the_dev_host(
    runtime: Runtime,
    sim: SimAdmin,
    book: TenantSettingsBook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENANT_SETTINGS_SCHEDULE", "0 30 3 * * *")
    set_tenant_settings(sim, checkin_threshold_days=12, secure_by_default=True)

    async def read() -> TenantSettings | None:
        stored = (await book.load()).settings
        return stored if stored.status == READ else None

    stored = await run_timer_in_dev_host(runtime, "refresh_tenant_settings", read)
    assert (stored.checkin_threshold_days, stored.secure_by_default) == (12, True)
