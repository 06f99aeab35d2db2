"""graphsim's subscriptions and notifications against the docs: lapsed subscriptions are deleted
(change-notifications-delivery-webhooks.md), `tenantId` is the tenant's GUID in change and
lifecycle notifications (their payload examples), `/devices` subscriptions are refused or
accepted per tenant, and one device's notifications leave in order while different devices'
go in parallel.

The receiver runs on the test loop, so the tests use the async admin client.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from local import stack as local_stack
from local.graphsim.admin import AsyncSimAdmin, scratch_tenant
from local.graphsim.notifications import lane_of
from local.ports import free_port

GUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class Receiver:
    """Answers handshakes; records notification POSTs per path; can hold one POST open."""

    def __init__(self) -> None:
        self.url = ""
        self.posts: dict[str, list[dict[str, Any]]] = {}
        self.open_now: dict[str, int] = {}
        self.most_open: dict[str, int] = {}
        self.hold: dict[str, asyncio.Event] = {}  # path -> released when set
        self.arrived: dict[str, asyncio.Event] = {}

    async def handle(self, request: web.Request) -> web.Response:
        token = request.query.get("validationToken")
        if token is not None:
            return web.Response(text=token, content_type="text/plain")
        tag = request.match_info["tag"]
        self.arrived.setdefault(tag, asyncio.Event()).set()
        self.open_now[tag] = self.open_now.get(tag, 0) + 1
        self.most_open[tag] = max(self.most_open.get(tag, 0), self.open_now[tag])
        body = await request.json()
        if (gate := self.hold.pop(tag, None)) is not None:
            await asyncio.wait_for(gate.wait(), timeout=20)
        self.posts.setdefault(tag, []).append(body)
        self.open_now[tag] -= 1
        return web.Response(status=202)

    def at(self, tag: str) -> str:
        return f"{self.url}/{tag}"

    def items(self, tag: str) -> list[dict[str, Any]]:
        return [item for post in self.posts.get(tag, []) for item in post["value"]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/{tag}", recv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    recv.url = f"http://127.0.0.1:{port}"
    yield recv
    await runner.cleanup()


@pytest.fixture
async def admin(stack: local_stack.Stack) -> AsyncIterator[AsyncSimAdmin]:
    async with scratch_tenant(stack.graph_root, "notify") as client:
        yield client


async def _subscribe(
    admin: AsyncSimAdmin, url: str, lifecycle: str | None = None, minutes: int = 60
) -> httpx.Response:
    body = {
        "changeType": "updated,deleted",
        "notificationUrl": url,
        "resource": "devices",
        "expirationDateTime": (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat(),
        "clientState": "s3cret",
    }
    if lifecycle:
        body["lifecycleNotificationUrl"] = lifecycle
    async with httpx.AsyncClient(headers={"Authorization": "Bearer t"}) as http:
        return await http.post(f"{admin.graph_url}/subscriptions", json=body)


async def test_a_lapsed_subscription_is_deleted_on_the_tenants_clock(
    admin: AsyncSimAdmin, receiver: Receiver
) -> None:
    created = (await _subscribe(admin, receiver.at("lapse"), minutes=60)).json()
    await admin.advance_clock(minutes=59)
    async with httpx.AsyncClient(headers={"Authorization": "Bearer t"}) as http:
        url = f"{admin.graph_url}/subscriptions/{created['id']}"
        assert (await http.get(url)).status_code == 200
        await admin.advance_clock(minutes=2)

        # "If you don't renew a subscription in time, Microsoft Graph deletes the subscription":
        # reading or renewing it is a 404, and no notification goes out for it.
        assert (await http.get(url)).status_code == 404
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        renewal = await http.patch(url, json={"expirationDateTime": later})
        assert renewal.status_code == 404
        assert (await http.get(f"{admin.graph_url}/subscriptions")).json()["value"] == []
    listed = await admin.subscriptions()
    assert listed == {"subscriptions": [], "expired": [created["id"]]}
    await admin.upsert_device(displayName="AFTER")
    await admin.flush_notifications()
    assert receiver.items("lapse") == []

    # The tenant's clock also judges a new expiry: one hour from the wall clock is now past.
    too_early = await _subscribe(admin, receiver.at("lapse"), minutes=60)
    assert too_early.status_code == 400
    assert too_early.json()["error"]["message"] == "Subscription expiration must be in the future."


async def test_tenant_id_is_the_tenants_guid_in_change_and_lifecycle_notifications(
    admin: AsyncSimAdmin, receiver: Receiver
) -> None:
    sub = (await _subscribe(admin, receiver.at("guid"), lifecycle=receiver.at("guid-lc"))).json()
    device = await admin.upsert_device(displayName="G")
    await admin.send_lifecycle(sub["id"], "reauthorizationRequired")
    await admin.flush_notifications()

    (change,) = receiver.items("guid")
    (lifecycle,) = receiver.items("guid-lc")
    assert change["resource"] == f"devices/{device['id']}"
    assert change["tenantId"] == lifecycle["tenantId"] == admin.tenant_id
    assert admin.tenant_id != admin.tenant and uuid.UUID(admin.tenant_id)
    # A tenant named by its GUID keeps it (the stack's tests name tenants that way).
    named = AsyncSimAdmin(admin.base_url, str(uuid.uuid4()).upper())
    assert named.tenant_id == named.tenant.lower()
    await named.aclose()


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            400,
            "Operation: Create; Exception: [Status Code: BadRequest; Reason: Resource 'devices' "
            "is not supported for change notifications.]",
        ),
        (403, "Operation: Create; Exception: [Status Code: Forbidden; Reason: Forbidden]"),
    ],
)
async def test_device_subscriptions_refused_or_accepted_per_tenant(
    admin: AsyncSimAdmin, receiver: Receiver, status: int, message: str
) -> None:
    await admin.refuse_device_subscriptions(status)
    refused = await _subscribe(admin, receiver.at("refused"))
    assert refused.status_code == status
    error = refused.json()["error"]
    assert (error["code"], error["message"]) == ("ExtensionError", message)
    assert set(error["innerError"]) >= {"date", "request-id"}
    assert (await admin.subscriptions())["subscriptions"] == []

    await admin.accept_device_subscriptions()
    accepted = await _subscribe(admin, receiver.at("accepted"))
    assert accepted.status_code == 201 and accepted.json()["resource"] == "devices"
    await admin.upsert_device(displayName="A")
    await admin.flush_notifications()
    assert [item["changeType"] for item in receiver.items("accepted")] == ["updated"]


async def test_one_devices_notifications_wait_for_each_other(
    admin: AsyncSimAdmin, receiver: Receiver
) -> None:
    """The race behind the flaky ordering: with several notification workers, a device's
    "deleted" was POSTed while its earlier "updated" was still unanswered, and overtook it."""
    await _subscribe(admin, receiver.at("one"))
    receiver.hold["one"] = release = asyncio.Event()
    device = await admin.upsert_device(displayName="ORDER")
    await receiver.arrived.setdefault("one", asyncio.Event()).wait()
    await admin.patch_device(device["id"], isCompliant=False)
    await admin.delete_device(device["id"])

    # The creation's POST is held open; the other two wait behind it in the simulator.
    assert (await admin.flush_notifications(timeout_seconds=0))["pending"] == 2
    release.set()
    assert (await admin.flush_notifications())["flushed"] is True
    assert [item["changeType"] for item in receiver.items("one")] == [
        "updated",
        "updated",
        "deleted",
    ]
    assert receiver.most_open["one"] == 1


async def test_different_devices_are_notified_in_parallel(
    admin: AsyncSimAdmin, receiver: Receiver
) -> None:
    lanes = (await admin.settings())["notificationConcurrency"]
    first = str(uuid.uuid4())
    second = next(i for i in (str(uuid.uuid4()) for _ in range(100)) if lane_of(i, lanes) != 0)
    while lane_of(first, lanes) != 0:
        first = str(uuid.uuid4())
    await _subscribe(admin, receiver.at("many"))
    receiver.hold["many"] = gate = asyncio.Event()
    await admin.upsert_device(id=first, displayName="FIRST")
    await receiver.arrived.setdefault("many", asyncio.Event()).wait()
    receiver.arrived["many"].clear()
    await admin.upsert_device(id=second, displayName="SECOND")

    # The second device's POST arrives while the first one's is still held open.
    await receiver.arrived["many"].wait()
    assert receiver.most_open["many"] == 2
    gate.set()
    await admin.flush_notifications()
    assert [item["resource"] for item in receiver.items("many")] == [
        f"devices/{second}",
        f"devices/{first}",
    ]
