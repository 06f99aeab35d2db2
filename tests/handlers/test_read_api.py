"""GET /api/devices/{id} and GET /api/devices against Azurite, checked against docs/openapi.yaml."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from handlers import read_api
from local.devhost import DevHost
from local.graphsim.admin import SimAdmin
from shared.runtime import Runtime, use_runtime
from tests.cli.seed import INELIGIBLE, Fleet, isolated_settings, seed_fleet

OPENAPI = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text()
)
_REGISTRY = Registry().with_resource(
    "urn:devicemon:openapi", Resource.from_contents(OPENAPI, default_specification=DRAFT202012)
)


def check(path: str, response: func.HttpResponse | httpx.Response) -> dict[str, Any]:
    """The body, after validating it against the document's schema for this path and status."""
    status = str(response.status_code)
    declared = OPENAPI["paths"][path]["get"]["responses"][status]
    if "$ref" in declared:
        declared = OPENAPI["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
    schema = declared["content"]["application/json"]["schema"]
    body = response.json() if isinstance(response, httpx.Response) else _json(response)
    validator = jsonschema.Draft202012Validator(
        {"$ref": "urn:devicemon:openapi#" + schema["$ref"][1:]},
        registry=_REGISTRY,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    validator.validate(body)
    return body


def _json(response: func.HttpResponse) -> Any:
    import json

    assert response.mimetype == "application/json"
    return json.loads(response.get_body())


def get(route_id: str | None = None, **params: str) -> func.HttpRequest:
    url = "http://localhost/api/devices" + (f"/{route_id}" if route_id else "")
    return func.HttpRequest(
        "GET", url, body=b"", params=params, route_params={"id": route_id} if route_id else {}
    )


@pytest.fixture(scope="module")
async def api_and_fleet(stack: Any) -> AsyncIterator[tuple[Runtime, Fleet]]:
    """A fleet seeded once for the module, and the runtime the handlers read it with."""
    tenant = str(uuid.uuid4())
    runtime = Runtime(isolated_settings(stack, tenant))
    with SimAdmin(stack.graph_root, tenant) as sim:
        sim.ensure()
        fleet = await seed_fleet(runtime, sim)
    yield runtime, fleet
    await runtime.close()


@pytest.fixture
def api(api_and_fleet: tuple[Runtime, Fleet]) -> Runtime:
    return api_and_fleet[0]


@pytest.fixture
def fleet(api_and_fleet: tuple[Runtime, Fleet]) -> Fleet:
    return api_and_fleet[1]


def test_the_document_is_valid_openapi_3_1() -> None:
    validate_openapi(OPENAPI)


async def test_device_with_history_newest_first(api: Runtime, fleet: Fleet) -> None:
    laptop = fleet.ids["LAPTOP-0042"]

    body = check("/devices/{id}", await read_api.get_device(get(laptop), api))
    one = check("/devices/{id}", await read_api.get_device(get(laptop, limit="1"), api))

    assert body["device"]["objectId"] == laptop
    assert body["device"]["eligible"] is False
    assert body["device"]["reasons"] == ["NOT_COMPLIANT", "NOT_HYBRID_JOINED"]
    assert body["device"]["lastTransition"] == "lost"
    assert [(h["version"], h["transition"]) for h in body["history"]] == [
        (2, "lost"),
        (1, "first_seen"),
    ]
    assert body["history"][0]["alertId"] and body["history"][1]["alertId"] is None
    assert body["historyTruncated"] is False
    assert [h["version"] for h in one["history"]] == [2] and one["historyTruncated"] is True


async def test_device_id_in_another_case_is_the_same_device(api: Runtime, fleet: Fleet) -> None:
    laptop = fleet.ids["LAPTOP-0042"]

    body = check("/devices/{id}", await read_api.get_device(get(f" {laptop.upper()} "), api))

    assert body["device"]["objectId"] == laptop
    assert [h["version"] for h in body["history"]] == [2, 1]


@pytest.mark.parametrize(
    ("route_id", "params", "status", "code"),
    [
        ("00000000-0000-4000-8000-000000000000", {}, 404, "deviceNotFound"),
        ("LAPTOP-0042", {}, 400, "invalidDeviceId"),
        ("00000000-0000-4000-8000-000000000000", {"limit": "0"}, 400, "invalidParameter"),
    ],
)
async def test_device_errors(
    api: Runtime, route_id: str, params: dict[str, str], status: int, code: str
) -> None:
    response = await read_api.get_device(get(route_id, **params), api)

    assert response.status_code == status
    assert check("/devices/{id}", response)["error"]["code"] == code


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"eligible": "false"}, {"LAPTOP-0042", "PIXEL-BYOD-19", "CAD-WS-11"}),
        ({"joinType": "hybrid_joined", "eligible": "true"}, {"DESKTOP-HR-07", "KIOSK-LOBBY"}),
        ({"reason": "not_compliant"}, {"LAPTOP-0042", "PIXEL-BYOD-19"}),
        ({"os": "android"}, {"PIXEL-BYOD-19"}),
        ({"os": "Windows 8", "eligible": "true"}, {"KIOSK-LOBBY"}),
        ({"os": "windows 6.3"}, {"KIOSK-LOBBY"}),
    ],
)
async def test_filters(api: Runtime, params: dict[str, str], names: set[str]) -> None:
    body = check("/devices", await read_api.list_devices(get(**params), api))

    assert {d["displayName"] for d in body["devices"]} == names
    assert body["count"] == len(names)
    assert body["continuationToken"] is None


@pytest.mark.parametrize("params", [{}, {"os": "windows"}], ids=["table-filter", "row-filter"])
async def test_paging_visits_every_device_once(
    api: Runtime,
    fleet: Fleet,
    params: dict[str, str],
) -> None:
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        extra = {"continuationToken": token} if token else {}
        page = check("/devices", await read_api.list_devices(get(top="2", **params, **extra), api))
        assert len(page["devices"]) <= 2
        seen += [d["objectId"] for d in page["devices"]]
        token = page["continuationToken"]
        if token is None:
            break
    expected = {i for n, i in fleet.ids.items() if n != "PIXEL-BYOD-19" or not params}
    assert sorted(seen) == sorted(expected)
    assert seen == sorted(seen)  # object id order: nothing repeated, nothing skipped


async def test_a_small_scan_budget_answers_short_pages_that_still_add_up(
    api: Runtime,
    fleet: Fleet,
) -> None:
    store = await api.store()
    wanted = fleet.ids["PIXEL-BYOD-19"]
    found, resume, calls = [], None, 0
    while True:
        calls += 1
        rows, resume = await store.page_states(
            None,
            {},
            top=5,
            resume=resume,
            accept=lambda row: row.record.object_id == wanted,
            max_scan=2,
        )
        found += [r.record.object_id for r in rows]
        if resume is None:
            break
    assert found == [wanted]
    assert calls >= 4  # 7 rows, 2 examined per call


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"top": "0"}, "top must be a whole number from 1 to 1000"),
        ({"top": "ten"}, "top must be"),
        ({"eligible": "maybe"}, "eligible must be true or false"),
        ({"joinType": "joined"}, "joinType must be one of"),
        ({"reason": "BROKEN"}, "reason must be one of"),
        ({"continuationToken": "not-a-token"}, "continuationToken is not a token"),
        ({"continuationToken": "eyJ2IjoyfQ"}, "continuationToken is not a token"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    api: Runtime, params: dict[str, str], fragment: str
) -> None:
    response = await read_api.list_devices(get(**params), api)

    assert response.status_code == 400
    assert fragment in check("/devices", response)["error"]["message"]


async def test_routes_need_a_function_key_in_the_function_app(
    api: Runtime,
    fleet: Fleet,
) -> None:
    use_runtime(api)
    try:
        async with (
            DevHost("function_app:app", port=0, only={"http"}, function_keys=["k3y"]) as host,
            httpx.AsyncClient(base_url=host.api_url, timeout=30) as http,
        ):
            anonymous = await http.get("/devices")
            page = await http.get("/devices?eligible=false", headers={"x-functions-key": "k3y"})
            device = await http.get(f"/devices/{fleet.ids['CAD-WS-11']}?code=k3y")
    finally:
        use_runtime(None)

    assert anonymous.status_code == 401
    assert check("/devices", page)["count"] == INELIGIBLE
    assert check("/devices/{id}", device)["device"]["reasons"] == ["DEVICE_DISABLED"]
