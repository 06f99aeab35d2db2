"""graphsim against the real msgraph-sdk: reads, Intune, $batch, delta, throttling,
subscription handshakes, change and lifecycle notifications.

The simulator runs as `python -m local.graphsim` in a subprocess (one per module, each
test on its own tenant); notification receivers are aiohttp servers on the test loop, so
the tests talk to the admin API with the async client (a blocking call would stall them).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # pytest's rootdir insertion does not cover the repo root
    sys.path.insert(0, str(REPO))

from kiota_abstractions.base_request_configuration import RequestConfiguration  # noqa: E402
from kiota_abstractions.method import Method  # noqa: E402
from kiota_abstractions.request_information import RequestInformation  # noqa: E402
from msgraph.generated.device_management.managed_devices.managed_devices_request_builder import (  # noqa: E402
    ManagedDevicesRequestBuilder,
)
from msgraph.generated.devices.delta.delta_request_builder import DeltaRequestBuilder  # noqa: E402
from msgraph.generated.devices.item.device_item_request_builder import (  # noqa: E402
    DeviceItemRequestBuilder,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError  # noqa: E402
from msgraph.generated.models.subscription import Subscription  # noqa: E402

from local.graphsim.admin import AsyncSimAdmin, SimAdminError  # noqa: E402
from local.graphsim.entities import DEVICE_PROPS, MANAGED_DEVICE_PROPS  # noqa: E402
from local.graphsim.fleet import generate_fleet  # noqa: E402
from local.graphsim.sdk import make_graph_client  # noqa: E402
from local.ports import free_port, wait_for_port  # noqa: E402

ERRORS: dict[str, Any] = {"XXX": ODataError}


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.graphsim", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert code == 0, proc.stderr.read().decode() if proc.stderr else code


@pytest.fixture
async def admin(sim_url: str) -> AsyncIterator[AsyncSimAdmin]:
    client = AsyncSimAdmin(sim_url, f"tenant-{uuid.uuid4().hex[:10]}")
    await client.ensure()
    yield client
    await client.drop()
    await client.aclose()


@pytest.fixture
def graph(admin: AsyncSimAdmin) -> Any:
    return make_graph_client(admin.graph_url, max_retries=3, retry_delay=0)


class Receiver:
    """Notification endpoint whose behaviour depends on the path: /{mode}/..."""

    def __init__(self) -> None:
        self.validations: list[tuple[str, str, str]] = []  # (mode, token, raw query)
        self.posts: dict[str, list[dict[str, Any]]] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        mode = request.match_info["mode"]
        token = request.query.get("validationToken")
        if token is not None:
            self.validations.append((mode, token, request.raw_path.partition("?")[2]))
            if mode == "forbidden":
                return web.Response(status=403)
            if mode == "wrong":
                return web.Response(text=token + "x", content_type="text/plain")
            if mode == "slow":
                await asyncio.sleep(2)
            return web.Response(text=token, content_type="text/plain")
        self.posts.setdefault(mode, []).append(await request.json())
        return web.Response(status=202)

    def at(self, mode: str) -> str:
        return f"{self.url}/{mode}/{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/{mode}/{tag}", recv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    recv.url = f"http://127.0.0.1:{port}"
    yield recv
    await runner.cleanup()


def _select(*names: str) -> RequestConfiguration[Any]:
    params = DeviceItemRequestBuilder.DeviceItemRequestBuilderGetQueryParameters(select=list(names))
    return RequestConfiguration(query_parameters=params)


def _in(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def _code(error: ODataError) -> str:
    assert error.error is not None and error.error.code is not None
    return error.error.code


def _message(error: ODataError) -> str:
    assert error.error is not None and error.error.message is not None
    return error.error.message


# --- reads -------------------------------------------------------------------------------------


async def test_get_device_with_select(admin: AsyncSimAdmin, graph: Any) -> None:
    created = await admin.upsert_device(
        displayName="LAPTOP-42", isCompliant=False, isManaged=True, trustType="ServerAd"
    )
    device = await graph.devices.by_device_id(created["id"]).get(
        request_configuration=_select("id", "deviceId", "displayName", "isCompliant", "trustType")
    )
    assert device.id == created["id"]
    assert device.device_id == created["deviceId"]
    assert device.display_name == "LAPTOP-42"
    assert device.is_compliant is False
    assert device.trust_type == "ServerAd"
    assert device.operating_system is None  # not selected, so not sent
    context = device.additional_data["@odata.context"]
    assert context.endswith(
        "$metadata#devices(id,deviceId,displayName,isCompliant,trustType)/$entity"
    )


async def test_missing_and_invalid_device(admin: AsyncSimAdmin, graph: Any) -> None:
    with pytest.raises(ODataError) as missing:
        await graph.devices.by_device_id(str(uuid.uuid4())).get()
    assert missing.value.response_status_code == 404
    assert _code(missing.value) == "Request_ResourceNotFound"
    with pytest.raises(ODataError) as invalid:
        await graph.devices.by_device_id("not-a-guid").get()
    assert invalid.value.response_status_code == 400
    with pytest.raises(ODataError) as bad_select:
        await graph.devices.by_device_id(str(uuid.uuid4())).get(
            request_configuration=_select("noSuchProperty")
        )
    assert bad_select.value.response_status_code == 400


async def test_managed_device_by_filter_and_sync(admin: AsyncSimAdmin, graph: Any) -> None:
    device = await admin.upsert_device(displayName="PC-7", isManaged=True, isCompliant=True)
    managed = await admin.upsert_managed_device(
        azureADDeviceId=device["deviceId"],
        deviceName="PC-7",
        complianceState="inGracePeriod",
        managementAgent="configurationManagerClientMdm",
        complianceGracePeriodExpirationDateTime="2030-01-01T00:00:00Z",
    )
    params = ManagedDevicesRequestBuilder.ManagedDevicesRequestBuilderGetQueryParameters(
        filter=f"azureADDeviceId eq '{device['deviceId']}'",
        select=["id", "azureADDeviceId", "complianceState", "managementAgent"],
    )
    page = await graph.device_management.managed_devices.get(
        request_configuration=RequestConfiguration(query_parameters=params)
    )
    assert [m.id for m in page.value] == [managed["id"]]
    assert page.value[0].compliance_state.value == "inGracePeriod"
    assert page.value[0].management_agent.value == "configurationManagerClientMdm"
    one = await graph.device_management.managed_devices.by_managed_device_id(managed["id"]).get()
    assert one.compliance_grace_period_expiration_date_time.year == 2030

    await graph.device_management.managed_devices.by_managed_device_id(
        managed["id"]
    ).sync_device.post()
    calls = (await admin.sync_device_calls())["calls"]
    assert [c["managedDeviceId"] for c in calls] == [managed["id"]]

    with pytest.raises(ODataError) as missing:
        await graph.device_management.managed_devices.by_managed_device_id("nope").get()
    assert missing.value.response_status_code == 404
    # Intune packs its own JSON into error.message.
    assert json.loads(_message(missing.value))["_version"] == 3

    # Intune compliance flows to the Entra device.
    await admin.patch_managed_device(managed["id"], complianceState="noncompliant")
    assert (await admin.device(device["id"]))["device"]["isCompliant"] is False


# --- $batch --------------------------------------------------------------------------------------


async def _post_batch(graph: Any, admin: AsyncSimAdmin, body: dict[str, Any]) -> dict[str, Any]:
    """POST /$batch through the SDK's pipeline (auth, retry) and parse the JSON ourselves."""
    info = RequestInformation()
    info.http_method = Method.POST
    info.url = f"{admin.graph_url}/$batch"
    info.headers.try_add("Content-Type", "application/json")
    info.content = json.dumps(body).encode()
    raw = await graph.request_adapter.send_primitive_async(info, "bytes", ERRORS)
    result: dict[str, Any] = json.loads(raw)
    return result


async def test_batch_of_gets(admin: AsyncSimAdmin, graph: Any) -> None:
    devices = (await admin.upsert_devices([{"displayName": f"B{i}"} for i in range(3)]))["devices"]
    missing = str(uuid.uuid4())
    # The shape msgraph-core's BatchRequestContent serialises: %24-encoded query and
    # "depends_on"; one absolute url as some SDK versions send.
    requests = [
        {
            "id": str(i),
            "method": "GET",
            "url": f"/devices/{d['id']}?%24select=id,displayName",
            "depends_on": [],
            "headers": {"accept": "application/json"},
        }
        for i, d in enumerate(devices)
    ]
    requests.append({"id": "3", "method": "GET", "url": f"{admin.graph_url}/devices/{missing}"})
    result = await _post_batch(graph, admin, {"requests": requests})
    by_id = {r["id"]: r for r in result["responses"]}
    assert [by_id[str(i)]["body"]["displayName"] for i in range(3)] == ["B0", "B1", "B2"]
    assert by_id["3"]["status"] == 404
    assert by_id["3"]["body"]["error"]["code"] == "Request_ResourceNotFound"

    # Throttling inside a batch: the envelope is 200, the items are 429 with Retry-After.
    await admin.add_fault(status=429, count=2, retry_after=7, route="/devices/{id}")
    result = await _post_batch(graph, admin, {"requests": requests[:3]})
    statuses = sorted(r["status"] for r in result["responses"])
    assert statuses == [200, 429, 429]
    throttled = next(r for r in result["responses"] if r["status"] == 429)
    assert throttled["headers"]["Retry-After"] == "7"

    too_many = [{"id": str(i), "method": "GET", "url": "/devices"} for i in range(21)]
    with pytest.raises(ODataError) as over:
        await _post_batch(graph, admin, {"requests": too_many})
    assert over.value.response_status_code == 400
    counts = await admin.requests()
    assert counts["batchItems"] == 7
    assert counts["routes"]["POST /$batch"] == 3


async def test_batch_with_msgraph_core(admin: AsyncSimAdmin, graph: Any) -> None:
    # msgraph-core 1.5.2 imports `deprecated` without declaring it as a dependency.
    pytest.importorskip("deprecated")
    from msgraph.generated.models.device import Device
    from msgraph_core.requests.batch_request_content import BatchRequestContent
    from msgraph_core.requests.batch_request_item import BatchRequestItem

    device = await admin.upsert_device(displayName="CORE-1")
    content = BatchRequestContent()
    info = graph.devices.by_device_id(device["id"]).to_get_request_information(
        _select("id", "displayName")
    )
    content.add_request("a", BatchRequestItem(info, id="a"))
    response = await graph.batch.post(content)
    assert response.get_response_status_codes() == {"a": 200}
    # Real Graph sends JSON bodies as objects, which msgraph-core drops (body None) ...
    assert response.responses["a"].body is None
    # ... and only base64 bodies round-trip into models.
    await admin.settings(batchBodyEncoding="base64")
    response = await graph.batch.post(content)
    parsed = response.get_response_by_id("a", Device)
    assert parsed.display_name == "CORE-1"


# --- delta ---------------------------------------------------------------------------------------


def _delta_config(page_size: int) -> RequestConfiguration[Any]:
    params = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
        select=["displayName", "isCompliant", "accountEnabled"]
    )
    config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=params)
    config.headers.add("Prefer", f"odata.maxpagesize={page_size}")
    return config


async def _drain(graph: Any, first: Any) -> tuple[list[Any], str, int]:
    page, items, pages = first, list(first.value), 1
    while page.odata_next_link:
        assert page.odata_delta_link is None
        page = await graph.devices.delta.with_url(page.odata_next_link).get()
        items.extend(page.value)
        pages += 1
    return items, page.odata_delta_link, pages


async def test_delta_baseline_then_changes(admin: AsyncSimAdmin, graph: Any) -> None:
    await admin.generate(1000, seed=7)
    ids = set((await admin.device_ids())["ids"])
    first = await graph.devices.delta.get(request_configuration=_delta_config(250))
    items, delta_link, pages = await _drain(graph, first)
    assert pages == 4
    assert len(items) == 1000 and {d.id for d in items} == ids  # id always included
    assert delta_link.startswith(admin.graph_url + "/devices/delta?$deltatoken=")

    changed = await admin.mutate(
        10, seed=3, delete_fraction=0.3, soft_delete_fraction=0.2, patch={"isCompliant": False}
    )
    added = await admin.upsert_device(displayName="NEW-ONE")
    page = await graph.devices.delta.with_url(delta_link).get()
    items, delta_link, _ = await _drain(graph, page)
    by_id = {d.id: d for d in items}
    expected = set(changed["updated"]) | set(changed["deleted"]) | set(changed["softDeleted"])
    assert set(by_id) == expected | {added["id"]}
    for object_id in changed["updated"]:
        assert by_id[object_id].is_compliant is False
    for object_id in changed["deleted"]:
        assert by_id[object_id].additional_data["@removed"] == {"reason": "deleted"}
    for object_id in changed["softDeleted"]:
        assert by_id[object_id].additional_data["@removed"] == {"reason": "changed"}
    assert by_id[added["id"]].display_name == "NEW-ONE"

    page = await graph.devices.delta.with_url(delta_link).get()
    assert page.value == [] and page.odata_delta_link

    # $deltatoken=latest: nothing now, later only what changed after it.
    latest = await graph.devices.delta.with_url(
        f"{admin.graph_url}/devices/delta?$deltatoken=latest"
    ).get()
    assert latest.value == [] and latest.odata_delta_link
    await admin.patch_device(added["id"], displayName="RENAMED")
    page = await graph.devices.delta.with_url(latest.odata_delta_link).get()
    assert [(d.id, d.display_name) for d in page.value] == [(added["id"], "RENAMED")]


async def test_expired_delta_token(admin: AsyncSimAdmin, graph: Any) -> None:
    await admin.upsert_device(displayName="X")
    first = await graph.devices.delta.get()
    _, delta_link, _ = await _drain(graph, first)
    await admin.expire_delta_tokens()
    with pytest.raises(ODataError) as expired:
        await graph.devices.delta.with_url(delta_link).get()
    assert expired.value.response_status_code == 400
    assert _code(expired.value) == "syncStateNotFound"

    await admin.settings(deltaTokenExpiredMode="gone")
    first = await graph.devices.delta.get()
    _, delta_link, _ = await _drain(graph, first)
    await admin.expire_delta_tokens()
    with pytest.raises(ODataError) as gone:
        await graph.devices.delta.with_url(delta_link).get()
    assert gone.value.response_status_code == 410


# --- faults ---------------------------------------------------------------------------------------


async def test_throttling_is_retried_by_the_sdk(admin: AsyncSimAdmin, graph: Any) -> None:
    device = await admin.upsert_device(displayName="T")
    await admin.add_fault(status=429, count=1, retry_after=1, route="/devices/{id}")
    started = time.perf_counter()
    got = await graph.devices.by_device_id(device["id"]).get()
    assert got.display_name == "T"
    assert time.perf_counter() - started >= 0.9  # honoured Retry-After: 1

    # Intune-style 429 without Retry-After, then a 503: exponential back-off retries.
    await admin.add_fault(status=429, count=1, path="^/devices/")
    await admin.add_fault(status=503, count=1, path="^/devices/")
    got = await graph.devices.by_device_id(device["id"]).get()
    assert got.display_name == "T"
    counts = await admin.requests()
    assert counts["statuses"] == {"200": 2, "429": 2, "503": 1}

    # Retries exhausted -> the SDK raises the last 429.
    no_retry = make_graph_client(admin.graph_url, max_retries=0, retry_delay=0)
    await admin.add_fault(status=429, count=1, retry_after=1)
    with pytest.raises(ODataError) as throttled:
        await no_retry.devices.by_device_id(device["id"]).get()
    assert throttled.value.response_status_code == 429
    assert _code(throttled.value) == "TooManyRequests"


async def test_latency_and_request_accounting(admin: AsyncSimAdmin) -> None:
    device = await admin.upsert_device(displayName="L")
    await admin.set_latency(150)
    async with httpx.AsyncClient(headers={"Authorization": "Bearer t"}) as http:
        started = time.perf_counter()
        reply = await http.get(f"{admin.graph_url}/devices/{device['id']}")
        assert reply.status_code == 200
        assert time.perf_counter() - started >= 0.14
        await admin.set_latency(0)
        unauthenticated = await http.get(
            f"{admin.graph_url}/devices/{device['id']}", headers={"Authorization": ""}
        )
        assert unauthenticated.status_code == 401
        unknown_tenant = await http.get(f"{admin.base_url}/no-such-tenant/v1.0/devices")
        assert unknown_tenant.status_code == 401
    before = await admin.reset_requests()
    assert before["httpRequests"] == 2
    assert before["routes"] == {"GET /devices/{id}": 1}
    assert (await admin.requests())["httpRequests"] == 0


# --- subscriptions and notifications -------------------------------------------------------------


def _subscription(url: str, lifecycle: str | None = None, minutes: int = 60) -> Subscription:
    return Subscription(
        change_type="updated,deleted",
        notification_url=url,
        lifecycle_notification_url=lifecycle,
        resource="devices",
        expiration_date_time=_in(minutes),
        client_state="s3cret",
    )


async def test_subscription_validation_handshake(
    admin: AsyncSimAdmin, graph: Any, receiver: Receiver
) -> None:
    created = await graph.subscriptions.post(
        _subscription(receiver.at("ok"), lifecycle=receiver.at("lifecycle"))
    )
    assert created.id and created.resource == "devices"
    assert created.client_state == "s3cret"
    tokens = [v for v in receiver.validations if v[0] in ("ok", "lifecycle")]
    assert len(tokens) == 2
    _, token, raw_query = tokens[-1]
    assert token.startswith("Validation: ")
    assert "%" in raw_query and " " not in raw_query  # it had to be URL-encoded

    listed = await graph.subscriptions.get()
    assert [s.id for s in listed.value] == [created.id]

    failures = {
        "forbidden": "HTTP status code is 'Forbidden'",
        "wrong": "Response must exactly match validationToken",
    }
    for mode, text in failures.items():
        with pytest.raises(ODataError) as refused:
            await graph.subscriptions.post(_subscription(receiver.at(mode)))
        assert refused.value.response_status_code == 400
        assert _message(refused.value).startswith("Subscription validation request failed.")
        assert text in _message(refused.value)

    await admin.settings(validationTimeoutSeconds=0.5)
    with pytest.raises(ODataError) as slow:
        await graph.subscriptions.post(_subscription(receiver.at("slow")))
    assert _message(slow.value) == "Subscription validation request timed out."

    with pytest.raises(ODataError) as too_long:
        await graph.subscriptions.post(_subscription(receiver.at("ok"), minutes=41761))
    assert "41760 minutes" in _message(too_long.value)

    await admin.settings(refuseDeviceSubscriptions=403)
    with pytest.raises(ODataError) as refused_resource:
        await graph.subscriptions.post(_subscription(receiver.at("ok")))
    assert refused_resource.value.response_status_code == 403
    assert len((await graph.subscriptions.get()).value) == 1


async def test_notifications_after_device_change(
    admin: AsyncSimAdmin, graph: Any, receiver: Receiver
) -> None:
    url = receiver.at("notify")
    sub = await graph.subscriptions.post(_subscription(url))
    device = await admin.upsert_device(displayName="N", isCompliant=True)
    await admin.patch_device(device["id"], isCompliant=False)
    await admin.delete_device(device["id"])
    flushed = await admin.flush_notifications()
    assert flushed["flushed"] is True
    mine = [
        item
        for post in receiver.posts.get("notify", [])
        for item in post["value"]
        if item["subscriptionId"] == sub.id
    ]
    # creation + patch arrive as "updated" (Entra style), then the delete.
    assert [n["changeType"] for n in mine] == ["updated", "updated", "deleted"]
    first = mine[0]
    assert first["clientState"] == "s3cret"
    assert first["resource"] == f"devices/{device['id']}"
    assert first["tenantId"] == admin.tenant_id  # a GUID, as Graph sends
    assert first["resourceData"] == {
        "@odata.type": "#Microsoft.Graph.Device",
        "@odata.id": f"devices/{device['id']}",
        "id": device["id"],
    }
    log = (await admin.deliveries(kind="change"))["deliveries"]
    assert log and all(entry["status"] == 202 for entry in log)
    assert all(entry["latencyMs"] >= 0 for entry in log)

    # Dropped deliveries: recorded, never sent.
    await admin.settings(notificationsEnabled=False)
    sent_before = len(receiver.posts["notify"])
    other = await admin.upsert_device(displayName="SILENT")
    await admin.flush_notifications()
    assert len(receiver.posts["notify"]) == sent_before
    dropped = (await admin.deliveries(kind="change"))["deliveries"][-1]
    assert dropped["dropped"] is True and dropped["items"][0]["resource"].endswith(other["id"])


async def test_subscription_renew_lifecycle_and_delete(
    admin: AsyncSimAdmin, graph: Any, receiver: Receiver
) -> None:
    lifecycle_url = receiver.at("lifecycle")
    sub = await graph.subscriptions.post(_subscription(receiver.at("ok"), lifecycle_url))
    renewed = await graph.subscriptions.by_subscription_id(sub.id).patch(
        Subscription(expiration_date_time=_in(600))
    )
    assert renewed.expiration_date_time > sub.expiration_date_time
    await graph.subscriptions.by_subscription_id(sub.id).reauthorize.post()

    await admin.send_lifecycle(sub.id, "reauthorizationRequired")
    await admin.send_lifecycle(sub.id, "subscriptionRemoved")
    await admin.flush_notifications()
    events = [
        item["lifecycleEvent"]
        for post in receiver.posts.get("lifecycle", [])
        for item in post["value"]
        if item["subscriptionId"] == sub.id
    ]
    assert events == ["reauthorizationRequired", "subscriptionRemoved"]
    with pytest.raises(ODataError) as removed:
        await graph.subscriptions.by_subscription_id(sub.id).get()
    assert removed.value.response_status_code == 404

    other = await graph.subscriptions.post(_subscription(receiver.at("ok")))
    await graph.subscriptions.by_subscription_id(other.id).delete()
    assert (await graph.subscriptions.get()).value == []
    with pytest.raises(SimAdminError):
        await admin.send_lifecycle(other.id, "missed")


# --- fleet and scale ------------------------------------------------------------------------------


def test_fleet_shape() -> None:
    fleet = generate_fleet(3000, seed=11)
    assert tuple(fleet.devices[0]) == DEVICE_PROPS
    assert set(fleet.managed[0]) == set(MANAGED_DEVICE_PROPS)
    trusts = {d["trustType"] for d in fleet.devices}
    assert trusts == {"AzureAd", "ServerAd", "Workplace"}
    assert any(not d["accountEnabled"] for d in fleet.devices)
    assert any(d["isCompliant"] is False for d in fleet.devices)
    assert {m["complianceState"] for m in fleet.managed} >= {"compliant", "noncompliant"}
    linked = {d["deviceId"] for d in fleet.devices}
    assert all(m["azureADDeviceId"] in linked for m in fleet.managed)
    assert generate_fleet(50, seed=11).devices == generate_fleet(50, seed=11).devices


async def test_large_tenant_stays_cheap(admin: AsyncSimAdmin) -> None:
    started = time.perf_counter()
    result = await admin.generate(100_000, seed=1)
    assert result["created"] == 100_000
    assert time.perf_counter() - started < 15
    async with httpx.AsyncClient(headers={"Authorization": "Bearer t"}) as http:
        url = f"{admin.graph_url}/devices/delta?$deltatoken=latest"
        delta_link = (await http.get(url)).json()["@odata.deltaLink"]
        await admin.mutate(20, seed=4, delete_fraction=0.25)
        started = time.perf_counter()
        reply = (await http.get(delta_link)).json()
        # O(changes): 20 entries out of 100,000 devices.
        assert len(reply["value"]) == 20
        assert time.perf_counter() - started < 0.5
        first = (await http.get(f"{admin.graph_url}/devices/delta?$select=id")).json()
        assert len(first["value"]) == 200 and "@odata.nextLink" in first
