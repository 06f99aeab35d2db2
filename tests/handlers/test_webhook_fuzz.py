"""Property-based fuzzing of the two anonymous Graph routes: whatever arrives, 2xx or 4xx.

`POST /api/graph/notifications` and `POST /api/graph/lifecycle` answer anyone on the internet
(Graph cannot send a function key). Any body, query string and content type must get a 2xx or a
4xx while the queue is healthy: a 5xx is an anonymous crash, and for one of Graph's own POSTs it
means redelivery for hours. The strategies mix the shapes fuzzing the running dev host found
(non-ASCII and lone-surrogate clientState, ids over Service Bus's 128 characters, integers over
4,300 digits, nesting ~1,000 deep, oversized bodies) with Graph-shaped notifications that carry
the right clientState and tenant, so examples reach the queueing code, not only the rejections.

The first test calls the handlers as the worker would (fast, many examples); the second sends
real HTTP through the dev host serving function_app (framing, percent-encoded query strings,
Content-Length), with fewer examples. Both send to the real local broker.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aiohttp
import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from yarl import URL

from handlers import lifecycle, webhook
from handlers.responses import MAX_VALIDATION_TOKEN_CHARS
from local.devhost import DevHost
from shared.runtime import Runtime, use_runtime
from shared.settings import Settings
from tests.conftest import ARTIFACTS, CLIENT_STATE
from tests.servicebus_helpers import drain_sessions

set_hypothesis_home_dir(ARTIFACTS / "hypothesis")  # its caches stay out of the work tree

LIMIT = 16_384  # a small MAX_NOTIFICATION_BYTES, so that oversized bodies stay cheap to make
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
FUZZ = settings(
    max_examples=200,
    deadline=None,  # the first send opens the AMQP link (~0.5 s); timing is not the property
    database=None,  # a fresh search each run: this is a fuzz, not a regression replay
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
Handler = Callable[[func.HttpRequest, Runtime], Coroutine[Any, Any, func.HttpResponse]]
ROUTES: dict[str, Handler] = {
    "notifications": webhook.notifications,
    "lifecycle": lifecycle.lifecycle,
}

# --- text and JSON values -------------------------------------------------------------------

# Any code point, lone surrogates included: JSON "\udXXX" escapes decode to them.
LONE_SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
TEXT = st.one_of(st.text(max_size=30), LONE_SURROGATES)
OVER_128 = st.integers(129, 400).map(lambda n: "x" * n)
JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=10,
)
GUIDS = st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper())
# Numbers json.loads refuses (ValueError past 4,300 digits): raw JSON text, spliced into bodies.
HUGE_INT = st.integers(4301, 6000).map(lambda n: "-" * (n % 2) + "9" * n)


class Raw(str):
    """A JSON text to splice in verbatim (json.dumps cannot write an over-long integer)."""


def _raws(value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Raw):
        yield f"@raw:{id(value)}", str(value)
    elif isinstance(value, list):
        for item in value:
            yield from _raws(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _raws(item)


def _mark(value: Any) -> Any:
    """Replace Raw values by unique string markers that encode() swaps back."""
    if isinstance(value, Raw):
        return f"@raw:{id(value)}"
    if isinstance(value, list):
        return [_mark(v) for v in value]
    if isinstance(value, dict):
        return {k: _mark(v) for k, v in value.items()}
    return value


def encode(value: Any, ascii_only: bool) -> bytes:
    text = json.dumps(_mark(value), ensure_ascii=ascii_only)
    for marker, raw in _raws(value):
        text = text.replace(json.dumps(marker), raw, 1)
    return text.encode("utf-8", "surrogatepass")


# --- notification items -----------------------------------------------------------------------


def graph_item(tenant: str, device: str, lifecycle_event: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "subscriptionId": str(uuid.uuid4()),
        "subscriptionExpirationDateTime": "2026-12-20T00:00:00Z",
        "clientState": CLIENT_STATE,
        "changeType": "updated",
        "resource": f"Devices/{device}",
        "tenantId": tenant,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Device",
            "@odata.id": f"Devices/{device}",
            "id": device,
        },
    }
    if lifecycle_event is not None:
        item["lifecycleEvent"] = lifecycle_event
        del item["resourceData"]
    return item


def hostile(tenant: str) -> st.SearchStrategy[Any]:
    """Values for one field of an otherwise valid notification."""
    return st.one_of(
        TEXT,
        OVER_128,
        JSON_VALUE,
        HUGE_INT.map(Raw),
        st.just(CLIENT_STATE + "\udc80"),
        st.just("s\u00e9cret-\u2603"),
        st.just(tenant.upper()),
        st.just("../../subscriptions"),
        GUIDS.map(lambda g: f"{g}\n"),
        st.sampled_from(["created", "DELETED", "missed", "subscriptionRemoved", "x" * 200]),
        st.fixed_dictionaries(
            {"@odata.type": st.sampled_from(["#microsoft.graph.device", "#Microsoft.Graph.User"])},
            optional={"id": st.one_of(GUIDS, TEXT, OVER_128)},
        ),
    )


def items(tenant: str) -> st.SearchStrategy[Any]:
    """Graph-shaped notifications, most with one field replaced by something hostile."""
    valid = st.builds(
        graph_item,
        st.just(tenant),
        GUIDS,
        st.one_of(
            st.none(), st.sampled_from(["missed", "reauthorizationRequired", "subscriptionRemoved"])
        ),
    )
    fields = st.sampled_from(
        [
            "id",
            "subscriptionId",
            "clientState",
            "changeType",
            "resource",
            "tenantId",
            "resourceData",
            "lifecycleEvent",
        ]
    )

    def perturb(item: dict[str, Any], key: str, value: Any, keep: bool) -> Any:
        if keep:
            return item
        if value is ...:  # drawn as "leave the field out"
            item.pop(key, None)
        else:
            item[key] = value
        return item

    return st.one_of(
        st.builds(perturb, valid, fields, st.one_of(hostile(tenant), st.just(...)), st.booleans()),
        JSON_VALUE,
    )


# --- whole requests ---------------------------------------------------------------------------


def bodies(tenant: str) -> st.SearchStrategy[bytes]:
    collection = st.lists(items(tenant), max_size=4).map(lambda v: {"value": v})
    return st.one_of(
        st.builds(encode, collection, st.just(True)),
        st.builds(encode, collection, st.booleans()),  # raw lone surrogates: not UTF-8
        st.builds(encode, JSON_VALUE, st.just(True)),
        st.binary(max_size=200),
        st.just(b""),
        HUGE_INT.map(lambda n: f'{{"value": [{n}]}}'.encode()),
        st.integers(900, 3000).map(lambda d: b'{"value": ' + b"[" * d + b"]" * d + b"}"),
        st.integers(900, 3000).map(
            lambda d: b'{"value": [' + b'{"a":' * d + b"1" + b"}" * d + b"]}"
        ),
        st.integers(LIMIT - 2, LIMIT + 64).map(lambda n: b'{"value": []}'.ljust(n)),
    )


def queries() -> st.SearchStrategy[dict[str, str]]:
    token = st.one_of(
        TEXT,
        st.integers(MAX_VALIDATION_TOKEN_CHARS - 2, MAX_VALIDATION_TOKEN_CHARS + 2).map(
            lambda n: "V" * n
        ),
        st.just("Validation: Testing client application reachability for subscription "),
    )
    return st.one_of(
        st.just({}),
        st.dictionaries(TEXT, TEXT, max_size=3),
        st.builds(
            lambda t, extra: {**extra, "validationToken": t},
            token,
            st.dictionaries(TEXT, TEXT, max_size=2),
        ),
    )


CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=utf-16",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ]
    ),
    TEXT,
)


def content_lengths(body: bytes) -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.just(str(len(body))),
        st.none(),
        st.sampled_from(["0", "-1", "\u00b2", "9" * 5000, str(LIMIT + 1), " 12 "]),
        TEXT,
    )


def named_bodies(tenant: str) -> list[bytes]:
    """The shapes the issues name: they run every time, whatever Hypothesis draws besides."""

    def with_field(lifecycle_event: str | None, **field: Any) -> bytes:
        return encode(
            {"value": [{**graph_item(tenant, str(uuid.uuid4()), lifecycle_event), **field}]}, True
        )

    return [
        with_field(None),  # queued on the notification route
        with_field("missed"),  # queued on the lifecycle route
        encode({"value": [graph_item(tenant, "d" * 200, None)]}, True),  # was a 503
        with_field(None, id="n" * 200),
        with_field(None, clientState="\ud800"),  # was a 500
        with_field("missed", clientState="\udfff\u00e9"),  # was a 500
        with_field(None, clientState="s\u00e9cret"),
        b'{"value": [' + b"1" * 4301 + b"]}",  # was a 500
        b'{"value": ' + b"[" * 1000 + b"]" * 1000 + b"}",  # was a 500
        b'{"value": []}'.ljust(LIMIT + 1),
    ]


HANDSHAKE = "Validation: Testing client application reachability for subscription Request-Id: 1"


# --- the properties ---------------------------------------------------------------------------


@pytest.fixture
def fuzz_settings(settings: Settings) -> Settings:
    return replace(settings, max_notification_bytes=LIMIT)


def check(response: func.HttpResponse, query: dict[str, str], seen: Counter[int]) -> None:
    status = response.status_code
    seen[status] += 1
    assert 200 <= status < 500, f"answered {status}: {response.get_body()[:300]!r}"
    if status == 200:  # only the handshake answers 200, and with the token as received
        assert response.get_body().decode() == query["validationToken"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def assert_queued_messages_are_sane(fuzz_settings: Settings, stack: Any) -> None:
    # Up to a session per example: more readers than the helper's default take them sooner.
    messages = drain_sessions(
        stack.service_bus_connection, fuzz_settings.device_changes_queue, workers=20
    )
    assert messages, "no example reached the queue: the strategies only exercise rejections"
    for message in messages:
        session = str(message.session_id)
        assert session == "devicemon-control" or GUID.fullmatch(session), session
        assert len(str(message.message_id)) <= 128


def test_any_request_to_either_route_is_answered_2xx_or_4xx(
    fuzz_settings: Settings, tenant: str, stack: Any
) -> None:
    # A loop of the test's own (cleaned up like asyncio.run's): Hypothesis calls a plain function.
    runner = asyncio.Runner()
    runtime = Runtime(fuzz_settings)
    seen: Counter[int] = Counter()

    def run(route: str, body: bytes, query: dict[str, str], headers: dict[str, str]) -> None:
        request = func.HttpRequest(
            "POST", f"http://localhost/api/graph/{route}", headers=headers, params=query, body=body
        )
        check(runner.run(ROUTES[route](request, runtime)), query, seen)

    named = named_bodies(tenant)

    @FUZZ
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        route = data.draw(st.sampled_from(sorted(ROUTES)), label="route")
        body = data.draw(st.one_of(st.sampled_from(named), bodies(tenant)), label="body")
        query = data.draw(queries(), label="query")
        headers = {"content-type": data.draw(CONTENT_TYPES, label="content-type")}
        length = data.draw(content_lengths(body), label="content-length")
        if length is not None:
            headers["content-length"] = length
        run(route, body, query, headers)

    try:
        for route in ROUTES:
            run(route, b"", {"validationToken": HANDSHAKE}, {})
            for body in named:
                run(route, body, {}, {"content-type": "application/json"})
        fuzz()
    finally:
        runner.run(runtime.close())
        runner.close()
    assert {200, 202, 400, 413} <= set(seen), seen
    assert_queued_messages_are_sane(fuzz_settings, stack)


# --- through the dev host ---------------------------------------------------------------------


@contextmanager
def dev_host(fuzz_settings: Settings) -> Iterator[tuple[asyncio.Runner, DevHost]]:
    """function_app served over HTTP, its body limit set as infra/ sets the host's."""
    runtime = Runtime(fuzz_settings)
    use_runtime(runtime)
    host = DevHost("function_app:app", port=0, only={"http"}, max_body_size=LIMIT)
    with asyncio.Runner() as runner:
        try:
            runner.run(host.start())
            yield runner, host
        finally:
            runner.run(host.stop())
            runner.run(runtime.close())
            use_runtime(None)


def percent_encoded(text: str) -> str:
    # Lone surrogates become bytes no UTF-8 decoder accepts: what a hostile query can carry.
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def query_strings() -> st.SearchStrategy[str]:
    pair = st.tuples(TEXT, TEXT).map(
        lambda kv: f"{percent_encoded(kv[0])}={percent_encoded(kv[1])}"
    )
    token = st.one_of(TEXT, st.integers(1000, 1100).map(lambda n: "V" * n)).map(
        lambda t: f"validationToken={percent_encoded(t)}"
    )
    return st.lists(st.one_of(pair, token, st.binary(max_size=20).map(quote)), max_size=3).map(
        "&".join
    )


def test_the_dev_host_answers_any_http_request_2xx_or_4xx(
    fuzz_settings: Settings, tenant: str, stack: Any
) -> None:
    seen: Counter[int] = Counter()
    # Header values as an HTTP client can send them (printable ASCII); the handler-level test
    # above covers any text.
    content_types = st.one_of(
        CONTENT_TYPES.filter(lambda t: t.isascii() and t.isprintable()),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    )
    with dev_host(fuzz_settings) as (runner, host):

        async def open_client() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

        client = runner.run(open_client())

        async def send(route: str, query: str, body: bytes, content_type: str) -> None:
            url = URL(f"{host.api_url}/graph/{route}?{query}", encoded=True)
            async with client.post(url, data=body, headers={"Content-Type": content_type}) as r:
                text = await r.read()
                seen[r.status] += 1
                assert 200 <= r.status < 500, f"answered {r.status}: {text[:300]!r}"
                if r.status == 200:
                    assert r.headers["X-Content-Type-Options"] == "nosniff"
                    assert r.headers["Content-Type"].startswith("text/plain")

        @settings(FUZZ, max_examples=120)
        @given(data=st.data())
        def fuzz(data: st.DataObject) -> None:
            route = data.draw(st.sampled_from(sorted(ROUTES)), label="route")
            body = data.draw(bodies(tenant), label="body")
            query = data.draw(query_strings(), label="query")
            content_type = data.draw(content_types, label="content-type")
            runner.run(send(route, query, body, content_type))

        try:
            for route in ROUTES:
                runner.run(send(route, f"validationToken={quote(HANDSHAKE)}", b"", "text/plain"))
                for body in named_bodies(tenant):
                    runner.run(send(route, "", body, "application/json"))
            fuzz()
        finally:
            runner.run(client.close())
    assert {200, 202, 400, 413} <= set(seen), seen
    assert_queued_messages_are_sane(fuzz_settings, stack)


def test_the_dev_host_refuses_a_declared_length_over_its_limit_without_reading(
    fuzz_settings: Settings,
) -> None:
    """Four 90 MB anonymous POSTs took the dev host from 72 MB to 506 MB before each got its
    413. A Content-Length over the limit is now answered before a byte of body is read: this
    request never sends its body, so the 413 can only come from the declared length."""

    async def declare(port: int, length: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                b"POST /api/graph/notifications HTTP/1.1\r\nHost: devicemon\r\n"
                b"Content-Type: application/json\r\n" + f"Content-Length: {length}\r\n\r\n".encode()
            )
            await writer.drain()
            return await asyncio.wait_for(reader.readline(), timeout=10)
        finally:
            writer.close()
            await writer.wait_closed()

    with dev_host(fuzz_settings) as (runner, host):
        assert host.port is not None
        for length in (LIMIT + 1, 90 * 1024 * 1024):
            status_line = runner.run(declare(host.port, length))
            assert status_line.startswith(b"HTTP/1.1 413"), status_line
