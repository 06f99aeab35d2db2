"""A Conditional Access policy change re-evaluates the fleet through the normal pipeline, and a
change that blocks many devices is one mass event in Teams, not a card per device.

Real stack: the Graph simulator serves the policies (conditionalaccessroot-list-policies.md
shapes) and the devices, read through the msgraph-sdk; the policy timer's work
(handlers/policies.py) stores them in Azurite and queues the fleet on the local broker through
the azure-servicebus SDK; each queued change goes through the Pipeline (Graph re-read, Table
storage, alert topic); the Teams consumer posts to the local Workflows stand-in.

The queue is consumed in the test's process rather than by the dev host's session triggers: the
path a change takes is the same, without a second or so of session receivers per device.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers.policies import reevaluation_delay, refresh_policies
from local.graphsim.admin import SimAdmin
from local.graphsim.ca_policies import set_ca_policies
from local.teams_sink import TeamsSink, describe_card
from shared.core.alert_view import parse_alert
from shared.core.changes import DeviceChange
from shared.core.models import Source
from shared.runtime import Runtime
from shared.settings import Settings
from shared.sources.policy_change import reevaluate_fleet
from shared.sources.sync import DeltaSync
from tests.graph_helpers import hybrid_fleet
from tests.servicebus_helpers import body_json, drain_sessions, drain_subscription
from tests.shared.core.test_ca_policies_tenant import policy

# With TEAMS_MASS_THRESHOLD 10 a storm's first summary comes with the 10th alert and the next
# only when it has grown fourfold (40): 36 devices give exactly one summary, and a few seconds of
# suite time. A policy that blocks 3,000 devices takes the same path.
FLEET = 36
MASS_THRESHOLD = 10
COMPLIANT_OR_HYBRID = policy(
    1, "CA01 Compliant or hybrid joined", ["compliantDevice", "domainJoinedDevice"]
)
WINDOWS_COMPLIANT = policy(
    2,
    "CA02 Windows compliant",
    ["compliantDevice"],
    platforms={"includePlatforms": ["windows"], "excludePlatforms": []},
)


@pytest.fixture
async def sink() -> AsyncIterator[TeamsSink]:
    async with TeamsSink() as running:
        yield running


@pytest.fixture
async def rt(settings: Settings, sink: TeamsSink) -> AsyncIterator[Runtime]:
    # Workers read the policies for every evaluation: the re-evaluation is queued at once.
    runtime = Runtime(
        replace(
            settings,
            teams_webhook_url=sink.url("policy"),
            teams_mass_threshold=MASS_THRESHOLD,
            policy_cache_seconds=0,
        )
    )
    yield runtime
    await runtime.close()


class Processing:
    """A change sink that runs each change through the runtime's pipeline (the delta sync's
    baseline, without the queue)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def send(self, changes: Iterable[DeviceChange]) -> int:
        pipeline = await self._rt.pipeline()
        done = await asyncio.gather(*(pipeline.process(c) for c in changes))
        return len(done)


async def take_queue(rt: Runtime, connection: str) -> list[DeviceChange]:
    """Every change on the queue, taken off it."""
    # One session per device: many session receivers at once, as the host's 32 sessions do.
    messages = await asyncio.to_thread(
        drain_sessions, connection, rt.settings.device_changes_queue, 0.5, 32
    )
    return [DeviceChange.from_json(str(message)) for message in messages]


async def process_queue(rt: Runtime, connection: str) -> list[DeviceChange]:
    """Every change on the queue, run through the pipeline as the processor would."""
    changes = await take_queue(rt, connection)
    await Processing(rt).send(changes)
    return changes


async def judged(rt: Runtime, ids: list[str]) -> Counter[tuple[bool | None, str]]:
    store = await rt.store()
    rows = [await store.get_state(i) for i in ids]
    return Counter((r.record.eligible, r.record.judged_by) for r in rows if r is not None)


async def test_a_policy_that_blocks_the_fleet_gives_each_device_a_lost_alert_and_one_summary(
    rt: Runtime, sim: SimAdmin, stack: Any, sink: TeamsSink
) -> None:
    connection = stack.service_bus_connection
    devices = hybrid_fleet(FLEET)  # hybrid joined, no Intune compliance
    ids = [d["id"] for d in devices]
    await asyncio.to_thread(sim.upsert_devices, devices, False)
    set_ca_policies(sim, [copy.deepcopy(COMPLIANT_OR_HYBRID)])
    await refresh_policies(rt)  # the first read: no device known yet, nothing to queue

    sync = DeltaSync(graph=rt.graph_json(), books=await rt.bookkeeping(), sink=Processing(rt))
    assert (await sync.run("baseline")).outcome == "completed"
    assert await judged(rt, ids) == {(True, "ca_policies"): FLEET}

    # An admin adds a policy: Windows devices must be compliant. Every device fails it.
    set_ca_policies(sim, [copy.deepcopy(COMPLIANT_OR_HYBRID), copy.deepcopy(WINDOWS_COMPLIANT)])
    sim.reset_requests()
    await refresh_policies(rt)
    queued = await process_queue(rt, connection)

    assert sorted(c.device_id for c in queued) == sorted(ids)  # once each
    assert {(c.source, c.facts) for c in queued} == {(Source.REPLAY, None)}
    assert await judged(rt, ids) == {(False, "ca_policies"): FLEET}
    # The price of a bare hint: one read of each device (and of the policies), nothing else.
    routes = sim.requests()["routes"]
    assert routes == {"GET /identity/conditionalAccess/policies": 1, "GET /devices/{id}": FLEET}
    alerts = [
        body_json(m)
        for m in await asyncio.to_thread(
            drain_subscription, connection, rt.settings.device_alerts_topic, "teams", 1.0
        )
    ]
    assert Counter(a["type"] for a in alerts) == {"devicemon.eligibility.lost": FLEET}
    assert {a["data"]["detection"]["source"] for a in alerts} == {"replay"}
    assert {
        tuple(p["displayName"] for p in a["data"]["current"]["blockingPolicies"]) for a in alerts
    } == {("CA02 Windows compliant",)}

    # The Teams consumer takes the alerts 16 at a time, as host.json's maxConcurrentCalls lets it.
    notifier = await rt.teams_notifier()
    calls = asyncio.Semaphore(16)

    async def consume(alert: dict[str, Any]) -> None:
        async with calls:
            await notifier.handle(parse_alert(alert), 0)

    await asyncio.gather(*(consume(a) for a in alerts))
    cards = [describe_card(card) for card in sink.cards("policy")]
    summaries = [c for c in cards if "MASS EVENT" in c]
    assert len(summaries) == 1, cards
    # At most the cards of the alerts that came before the storm was recognised.
    assert len(cards) - 1 < rt.settings.teams_mass_threshold, cards

    # The same policies read again: nothing changed, nothing queued.
    await refresh_policies(rt)
    assert await process_queue(rt, connection) == []


async def ids(values: list[str]) -> AsyncIterator[str]:
    for value in values:
        yield value


@pytest.mark.parametrize(
    ("cache_seconds", "delay"),
    [(0, timedelta(0)), (1, timedelta(seconds=11)), (300, timedelta(seconds=310))],
)
def test_the_fleet_waits_for_every_worker_to_hold_the_new_policies(
    cache_seconds: int, delay: timedelta
) -> None:
    assert reevaluation_delay(cache_seconds) == delay


async def test_the_fleet_is_queued_in_pages_at_once_or_scheduled(rt: Runtime, stack: Any) -> None:
    connection = stack.service_bus_connection
    devices = [str(uuid.uuid4()) for _ in range(5)]
    queue = rt.change_queue().with_timeout(None)
    now = datetime.now(UTC)

    later = await reevaluate_fleet(
        ids(devices), queue, digest="d1", now=now, delay=timedelta(hours=1), page=2
    )
    at_once = await reevaluate_fleet(
        ids(devices), queue, digest="d2", now=now, delay=timedelta(0), page=2
    )

    assert (later, at_once) == (5, 5)
    # Only the ones sent at once are there: the scheduled ones become visible in an hour.
    queued = await take_queue(rt, connection)
    assert sorted(c.device_id for c in queued) == sorted(devices)
    assert {c.correlation_id for c in queued} == {"policies-d2"}
    assert len({c.message_id for c in queued}) == 5
