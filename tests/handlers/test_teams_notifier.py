"""The Teams consumer against a local Workflows stand-in (local/teams_sink.py) and Azurite:
cards for lost and restored, retries, dead-lettering, flapping and mass events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from handlers import teams_notifier
from local.graphsim.admin import SimAdmin
from local.teams_sink import Reply, TeamsSink
from shared.adapters.store import make_service
from shared.consumers.teams import (
    TeamsClient,
    TeamsNotifier,
    TeamsRejected,
    TeamsUnavailable,
    noise_settings,
    retry_after,
)
from shared.consumers.teams_store import DeliveryStatus, TeamsStore
from shared.core.alert_view import AlertFormatError, parse_alert
from shared.core.models import Source
from shared.retry import RetriesExhausted, RetryPolicy
from shared.runtime import Runtime
from shared.settings import Settings
from tests.alert_helpers import T0, as_message, make_alert
from tests.graph_helpers import add_device
from tests.servicebus_helpers import drain_subscription
from tests.shared.consumers.consumer_host import consumer_host
from tests.shared.consumers.risk_alerts import policy, risk_alert, with_policies
from tests.shared.consumers.test_teams_cards import check
from tests.shared.processing.test_pipeline import alerts, change
from tests.shared.processing.test_pipeline_risk import SimClock, later, pipeline_on
from tests.shared.processing.test_pipeline_risk import iso as sim_iso


@pytest.fixture
async def sink() -> AsyncIterator[TeamsSink]:
    async with TeamsSink() as running:
        yield running


@pytest.fixture
def teams_settings(settings: Settings, sink: TeamsSink) -> Settings:
    return replace(
        settings,
        teams_webhook_url=sink.url(settings.table_prefix),
        teams_mass_threshold=5,
        teams_mass_window_minutes=10,
    )


@pytest.fixture
async def rt(teams_settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime(teams_settings)
    yield runtime
    await runtime.close_alert_consumers()
    await runtime.close()


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def build(teams_settings: Settings) -> AsyncIterator[Callable[..., TeamsNotifier]]:
    """A TeamsNotifier on its own clock (for windows measured in arrival time)."""
    service = make_service(teams_settings)
    store = TeamsStore(service, f"{teams_settings.table_prefix}TeamsNoise")
    await store.ensure_table()
    client = TeamsClient(teams_settings.teams_webhook_url or "")

    def make(clock: Clock, **noise: Any) -> TeamsNotifier:
        return TeamsNotifier(client, store, replace(noise_settings(teams_settings), **noise), clock)

    yield make
    await client.close()
    await store.close()
    await service.close()


def hook(rt: Runtime) -> str:
    return rt.settings.table_prefix


def labels(sink: TeamsSink, name: str) -> list[str]:
    return [card["body"][0]["items"][0]["text"] for card in sink.cards(name)]


async def test_lost_and_restored_alerts_become_two_different_cards(
    rt: Runtime, sink: TeamsSink
) -> None:
    lost = make_alert(reasons=("NOT_COMPLIANT", "NOT_HYBRID_JOINED"))
    restored = make_alert(
        lost=False,
        reasons=("NOT_COMPLIANT", "NOT_HYBRID_JOINED"),
        object_id=lost["data"]["device"]["objectId"],
        at=T0 + timedelta(hours=2),
    )

    first = await teams_notifier.handle(as_message(lost), rt)
    second = await teams_notifier.handle(as_message(restored), rt)

    assert first is not None and first.status is DeliveryStatus.POSTED
    assert second is not None and second.decision == "card"
    cards = sink.cards(hook(rt))
    for card in cards:
        check(card)
    assert labels(sink, hook(rt)) == ["🔴 LOST ELIGIBILITY", "🟢 ELIGIBILITY RESTORED"]
    assert [c["body"][0]["style"] for c in cards] == ["attention", "good"]


async def test_a_redelivered_alert_is_posted_once(rt: Runtime, sink: TeamsSink) -> None:
    alert = make_alert()
    for delivery in range(3):
        await teams_notifier.handle(as_message(alert, delivery), rt)
    assert len(sink.posts(hook(rt))) == 1


@pytest.mark.parametrize(
    "replies",
    [
        [Reply(429, retry_after="1")],
        [Reply(429), Reply(503), Reply(500), Reply(502)],
        [Reply(504, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"), Reply(408)],
    ],
)
async def test_throttling_and_server_errors_are_retried(
    rt: Runtime, sink: TeamsSink, replies: list[Reply]
) -> None:
    sink.script(hook(rt), *replies)
    result = await teams_notifier.handle(as_message(make_alert()), rt)
    assert result is not None and result.status is DeliveryStatus.POSTED
    assert [a.status for a in sink.attempts(hook(rt))] == [r.status for r in replies] + [202]
    assert len(sink.posts(hook(rt))) == 1


async def test_retry_after_reaches_the_retry_policy(sink: TeamsSink) -> None:
    sink.script("ra", Reply(429, retry_after="7"), Reply(429, retry_after="3600"))
    client = TeamsClient(sink.url("ra"), retry=RetryPolicy(attempts=1))
    with pytest.raises(RetriesExhausted) as once:
        await client.post({"type": "message"})
    assert isinstance(once.value.__cause__, TeamsUnavailable)
    assert once.value.__cause__.retry_after == 7.0
    patient = TeamsClient(sink.url("ra"), retry=RetryPolicy(attempts=5, max_retry_after=60))
    with pytest.raises(RetriesExhausted, match="wait 3600s"):  # longer than a lock is worth
        await patient.post({"type": "message"})
    assert len(sink.attempts("ra")) == 2
    await client.close()
    await patient.close()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), ("0", 0.0), ("-3", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_header_forms(header: str | None, seconds: float | None) -> None:
    assert retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 30.0


async def test_retries_running_out_fail_the_message_and_the_redelivery_posts_once(
    rt: Runtime, sink: TeamsSink
) -> None:
    sink.set_default(hook(rt), Reply(503))
    alert = make_alert()
    with pytest.raises(RetriesExhausted):
        await teams_notifier.handle(as_message(alert), rt)
    sink.set_default(hook(rt), Reply(202))
    await teams_notifier.handle(as_message(alert, 1), rt)
    await teams_notifier.handle(as_message(alert, 2), rt)
    assert len(sink.posts(hook(rt))) == 1


async def test_a_permanent_4xx_fails_every_delivery_with_the_reason_and_never_the_url(
    rt: Runtime, sink: TeamsSink, caplog: pytest.LogCaptureFixture
) -> None:
    url = rt.settings.teams_webhook_url or ""
    sink.set_default(hook(rt), Reply(400, f'{{"error": "Flow is turned off", "echo": "{url}"}}'))
    alert = make_alert()
    caplog.set_level(logging.INFO, logger="devicemon")

    for delivery in range(3):
        with pytest.raises(TeamsRejected) as rejected:
            await teams_notifier.handle(as_message(alert, delivery), rt)
        assert rejected.value.status == 400
        assert "Flow is turned off" in str(rejected.value)
        assert url not in str(rejected.value)

    assert len(sink.attempts(hook(rt))) == 1  # later deliveries do not post again
    stored = await (await rt.teams_notifier()).store.get_delivery(alert["id"])
    assert stored is not None and stored.status is DeliveryStatus.REJECTED
    assert stored.rejected_status == 400 and "Flow is turned off" in stored.rejected_reason
    assert url not in stored.rejected_reason
    events = [r for r in caplog.records if r.getMessage().startswith("teams_post_rejected")]
    assert len(events) == 3
    assert all(url not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "url", [None, "", "ftp://teams.example/x", "http://flow.example/x?sig=s3cret"]
)
async def test_an_unusable_url_is_a_configuration_message_not_a_crash_loop(
    settings: Settings, url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = Runtime(replace(settings, teams_webhook_url=url))
    caplog.set_level(logging.INFO, logger="devicemon")
    assert await teams_notifier.handle(as_message(make_alert()), runtime) is None
    (event,) = [r for r in caplog.records if r.getMessage().startswith("teams_not_configured")]
    assert "TEAMS_WEBHOOK_URL" in event.getMessage()
    assert "s3cret" not in caplog.text
    assert runtime._tables is None  # nothing else was touched


async def test_a_body_that_is_no_alert_is_poison(rt: Runtime) -> None:
    with pytest.raises(AlertFormatError):
        await teams_notifier.handle(as_message('{"type": "something.else"}'), rt)


# --- noise control ------------------------------------------------------------------------------


async def test_a_flapping_device_gets_one_flapping_card_then_a_card_with_what_was_skipped(
    build: Callable[..., TeamsNotifier], sink: TeamsSink, teams_settings: Settings
) -> None:
    notifier = build(Clock(T0), mass_threshold=100)
    device = "11111111-2222-3333-4444-555555555555"
    for minute in range(7):  # lost, restored, lost, ... one a minute
        alert = make_alert(
            lost=minute % 2 == 0, object_id=device, at=T0 + timedelta(minutes=minute)
        )
        await notifier.handle(parse_alert(alert))
    calm = make_alert(lost=True, object_id=device, at=T0 + timedelta(minutes=70))
    await notifier.handle(parse_alert(calm))

    name = teams_settings.table_prefix
    assert labels(sink, name) == [
        "🔴 LOST ELIGIBILITY",
        "🟢 ELIGIBILITY RESTORED",
        "🔴 LOST ELIGIBILITY",
        "🟠 FLAPPING",
        "🔴 LOST ELIGIBILITY",
    ]
    for card in sink.cards(name):
        check(card)
    flapping = sink.cards(name)[3]
    assert "changed eligibility 4 times in 60 minutes" in flapping["body"][0]["items"][1]["text"]
    assert "3 earlier change(s) of this device were not posted" in str(sink.cards(name)[4])


async def test_a_mass_event_is_summarised_instead_of_a_card_per_device(
    build: Callable[..., TeamsNotifier], sink: TeamsSink, teams_settings: Settings
) -> None:
    clock = Clock(datetime.now(UTC))
    notifier = build(clock)
    alerts = [make_alert(name=f"PC-{i:03d}") for i in range(30)]
    for alert in alerts:  # 30 devices lose eligibility within a minute
        await notifier.handle(parse_alert(alert))
    name = teams_settings.table_prefix
    assert labels(sink, name) == ["🔴 LOST ELIGIBILITY"] * 4 + ["🟠 MASS EVENT"] * 2
    start, update = sink.cards(name)[4:]
    assert start["body"][0]["items"][1]["text"] == "5 devices changed eligibility within 10 minutes"
    assert update["body"][0]["items"][1]["text"].startswith("Mass event continues: 20 devices")

    clock.now += timedelta(minutes=11)  # the storm is over; the next alert closes it
    await notifier.handle(parse_alert(make_alert(name="PC-LATE")))
    end, own = sink.cards(name)[6:]
    assert end["body"][0]["items"][0]["text"] == "🟢 MASS EVENT OVER"
    assert end["body"][1]["facts"][0] == {"title": "Lost eligibility", "value": "30"}
    assert own["body"][0]["items"][1]["text"].startswith("PC-LATE")
    for card in sink.cards(name):
        check(card)


async def test_concurrent_consumers_post_one_summary_for_a_storm(
    build: Callable[..., TeamsNotifier], sink: TeamsSink, teams_settings: Settings
) -> None:
    notifier = build(Clock(datetime.now(UTC)))
    alerts = [parse_alert(make_alert(name=f"PC-{i:03d}")) for i in range(16)]
    await asyncio.gather(*(notifier.handle(a) for a in alerts))
    found = labels(sink, teams_settings.table_prefix)
    assert found.count("🟠 MASS EVENT") == 1
    assert found.count("🔴 LOST ELIGIBILITY") <= 4


# --- through function_app in the dev host --------------------------------------------------------


async def test_a_rejected_card_ends_in_the_dead_letter_queue(
    rt: Runtime,
    sink: TeamsSink,
    stack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = rt.settings.device_alerts_topic
    sink.set_default(hook(rt), Reply(404, "The workflow was deleted"))
    alert = make_alert()
    async with consumer_host(rt, stack, monkeypatch, "teams_alert"):
        caplog.set_level(logging.INFO, logger="devicemon")
        await rt.publisher().publish(alert)
        deadline = asyncio.get_running_loop().time() + 60
        while caplog.text.count("teams_post_rejected") < 10:  # the max delivery count
            assert asyncio.get_running_loop().time() < deadline, "not rejected 10 times"
            await asyncio.sleep(0.05)
        dead: list[Any] = []
        while not dead:
            assert asyncio.get_running_loop().time() < deadline, "not dead-lettered"
            dead = await asyncio.to_thread(
                drain_subscription, stack.service_bus_connection, topic, "teams", 0.5, True
            )
    assert [m.message_id for m in dead] == [alert["id"]]
    assert dead[0].dead_letter_reason == "MaxDeliveryCountExceeded"
    assert len(sink.attempts(hook(rt))) == 1
    stored = await (await rt.teams_notifier()).store.get_delivery(alert["id"])
    assert stored is not None and stored.rejected_reason == "The workflow was deleted"


async def test_the_sink_answers_like_workflows(sink: TeamsSink) -> None:
    async with httpx.AsyncClient() as http:
        bad = await http.post(sink.url("x"), json={"text": "MessageCard"})
        good = await http.post(sink.url("x"), json={"type": "message", "attachments": []})
    assert bad.status_code == 400 and good.status_code == 400
    assert sink.posts("x") == []


# --- early warnings (issue 12 item 4) ------------------------------------------------------------


async def test_an_at_risk_alert_is_an_amber_card_and_its_clearing_a_green_one(
    rt: Runtime, sink: TeamsSink
) -> None:
    at_risk = risk_alert(("GRACE_PERIOD_ENDING",))
    cleared = risk_alert(
        ("GRACE_PERIOD_ENDING",),
        cleared=True,
        object_id=at_risk["data"]["device"]["objectId"],
        at=T0 + timedelta(hours=5),
    )
    first = await teams_notifier.handle(as_message(at_risk), rt)
    again = await teams_notifier.handle(as_message(at_risk, 1), rt)
    second = await teams_notifier.handle(as_message(cleared), rt)

    assert first is not None and first.decision == "at-risk-card"
    assert again is not None and again.status is DeliveryStatus.POSTED
    assert second is not None and second.decision == "cleared-card"
    assert labels(sink, hook(rt)) == ["🟠 AT RISK", "🟢 NO LONGER AT RISK"]
    amber, green = sink.cards(hook(rt))
    for card in (amber, green):
        check(card)
    assert [amber["body"][0]["style"], green["body"][0]["style"]] == ["warning", "good"]
    assert "Access ends **2026-12-01 15:00:00 UTC**" in str(amber)


async def test_a_burst_of_at_risk_alerts_is_summarised_and_folded_clearings_stay_quiet(
    build: Callable[..., TeamsNotifier], sink: TeamsSink, teams_settings: Settings
) -> None:
    """A tenant shortening its validity period puts many devices at risk at once: one summary
    instead of a card each; a device whose warning was folded into it gets no lone green card
    when its risk goes away, one whose amber card was posted does."""
    clock = Clock(datetime.now(UTC))
    notifier = build(clock)
    alerts = [risk_alert(("CHECKIN_OVERDUE",), name=f"PC-{i:03d}") for i in range(30)]
    for alert in alerts:
        await notifier.handle(parse_alert(alert))
    name = teams_settings.table_prefix
    assert labels(sink, name) == ["🟠 AT RISK"] * 4 + ["🟠 MASS EVENT"] * 2
    start = sink.cards(name)[4]
    assert start["body"][0]["items"][1]["text"] == "5 devices were put at risk within 10 minutes"
    assert "share **CHECKIN_OVERDUE**" in str(start)

    def cleared(index: int) -> Any:
        device = alerts[index]["data"]["device"]
        return parse_alert(
            risk_alert(
                ("CHECKIN_OVERDUE",),
                cleared=True,
                object_id=device["objectId"],
                name=device["displayName"],
            )
        )

    clock.now += timedelta(minutes=11)  # the burst is over: the next alert closes it
    closing = await notifier.handle(cleared(10))  # folded: the final summary, no green card
    quiet = await notifier.handle(cleared(11))
    posted = await notifier.handle(cleared(0))  # its amber card was posted: a green one
    assert closing.decision == "mass-end+cleared-folded"
    assert quiet.decision == "cleared-folded" and quiet.status is DeliveryStatus.SUPPRESSED
    assert posted.decision == "cleared-card"
    assert labels(sink, name)[6:] == ["🟢 MASS EVENT OVER", "🟢 NO LONGER AT RISK"]
    end = sink.cards(name)[6]
    assert {"title": "At risk (still eligible)", "value": "30"} in end["body"][1]["facts"]
    for card in sink.cards(name):
        check(card)


async def test_a_policy_change_that_blocks_many_devices_is_one_summary_naming_the_policy(
    build: Callable[..., TeamsNotifier], sink: TeamsSink, teams_settings: Settings
) -> None:
    notifier = build(Clock(datetime.now(UTC)))
    blocking = [policy("Require compliant device for all users", "users")]
    for i in range(8):
        alert = with_policies(make_alert(name=f"PC-{i:03d}", reasons=("NOT_COMPLIANT",)), blocking)
        await notifier.handle(parse_alert(alert))
    name = teams_settings.table_prefix
    assert labels(sink, name) == ["🔴 LOST ELIGIBILITY"] * 4 + ["🟠 MASS EVENT"]
    lost, summary = sink.cards(name)[0], sink.cards(name)[4]
    assert "**Require compliant device for all users** (for the users it selects)" in str(lost)
    assert "5 of 5 are blocked by **Require compliant device for all users**" in str(summary)


async def test_a_loss_after_a_folded_warning_still_gets_its_card(
    build: Callable[..., TeamsNotifier], sink: TeamsSink, teams_settings: Settings
) -> None:
    clock = Clock(datetime.now(UTC))
    notifier = build(clock, mass_threshold=2)
    first, folded = (risk_alert(name=f"PC-{i}") for i in range(2))
    for alert in (first, folded):
        await notifier.handle(parse_alert(alert))
    clock.now += timedelta(minutes=11)
    lost = make_alert(object_id=folded["data"]["device"]["objectId"], name="PC-1")
    result = await notifier.handle(parse_alert(lost))
    assert result.decision == "mass-end+card"
    assert labels(sink, teams_settings.table_prefix)[-1] == "🔴 LOST ELIGIBILITY"


async def test_risk_alerts_reach_teams_through_the_topic(
    rt: Runtime, sink: TeamsSink, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published on the broker's topic, read by function_app's teams_alert in the dev host."""
    at_risk = risk_alert(("INTUNE_ENTRA_MISMATCH",), deadline=None)
    cleared = risk_alert(
        ("INTUNE_ENTRA_MISMATCH",), cleared=True, object_id=at_risk["data"]["device"]["objectId"]
    )
    async with consumer_host(rt, stack, monkeypatch, "teams_alert"):
        deadline = asyncio.get_running_loop().time() + 60
        for alert in (at_risk, cleared):
            await rt.publisher().publish(alert)  # one at a time: the cleared follows its warning
            posted = len(sink.posts(hook(rt)))
            while len(sink.posts(hook(rt))) == posted:
                assert asyncio.get_running_loop().time() < deadline, f"no card for {alert['type']}"
                await asyncio.sleep(0.05)
    amber, green = sink.cards(hook(rt))
    assert amber["body"][0]["items"][1]["text"].endswith("at any moment")
    assert green["body"][0]["items"][0]["text"] == "🟢 NO LONGER AT RISK"


async def test_the_pipelines_warning_counts_down_on_the_tenants_clock(
    teams_settings: Settings, sink: TeamsSink, sim: SimAdmin, stack: Any
) -> None:
    """The at_risk alert the pipeline raises when Intune puts a device in a two-day grace period
    (the simulator's timeline), posted by a runtime on the tenant's clock: the card counts down
    from the tenant's now, not the machine's."""
    clock = SimClock(sim)
    runtime = Runtime(teams_settings, clock=clock)
    try:
        pipeline, _ = await pipeline_on(runtime, clock)
        device = add_device(sim, name="LAPTOP-GRACE")
        await pipeline.process(change(device["id"], Source.SYNC))
        clock.advance(days=3)  # far from the machine's time: a wrong clock would show
        expires = later(clock, timedelta(days=2, hours=5, minutes=30))
        sim.enter_grace(device["managedId"], expires=sim_iso(expires))
        await pipeline.process(change(device["id"], Source.INTUNE_WATCH))
        (alert,) = alerts(runtime, stack)
        result = await teams_notifier.handle(as_message(alert), runtime)
    finally:
        await runtime.close_alert_consumers()
        await runtime.close()
    assert result is not None and result.decision == "at-risk-card"
    (card,) = sink.cards(hook(runtime))
    check(card)
    assert card["body"][0]["items"][1]["text"] == (
        "LAPTOP-GRACE will lose device-based Conditional Access in 2 days 5 hours"
    )
    assert f"Access ends **{expires:%Y-%m-%d %H:%M:%S} UTC** (in 2 days 5 hours)" in str(card)
    assert "GRACE_PERIOD_ENDING" in str(card)
