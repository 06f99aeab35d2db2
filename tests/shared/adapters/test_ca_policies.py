"""Reading the tenant's Conditional Access policies through the real msgraph-sdk pipeline
(GraphJson) from the Graph simulator, and keeping them in Table storage (Azurite)."""

from __future__ import annotations

import asyncio
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
    StoredPolicies,
    read_policies,
    refresh,
    table_name,
)
from shared.adapters.graph import GraphJson
from shared.adapters.policy_source import SETTING_DIGEST, CachedPolicies, Mode, in_force
from shared.adapters.store import make_service
from shared.runtime import Runtime
from shared.settings import Settings
from tests.local.test_graphsim_ca_policies import RISK_POLICY, tenant_policies
from tests.shared.core.test_ca_policies import EXAMPLE_1, EXAMPLE_2, EXAMPLE_3

LIST = "GET /identity/conditionalAccess/policies"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def graph(runtime: Runtime) -> GraphJson:
    return runtime.graph_json()


class CountingStore(CaPolicyStore):
    """The real table adapter, counting the loads that reach the table."""

    loads = 0

    async def load(self) -> StoredPolicies | None:
        self.loads += 1
        await asyncio.sleep(0)  # let the other callers pile up behind the first load
        return await super().load()


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[CountingStore]:
    service = make_service(settings)
    adapter = CountingStore(service, table_name(settings))
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


# --- the policies in force, as evaluation loads them (shared/adapters/policy_source.py) -------


def test_in_force_follows_the_source_and_the_read() -> None:
    policies = tuple(tenant_policies())
    good = StoredPolicies(ReadStatus.OK, NOW, "", NOW, policies)
    kept = StoredPolicies(ReadStatus.FAILED, NOW, "timeout", NOW - timedelta(hours=1), policies)
    refused = StoredPolicies(ReadStatus.PERMISSION_MISSING, NOW, "403", NOW, policies)
    never = StoredPolicies(ReadStatus.FAILED, NOW, "down", None, ())
    for source in ("auto", "ca_policies"):
        assert in_force(good, source).policies is not None
        assert in_force(good, source).policies.read_at == NOW  # type: ignore[union-attr]
        assert in_force(kept, source).policies.read_at == NOW - timedelta(hours=1)  # type: ignore[union-attr]
        assert (in_force(refused, source).policies, in_force(refused, source).why) == (
            None,
            "permissionMissing",
        )
        assert in_force(never, source).why == "readFailed"
        assert in_force(None, source).why == "neverRead"
    assert {in_force(s, "ca_policy_setting").mode for s in (good, kept, refused, never, None)} == {
        Mode.CA_POLICY_SETTING
    }
    assert in_force(None, "auto").digest == SETTING_DIGEST
    assert in_force(good, "auto").digest == in_force(kept, "auto").digest != SETTING_DIGEST


async def test_many_concurrent_callers_share_one_load_per_period(store: CountingStore) -> None:
    await store.save(PolicyRead(NOW, ReadStatus.OK, tuple(tenant_policies())))
    clock = [NOW]
    cache = CachedPolicies(store, "auto", lambda: clock[0], ttl=timedelta(minutes=5))

    first = await asyncio.gather(*(cache.current() for _ in range(200)))

    assert store.loads == 1
    assert {id(found) for found in first} == {id(first[0])} and first[0] is not None
    assert len(first[0].policies) == len(tenant_policies())

    await store.save(PolicyRead(NOW, ReadStatus.OK, tuple(tenant_policies()[:3])))
    clock[0] = NOW + timedelta(minutes=4, seconds=59)
    assert (await cache.current()) is first[0]  # within the period: no read
    clock[0] = NOW + timedelta(minutes=5)
    later = await asyncio.gather(*(cache.current() for _ in range(200)))
    assert store.loads == 2
    assert {len(found.policies) for found in later if found is not None} == {3}


async def test_a_refused_read_switches_to_the_setting_and_a_fixed_choice_reads_nothing(
    store: CountingStore,
) -> None:
    assert await CachedPolicies(store, "auto", lambda: NOW).current() is None  # never read
    await store.save(PolicyRead(NOW, ReadStatus.OK, tuple(tenant_policies())))
    await store.save(PolicyRead(NOW, ReadStatus.PERMISSION_MISSING, detail="403"))
    assert await CachedPolicies(store, "auto", lambda: NOW).current() is None
    loads = store.loads
    fixed = CachedPolicies(store, "ca_policy_setting", lambda: NOW)
    assert await fixed.current() is None and store.loads == loads


async def test_a_store_that_cannot_be_read_keeps_the_policies_in_hand(
    settings: Settings, store: CaPolicyStore
) -> None:
    await store.save(PolicyRead(NOW, ReadStatus.OK, tuple(tenant_policies())))
    service = make_service(settings)
    failing = CaPolicyStore(service, table_name(settings))
    clock = [NOW]
    cache = CachedPolicies(failing, "auto", lambda: clock[0], ttl=timedelta(minutes=5))
    held = await cache.current()
    assert held is not None
    await failing.close()  # its HTTP session is gone: every later load raises
    await service.close()
    clock[0] = NOW + timedelta(minutes=6)
    assert await cache.current() is held
    fresh = CachedPolicies(failing, "auto", lambda: NOW)
    assert (await fresh.state()).why == "readFailed" and await fresh.current() is None


async def test_the_fleet_mark_survives_later_reads(store: CaPolicyStore) -> None:
    await store.save(PolicyRead(NOW, ReadStatus.OK, tuple(tenant_policies())))
    await store.mark_fleet("abc")
    await store.save(PolicyRead(NOW + timedelta(hours=1), ReadStatus.FAILED, detail="down"))
    await store.save(PolicyRead(NOW + timedelta(hours=2), ReadStatus.OK, ()))
    stored = await store.load()
    assert stored is not None and stored.fleet_digest == "abc" and stored.policies == ()


def _with(policy: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(policy)
    changed.update(changes)
    return changed


# Graph's documented examples (conditionalaccesspolicy.md, create-policy): MFA only, a block no
# device condition scopes, device controls offered beside MFA (disabled), a risk policy.
ASKS_NOTHING = [EXAMPLE_1, EXAMPLE_2, EXAMPLE_3, RISK_POLICY]
COMPLIANT_GRANT = {"operator": "OR", "builtInControls": ["compliantDevice"]}


@pytest.mark.parametrize(
    ("extra", "auto_why"),
    [
        ([], "noDevicePolicy"),
        # report-only enforces nothing: the setting still judges under auto
        (
            [
                _with(
                    EXAMPLE_1,
                    state="enabledForReportingButNotEnforced",
                    grantControls=COMPLIANT_GRANT,
                )
            ],
            "noDevicePolicy",
        ),
        ([_with(EXAMPLE_1, grantControls=COMPLIANT_GRANT)], "read"),
        ([_with(EXAMPLE_3, state="enabled", grantControls=COMPLIANT_GRANT)], "read"),
    ],
)
def test_under_auto_policies_that_ask_nothing_of_devices_leave_the_setting_to_judge(
    extra: list[dict[str, Any]], auto_why: str
) -> None:
    stored = StoredPolicies(
        ReadStatus.OK, NOW, "", NOW, tuple(copy.deepcopy([*ASKS_NOTHING, *extra]))
    )
    auto = in_force(stored, "auto")
    assert auto.why == auto_why
    assert (auto.mode is Mode.CA_POLICIES) == (auto_why == "read")
    # asked for explicitly, the tenant's policies judge even when they ask nothing of devices
    assert in_force(stored, "ca_policies").mode is Mode.CA_POLICIES
