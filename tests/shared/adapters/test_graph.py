"""The Graph adapter: error codes nested as errors.md describes, and Intune's managed devices read
as one paged list (against the simulator, through the real msgraph-sdk pipeline)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kiota_serialization_json.json_parse_node import JsonParseNode
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from local.graphsim.admin import SimAdmin
from shared.adapters.graph import error_codes, managed_device_pages
from shared.runtime import Runtime


def parsed(body: dict[str, Any]) -> ODataError:
    return JsonParseNode(json.loads(json.dumps(body))).get_object_value(ODataError)


@pytest.mark.parametrize(
    ("body", "codes"),
    [
        # errors.md's own example: innerError holds request-id and date, no code.
        (
            {
                "error": {
                    "code": "invalidRange",
                    "message": "Uploaded fragment overlaps with existing data.",
                    "innerError": {"request-id": "request-id", "date": "date-time"},
                }
            },
            ["invalidRange"],
        ),
        # "The innererror object might recursively contain more innererror objects".
        (
            {
                "error": {
                    "code": "badRequest",
                    "innererror": {"code": "resyncRequired", "innererror": {"code": "deeper"}},
                }
            },
            ["badRequest", "resyncRequired", "deeper"],
        ),
        (
            {"error": {"code": "a", "innerError": {"code": "b", "innerError": {"code": "c"}}}},
            ["a", "b", "c"],
        ),
        ({"error": {"message": "no code"}}, []),
    ],
)
def test_every_nested_error_code_is_found(body: dict[str, Any], codes: list[str]) -> None:
    assert error_codes(parsed(body)) == codes


def test_a_pathological_nesting_is_bounded() -> None:
    inner: dict[str, Any] = {"code": "bottom"}
    for depth in range(200):
        inner = {"code": f"level{depth}", "innererror": inner}
    codes = error_codes(parsed({"error": {"code": "top", "innererror": inner}}))
    assert codes[0] == "top" and len(codes) <= 40


async def test_managed_devices_are_read_as_one_paged_list(runtime: Runtime, sim: SimAdmin) -> None:
    sim.generate(1300, seed=5)
    total = sim.managed_devices(limit=1)["total"]
    assert total > 1000  # more than one of Intune's pages
    sim.reset_requests()

    pages = [page async for page in managed_device_pages(runtime.graph_json())]

    assert [len(p) for p in pages] == [1000, total - 1000]
    assert sim.requests()["routes"] == {"GET /deviceManagement/managedDevices": 2}
    assert {"id", "azureADDeviceId", "complianceState"} <= pages[0][0].keys()


async def test_warm_authenticates_without_sending_a_request(
    runtime: Runtime, sim: SimAdmin
) -> None:
    sim.reset_requests()
    await runtime.graph_json().warm()
    assert sim.requests()["httpRequests"] == 0
