"""/api/health says which mode the tenant is in, against the Graph simulator playing either world:
accepting the /devices subscription (its validation handshake reaches our webhook in the dev
host), or refusing it with Graph's documented error body (errors.md: code, message, innerError)."""

from __future__ import annotations

import pytest

from local.graphsim.admin import SimAdmin
from shared.runtime import Runtime
from tests.health_helpers import health_report

# The subscription tests' runtime: its notification URLs point at a dev host, so an accepted
# subscription's validation handshake reaches our real webhook.
from tests.shared.sources.test_subscription import upkeep_runtime

__all__ = ["upkeep_runtime"]


async def test_accepted_subscription_is_notifications_and_delta(
    upkeep_runtime: Runtime, sim: SimAdmin
) -> None:
    sim.accept_device_subscriptions()
    await (await upkeep_runtime.delta_sync()).run("test")
    record = await (await upkeep_runtime.subscription_keeper()).ensure()

    status, report = await health_report(upkeep_runtime)

    assert status == 200
    detection = report["detection"]
    assert detection["mode"] == "notifications+delta"
    assert record.subscription_id in detection["explanation"]
    assert detection["subscriptionError"] is None
    assert not any("notifications unavailable" in p for p in report["problems"])


@pytest.mark.parametrize(
    ("refusal", "graphs_words"),
    [
        (400, "is not supported for change notifications"),
        (403, "Reason: Forbidden"),
    ],
)
async def test_refused_subscription_is_delta_only_with_graphs_error(
    upkeep_runtime: Runtime, sim: SimAdmin, refusal: int, graphs_words: str
) -> None:
    sim.refuse_device_subscriptions(status=refusal)
    await (await upkeep_runtime.delta_sync()).run("test")
    record = await (await upkeep_runtime.subscription_keeper()).ensure()

    status, report = await health_report(upkeep_runtime)

    assert status == 200 and report["status"] == "degraded"
    detection = report["detection"]
    assert detection["mode"] == "delta-only"
    assert detection["subscriptionError"].startswith(f"HTTP {refusal} ExtensionError: ")
    assert graphs_words in detection["subscriptionError"]
    assert graphs_words in detection["explanation"]
    assert record.last_checked_at is not None
    assert detection["lastTriedAt"] == record.last_checked_at.isoformat().replace("+00:00", "Z")
    assert detection["lastTriedAt"] in detection["explanation"]


async def test_accepted_after_refusal_returns_to_notifications(
    upkeep_runtime: Runtime, sim: SimAdmin
) -> None:
    await (await upkeep_runtime.delta_sync()).run("test")
    keeper = await upkeep_runtime.subscription_keeper()
    sim.refuse_device_subscriptions(status=400)
    await keeper.ensure()
    sim.accept_device_subscriptions()
    await keeper.ensure()

    _, report = await health_report(upkeep_runtime)

    assert report["detection"]["mode"] == "notifications+delta"
    assert report["detection"]["subscriptionError"] is None
