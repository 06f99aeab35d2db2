"""Reading the tenant's Conditional Access policies through the real msgraph-sdk pipeline
(GraphJson) from the Graph simulator, and keeping them in Table storage (Azurite)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

from handlers.policies import policy_timer
from local.graphsim.admin import SimAdmin
from local.graphsim.ca_policies import set_ca_policies
from shared.adapters.ca_policies import (
    CHUNK,
    PERMISSION,
    CaPolicyStore,
    PolicyRead,
    ReadStatus,
    read_policies,
    refresh,
    table_name,
)
from shared.adapters.graph import GraphJson
from shared.adapters.store import make_service
from shared.runtime import Runtime
from shared.settings import Settings
from tests.local.test_graphsim_ca_policies import RISK_POLICY, tenant_policies

LIST = "GET /identity/conditionalAccess/policies"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def graph(runtime: Runtime) -> GraphJson:
    return runtime.graph_json()


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[CaPolicyStore]:
    service = make_service(settings)
    adapter = CaPolicyStore(service, table_name(settings))
    await adapter.ensure_table()
    yield adapter
    await adapter.close()
    await service.close()


async def test_every_page_is_read_with_evolvable_members_by_name(
    sim: SimAdmin, graph: GraphJson
) -> None:
    set_ca_policies(sim, tenant_policies(), page_size=6)
    sim.reset_requests()

    read = await read_policies(graph, NOW)

    assert (read.status, read.read_at, read.detail) == (ReadStatus.OK, NOW, "")
    assert list(read.policies) == tenant_policies()
    risk = next(p for p in read.policies if p["id"] == RISK_POLICY["id"])
    assert risk["grantControls"]["builtInControls"] == ["passwordChange", "riskRemediation"]
    assert sim.requests()["routes"] == {LIST: 3}


async def test_a_missing_permission_is_a_result_not_an_exception(
    sim: SimAdmin, graph: GraphJson
) -> None:
    set_ca_policies(sim, tenant_policies(), policy_read_granted=False)
    read = await read_policies(graph, NOW)
    assert read.status is ReadStatus.PERMISSION_MISSING
    assert read.policies == ()
    assert PERMISSION in read.detail and "403" in read.detail


async def test_a_server_error_is_a_failed_read(sim: SimAdmin, graph: GraphJson) -> None:
    set_ca_policies(sim, tenant_policies())
    sim.add_fault(status=500, fraction=1.0, route="/identity/conditionalAccess/policies")
    read = await read_policies(graph, NOW)
    assert read.status is ReadStatus.FAILED and "500" in read.detail


async def test_round_trip_replace_and_a_failed_read_keeps_the_last_good_policies(
    store: CaPolicyStore,
) -> None:
    assert await store.load() is None
    policies = tenant_policies()
    await store.save(PolicyRead(NOW, ReadStatus.OK, tuple(policies)))
    stored = await store.load()
    assert stored is not None
    assert (stored.status, stored.read_at, stored.last_success_at) == (ReadStatus.OK, NOW, NOW)
    assert list(stored.policies) == policies  # Graph's order, every field

    later = NOW + timedelta(hours=1)
    await store.save(PolicyRead(later, ReadStatus.OK, tuple(policies[5:])))
    stored = await store.load()
    assert stored is not None and list(stored.policies) == policies[5:]

    failed = later + timedelta(hours=1)
    await store.save(PolicyRead(failed, ReadStatus.PERMISSION_MISSING, detail="grant it"))
    stored = await store.load()
    assert stored is not None
    assert (stored.status, stored.read_at, stored.detail) == (
        ReadStatus.PERMISSION_MISSING,
        failed,
        "grant it",
    )
    assert stored.last_success_at == later
    assert list(stored.policies) == policies[5:]


async def test_a_policy_longer_than_a_column_round_trips(store: CaPolicyStore) -> None:
    big: dict[str, Any] = copy.deepcopy(RISK_POLICY)
    big["conditions"]["users"]["excludeUsers"] = [
        f"00000000-0000-4000-8000-{n:012d}" for n in range(2 * CHUNK // 38)
    ]
    await store.save(PolicyRead(NOW, ReadStatus.OK, (big,)))
    stored = await store.load()
    assert stored is not None and stored.policies == (big,)


async def test_refresh_reads_and_keeps(
    sim: SimAdmin, graph: GraphJson, store: CaPolicyStore
) -> None:
    set_ca_policies(sim, tenant_policies())
    read = await refresh(graph, store, NOW)
    stored = await store.load()
    assert stored is not None and stored.policies == read.policies
    assert len(stored.policies) == len(tenant_policies())


async def test_the_timer_stores_a_permission_refusal(
    sim: SimAdmin, runtime: Runtime, store: CaPolicyStore
) -> None:
    set_ca_policies(sim, tenant_policies(), policy_read_granted=False)
    await policy_timer(TimerRequest(past_due=False), runtime)
    stored = await store.load()
    assert stored is not None
    assert stored.status is ReadStatus.PERMISSION_MISSING and stored.policies == ()
    assert stored.last_success_at is None
