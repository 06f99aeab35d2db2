"""graphsim's `/devices/delta` against what Microsoft documents (concepts/delta-query-overview.md,
api-reference/v1.0/api/device-delta.md, concepts/errors.md): changed properties only, the same
device on two pages of one round, varying page sizes, tokens that expire after seven days on a
clock the test moves, and the synchronization reset (410 Gone with a Location header).

Wire payloads are read with httpx (what Graph sends, untouched); the 410 goes through the real
msgraph-sdk so its error model and response headers are what a client sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from local import stack as local_stack
from local.graphsim.admin import AsyncSimAdmin, scratch_tenant
from local.graphsim.entities import DEVICE_PROPS
from local.graphsim.sdk import make_graph_client

SELECT = "displayName,isCompliant,accountEnabled"


@pytest.fixture
async def admin(stack: local_stack.Stack) -> AsyncIterator[AsyncSimAdmin]:
    async with scratch_tenant(stack.graph_root, "delta") as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers={"Authorization": "Bearer t"}, timeout=30) as client:
        yield client


async def _get(http: httpx.AsyncClient, url: str, page_size: int | None = None) -> Any:
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    reply = await http.get(url, headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


async def _round(
    http: httpx.AsyncClient, url: str, page_size: int | None = None
) -> tuple[list[list[dict[str, Any]]], str]:
    """Every page of one round (item lists) and the deltaLink that ends it."""
    pages = []
    while True:
        body = await _get(http, url, page_size)
        pages.append(body["value"])
        if "@odata.deltaLink" in body:
            return pages, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


async def _devices(admin: AsyncSimAdmin, count: int) -> list[str]:
    created = await admin.upsert_devices(
        [{"displayName": f"PC-{n}", "isCompliant": True} for n in range(count)], notify=False
    )
    return [device["id"] for device in created["devices"]]


def _ids(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [item["id"] for page in pages for item in page]


async def test_an_update_carries_the_id_and_only_the_changed_properties(
    admin: AsyncSimAdmin, http: httpx.AsyncClient
) -> None:
    (first,) = await _devices(admin, 1)
    pages, link = await _round(http, f"{admin.graph_url}/devices/delta?$select={SELECT}")
    assert pages == [
        [{"id": first, "displayName": "PC-0", "isCompliant": True, "accountEnabled": True}]
    ]

    # "Updated instances are represented by their id with at least the properties that have
    # been updated": exactly those here.
    await admin.patch_device(first, isCompliant=False)
    pages, link = await _round(http, link)
    assert pages == [[{"id": first, "isCompliant": False}]]

    # A change to a property outside $select does not make the device appear.
    await admin.patch_device(first, model="Surface Laptop 7")
    pages, link = await _round(http, link)
    assert pages == [[]]

    # A device created since the last round comes whole ("standard representation").
    created = await admin.upsert_device(displayName="NEW-1", isCompliant=None)
    pages, link = await _round(http, link)
    assert pages == [
        [{"id": created["id"], "displayName": "NEW-1", "isCompliant": None, "accountEnabled": True}]
    ]

    # The knob sends the whole selection for updates instead.
    await admin.delta_changed_properties_only(False)
    await admin.patch_device(first, accountEnabled=False)
    pages, _ = await _round(http, link)
    assert pages == [
        [{"id": first, "displayName": "PC-0", "isCompliant": False, "accountEnabled": False}]
    ]


async def test_without_select_an_update_is_partial_and_a_creation_whole(
    admin: AsyncSimAdmin, http: httpx.AsyncClient
) -> None:
    (first,) = await _devices(admin, 1)
    _, link = await _round(http, f"{admin.graph_url}/devices/delta")
    await admin.patch_device(first, displayName="PC-RENAMED", accountEnabled=False)
    created = await admin.upsert_device(displayName="NEW-2")
    pages, _ = await _round(http, link)
    by_id = {item["id"]: item for item in pages[0]}
    assert by_id[first] == {"id": first, "displayName": "PC-RENAMED", "accountEnabled": False}
    assert tuple(by_id[created["id"]]) == DEVICE_PROPS


async def test_a_device_changed_between_pages_comes_again_in_the_same_round(
    admin: AsyncSimAdmin, http: httpx.AsyncClient
) -> None:
    ids = await _devices(admin, 5)
    base = f"{admin.graph_url}/devices/delta?$select={SELECT}"
    page = await _get(http, base, page_size=2)
    assert [item["id"] for item in page["value"]] == ids[:2]
    await admin.patch_device(ids[0], isCompliant=False)
    rest, link = await _round(http, page["@odata.nextLink"], page_size=2)
    # The baseline goes on past its snapshot with what changed meanwhile, so ids[0] is on
    # two pages of this round: "the same item can show up anywhere in the nextLink sequence".
    assert _ids(rest) == [*ids[2:], ids[0]]
    assert rest[-1][-1] == {"id": ids[0], "isCompliant": False}
    assert (await _round(http, link))[0] == [[]]

    # The same within a round of changes.
    await admin.patch_devices([{"id": i, "displayName": f"X-{i[:4]}"} for i in ids[1:4]])
    page = await _get(http, link, page_size=2)
    assert [item["id"] for item in page["value"]] == ids[1:3]
    await admin.patch_device(ids[1], isCompliant=False)
    rest, _ = await _round(http, page["@odata.nextLink"], page_size=2)
    assert _ids(rest) == [ids[3], ids[1]]
    assert rest[0][1] == {"id": ids[1], "displayName": f"X-{ids[1][:4]}", "isCompliant": False}


async def test_forced_repeats_send_the_tail_of_each_page_again(
    admin: AsyncSimAdmin, http: httpx.AsyncClient
) -> None:
    ids = await _devices(admin, 5)
    await admin.force_delta_repeats(1)
    pages, _ = await _round(http, f"{admin.graph_url}/devices/delta?$select={SELECT}", 2)
    assert [[item["id"] for item in page] for page in pages] == [
        ids[0:2],
        ids[1:3],
        ids[2:4],
        ids[3:5],
    ]
    assert pages[0][1] == pages[1][0]  # a repeat is the same item, not a different state


async def test_page_sizes_vary_within_the_clients_maximum(
    admin: AsyncSimAdmin, http: httpx.AsyncClient
) -> None:
    ids = await _devices(admin, 10)
    await admin.delta_page_sizes([3, 1, 2])
    pages, _ = await _round(http, f"{admin.graph_url}/devices/delta?$select=id")
    assert [len(page) for page in pages] == [3, 1, 2, 3, 1]
    pages, _ = await _round(http, f"{admin.graph_url}/devices/delta?$select=id", page_size=2)
    assert [len(page) for page in pages] == [2, 1, 2, 2, 1, 2]
    assert _ids(pages) == ids


async def test_a_delta_token_expires_after_seven_days_of_the_tenants_clock(
    admin: AsyncSimAdmin, http: httpx.AsyncClient
) -> None:
    await _devices(admin, 1)
    _, old = await _round(http, f"{admin.graph_url}/devices/delta?$select=id")
    await admin.advance_clock(days=6, hours=23)
    _, fresh = await _round(http, old)  # still valid at 6 days 23 hours
    await admin.advance_clock(hours=2)

    expired = await http.get(old)
    assert expired.status_code == 400
    error = expired.json()["error"]
    assert error["code"] == "syncStateNotFound"
    assert "expired" in error["message"]
    assert (await http.get(fresh)).status_code == 200  # two hours old


async def test_an_expired_token_in_gone_mode_is_a_410_with_location_and_nested_code(
    admin: AsyncSimAdmin,
) -> None:
    ids = await _devices(admin, 3)
    graph: Any = make_graph_client(admin.graph_url, max_retries=0, retry_delay=0)
    async with httpx.AsyncClient(headers={"Authorization": "Bearer t"}) as http:
        _, link = await _round(http, f"{admin.graph_url}/devices/delta?$select={SELECT}")
    await admin.settings(deltaTokenExpiredMode="gone")
    await admin.advance_clock(days=8)

    with pytest.raises(ODataError) as gone:
        await graph.devices.delta.with_url(link).get()
    assert gone.value.response_status_code == 410
    headers = {k.lower(): v for k, v in (gone.value.response_headers or {}).items()}
    location = headers["location"]
    location = next(iter(location)) if isinstance(location, list | set | tuple) else location
    assert location == f"{admin.graph_url}/devices/delta?$select={SELECT}&$deltatoken="
    assert gone.value.error is not None and gone.value.error.inner_error is not None
    codes = [gone.value.error.code, gone.value.error.inner_error.additional_data.get("code")]
    assert codes == ["syncStateNotFound", "resyncRequired"]

    # The Location is the initial query again: a full sync with the same $select.
    page = await graph.devices.delta.with_url(location).get()
    assert [device.id for device in page.value] == ids
    assert page.value[0].display_name == "PC-0" and page.value[0].operating_system is None


async def test_a_synchronization_reset_is_a_410_in_every_mode(
    admin: AsyncSimAdmin, http: httpx.AsyncClient
) -> None:
    await _devices(admin, 1)
    first = await _get(http, f"{admin.graph_url}/devices/delta?$select=id", page_size=1)
    _, link = await _round(http, f"{admin.graph_url}/devices/delta")
    await admin.reset_delta_sync()
    for url in (link, first["@odata.deltaLink"]):
        reply = await http.get(url)
        assert reply.status_code == 410
        assert reply.json()["error"]["innerError"]["code"] == "resyncRequired"
    assert (await http.get(link)).headers["Location"].endswith("/devices/delta?$deltatoken=")
