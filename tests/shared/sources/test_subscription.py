"""Subscription upkeep against the Graph simulator, whose validation handshake reaches our real
webhook and lifecycle routes in the dev host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from local.devhost import DevHost
from local.graphsim.admin import SimAdmin
from shared.runtime import Runtime, use_runtime


@pytest.fixture
async def upkeep_runtime(
    runtime: Runtime, stack, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runtime]:
    use_runtime(runtime)
    try:
        async with DevHost("function_app:app", port=0, only={"http"}) as host:
            settings = replace(
                runtime.settings,
                notification_url=f"{host.api_url}/graph/notifications",
                lifecycle_notification_url=f"{host.api_url}/graph/lifecycle",
            )
            rt = Runtime(settings)
            yield rt
            await rt.close()
    finally:
        use_runtime(None)


async def test_created_with_the_handshake_then_left_alone_while_fresh(
    upkeep_runtime: Runtime, sim: SimAdmin
) -> None:
    keeper = await upkeep_runtime.subscription_keeper()
    created = await keeper.ensure()
    again = await keeper.ensure()

    assert created.status == "active" and created.subscription_id
    assert again.subscription_id == created.subscription_id
    assert again.last_renewed_at == created.last_renewed_at
    (live,) = sim.subscriptions()["subscriptions"]
    assert live["id"] == created.subscription_id
    assert live["resource"] == "devices" and live["changeType"] == "updated,deleted"
    assert live["lifecycleNotificationUrl"].endswith("/api/graph/lifecycle")
    validations = sim.deliveries(0, "validation")["deliveries"]
    assert len(validations) == 2 and all(v.get("status") == 200 for v in validations)


async def test_renewed_when_close_to_expiry(upkeep_runtime: Runtime, sim: SimAdmin) -> None:
    keeper = await upkeep_runtime.subscription_keeper()
    created = await keeper.ensure()
    soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    sim.set_subscription_expiry(created.subscription_id, soon)

    renewed = await keeper.ensure()

    assert renewed.subscription_id == created.subscription_id
    assert renewed.expires_at is not None and renewed.expires_at > datetime.now(UTC) + timedelta(
        days=2
    )
    assert renewed.last_renewed_at is not None and renewed.last_renewed_at > created.last_renewed_at  # type: ignore[operator]


async def test_recreated_when_gone_and_after_subscription_removed(
    upkeep_runtime: Runtime, sim: SimAdmin
) -> None:
    keeper = await upkeep_runtime.subscription_keeper()
    first = await keeper.ensure()
    sim.remove_subscription(first.subscription_id)

    second = await keeper.ensure()
    third = await keeper.recreate()

    assert second.status == third.status == "active"
    assert len({first.subscription_id, second.subscription_id, third.subscription_id}) == 3
    assert [s["id"] for s in sim.subscriptions()["subscriptions"]] == [third.subscription_id]


async def test_reauthorized(upkeep_runtime: Runtime, sim: SimAdmin) -> None:
    keeper = await upkeep_runtime.subscription_keeper()
    created = await keeper.ensure()
    sim.reset_requests()
    record = await keeper.reauthorize(created.subscription_id)
    assert record.status == "active"
    assert sim.requests()["routes"].get("POST /subscriptions/{id}/reauthorize") == 1


@pytest.mark.parametrize("refusal", [400, 403])
async def test_refused_resource_is_recorded_with_graphs_words(
    upkeep_runtime: Runtime, sim: SimAdmin, refusal: int
) -> None:
    sim.settings(refuseDeviceSubscriptions=refusal)
    record = await (await upkeep_runtime.subscription_keeper()).ensure()
    assert record.status == "refused"
    assert record.last_error.startswith(f"HTTP {refusal}")
    assert sim.subscriptions()["subscriptions"] == []


async def test_a_gone_subscription_is_forgotten_when_its_replacement_is_refused(
    upkeep_runtime: Runtime, sim: SimAdmin
) -> None:
    keeper = await upkeep_runtime.subscription_keeper()
    first = await keeper.ensure()
    sim.remove_subscription(first.subscription_id)
    sim.refuse_device_subscriptions(403)

    refused = await keeper.ensure()
    sim.reset_requests()
    again = await keeper.ensure()

    assert (refused.status, refused.subscription_id, refused.expires_at) == ("refused", "", None)
    assert (again.status, again.subscription_id) == ("refused", "")
    # The next run asks Graph to create, not about the id it already said was gone.
    assert sim.requests()["routes"] == {"POST /subscriptions": 1}


async def test_no_notification_url_is_a_clear_status(runtime: Runtime, sim: SimAdmin) -> None:
    record = await (await runtime.subscription_keeper()).ensure()
    assert record.status == "error" and "NOTIFICATION_URL" in record.last_error
