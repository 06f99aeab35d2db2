"""docs/openapi.yaml describes every HTTP route function_app.py declares, with its auth, and the
bodies the health and operations routes really send (the read API's are checked in
tests/handlers/test_read_api.py)."""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from handlers import health, upkeep
from shared.adapters.bookkeeping import SubscriptionRecord, SyncState
from shared.runtime import Runtime
from shared.views.health import Delivery, assess

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text("utf-8"))
REGISTRY = Registry().with_resource(
    "urn:devicemon:openapi", Resource.from_contents(OPENAPI, default_specification=DRAFT202012)
)
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def declared_routes() -> dict[tuple[str, str], str]:
    """(path, method) -> auth level, read from function_app.py's decorators (not imported: the
    module configures logging and the runtime when it is)."""
    tree = ast.parse((ROOT / "function_app.py").read_text("utf-8"))
    default = "function"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "FunctionApp":
            for keyword in node.keywords:
                if keyword.arg == "http_auth_level":
                    default = ast.unparse(keyword.value).rsplit(".", 1)[-1].lower()
    routes = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "route":
                kw = {k.arg: k.value for k in decorator.keywords}
                route = ast.literal_eval(kw["route"])
                methods = ast.literal_eval(kw["methods"]) if "methods" in kw else ["GET", "POST"]
                level = (
                    ast.unparse(kw["auth_level"]).rsplit(".", 1)[-1].lower()
                    if "auth_level" in kw
                    else default
                )
                for method in methods:
                    routes[("/" + route, method.lower())] = level
    return routes


def documented_routes() -> dict[tuple[str, str], Any]:
    return {
        (path, method): operation
        for path, item in OPENAPI["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


def schema_for(path: str, method: str, status: int) -> dict[str, Any]:
    declared = OPENAPI["paths"][path][method]["responses"][str(status)]
    if "$ref" in declared:
        declared = OPENAPI["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
    schema: dict[str, Any] = declared["content"]["application/json"]["schema"]
    return schema


def validate(path: str, method: str, status: int, body: Any) -> None:
    """`body` against the document's schema for that response, its references resolved in it."""
    schema = json.loads(
        json.dumps(schema_for(path, method, status)).replace(
            '"#/components', '"urn:devicemon:openapi#/components'
        )
    )
    jsonschema.Draft202012Validator(
        schema,
        registry=REGISTRY,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    ).validate(body)


def test_every_route_of_the_app_is_documented_and_nothing_else() -> None:
    assert set(documented_routes()) == set(declared_routes())


@pytest.mark.parametrize("route", sorted(declared_routes()))
def test_the_documented_authentication_is_the_routes(route: tuple[str, str]) -> None:
    level = declared_routes()[route]
    security = documented_routes()[route].get("security")
    if level == "anonymous":
        assert security == [], "an anonymous route must say it needs no key"
    else:
        assert security is None  # the document's default: a function key
        assert level in ("function", "admin") and OPENAPI["security"]


def test_no_fixed_local_port_is_named() -> None:
    # The dev host picks a free port each run: a fixed one in the document would be wrong.
    text = (ROOT / "docs" / "openapi.yaml").read_text("utf-8")
    assert not re.search(r"(localhost|127\.0\.0\.1|\[::1\]):\d", text)
    assert [s["url"] for s in OPENAPI["servers"]] == ["https://{app}.azurewebsites.net/api"]


SYNCED = SyncState(phase="incremental", last_success_at=NOW - timedelta(minutes=2))
LIVE = SubscriptionRecord(
    subscription_id="sub-1",
    status="active",
    expires_at=NOW + timedelta(days=2),
    last_renewed_at=NOW - timedelta(hours=1),
    last_checked_at=NOW - timedelta(minutes=5),
)
HEALTH_CASES: dict[str, tuple[SyncState, SubscriptionRecord, Delivery, str]] = {
    "healthy": (SYNCED, LIVE, Delivery(dead_letters={"device-changes": 0}), "healthy"),
    "notifications refused": (
        SYNCED,
        SubscriptionRecord(status="refused", last_error="HTTP 400 not supported"),
        Delivery(),
        "degraded",
    ),
    "signals unreadable": (
        SYNCED,
        LIVE,
        Delivery(
            pending_overdue=None,
            failures=None,
            dead_letters=None,
            unreadable=("dead-letter queues could not be read (TimeoutError)",),
        ),
        "degraded",
    ),
    "never synced, dead letters": (
        SyncState(),
        SubscriptionRecord(),
        Delivery(dead_letters={"device-changes": 100}, pending_overdue=3, oldest_pending_at=NOW),
        "unhealthy",
    ),
    "run died holding the lease": (
        SyncState(
            phase="incremental",
            last_success_at=NOW - timedelta(minutes=10),
            run_started_at=NOW - timedelta(minutes=5),
            lease_owner="host:1",
            lease_until=NOW - timedelta(minutes=1),
            last_error="boom",
            last_error_at=NOW - timedelta(minutes=5),
            last_run_seconds=1.5,
        ),
        LIVE,
        Delivery(),
        "degraded",
    ),
}


@pytest.mark.parametrize("case", HEALTH_CASES)
def test_every_health_report_matches_the_document(case: str) -> None:
    sync, subscription, delivery, status = HEALTH_CASES[case]
    report = assess(
        sync,
        subscription,
        now=NOW,
        stale_after=timedelta(minutes=30),
        devices=10,
        ineligible=2,
        delivery=delivery,
    )
    assert report["status"] == status
    validate("/health", "get", 503 if status == "unhealthy" else 200, report)


def post(path: str) -> func.HttpRequest:
    return func.HttpRequest("POST", f"http://localhost/api{path}", body=b"", params={})


async def test_the_health_route_answers_as_documented(runtime: Runtime) -> None:
    response = await health.health(
        func.HttpRequest("GET", "http://localhost/api/health", body=b""), runtime
    )
    assert response.status_code == 503  # a fresh tenant has never synced
    validate("/health", "get", 503, json.loads(response.get_body()))


async def test_the_operations_answer_as_documented(runtime: Runtime) -> None:
    for path, command in (("/ops/sync", "sync"), ("/ops/subscription", "ensure_subscription")):
        queued = await upkeep.queue_command(post(path), command, runtime)
        assert queued.status_code == 202
        body = json.loads(queued.get_body())
        validate(path, "post", 202, body)
        assert body["queued"] == command

    books = await runtime.bookkeeping()
    await books.acquire_sync("other-host:1", "run-1", datetime.now(UTC), timedelta(seconds=60))
    busy = await upkeep.queue_command(post("/ops/sync"), "sync", runtime)
    assert busy.status_code == 409
    validate("/ops/sync", "post", 409, json.loads(busy.get_body()))
