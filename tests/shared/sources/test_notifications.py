from __future__ import annotations

import json
import uuid

import pytest

from shared.sources.notifications import (
    MalformedNotification,
    client_state_matches,
    device_id_of,
    hashed_key,
    notification_message_id,
    parse_collection,
    triage,
)

TENANT = "7a3c1f0e-0000-4000-8000-000000000001"
DEVICE = "000005c3-b7a6-4c61-89fc-80bf5ccfc366"  # Graph's docs example of a device object id


def item(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "n-1",
        "subscriptionId": "s-1",
        "clientState": "secret",
        "changeType": "updated",
        "resource": f"Devices/{DEVICE}",
        "tenantId": TENANT,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Device", "id": DEVICE},
    }
    base.update(overrides)
    return base


def guid(i: int) -> str:
    return str(uuid.UUID(int=i))


@pytest.mark.parametrize(
    "body", [b"", b"null", b"[]", b"{}", b'{"value": null}', b"\x00", b'{"value": "x"}']
)
def test_parse_collection_rejects_what_is_not_a_collection(body: bytes) -> None:
    with pytest.raises(MalformedNotification):
        parse_collection(body)


def test_parse_collection_accepts_an_empty_value() -> None:
    assert parse_collection(b'{"value": []}') == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        # json.loads raises a bare ValueError past 4,300 digits, and RecursionError ~1,000 deep:
        # both were anonymous 500s.
        (b'{"value": [' + b"1" * 4301 + b"]}", "number too long"),
        (b'{"value": [{"id": -' + b"9" * 50_000 + b"}]}", "number too long"),
        (b'{"value": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nests too deeply"),
        (b'{"value": [' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"]}", "nests too deeply"),
    ],
)
def test_parse_collection_turns_parser_limits_into_a_malformed_body(
    body: bytes, fragment: str
) -> None:
    with pytest.raises(MalformedNotification, match=fragment):
        parse_collection(body)


def test_parse_collection_keeps_numbers_and_nesting_within_the_limits() -> None:
    body = b'{"value": [' + b"7" * 4300 + b', [[[[{"x": 1}]]]]]}'
    assert parse_collection(body)[1] == [[[[{"x": 1}]]]]


@pytest.mark.parametrize(
    ("received", "ok"),
    [
        ("secret", True),
        ("secreT", False),
        ("", False),
        (None, False),
        (42, False),
        ("secret ", False),
        ("s\u00e9cret", False),
        ("\ud800", False),
        ("secret\udc80", False),
        ("\U0001f600" * 200, False),
    ],
)
def test_client_state_comparison(received: object, ok: bool) -> None:
    assert client_state_matches(received, "secret") is ok


def test_client_state_from_json_with_a_lone_surrogate_is_compared_not_raised() -> None:
    """A JSON "\\udc80" escape decodes to a lone surrogate, which strict UTF-8 cannot encode."""
    (received,) = parse_collection(b'{"value": ["sec\\udc80ret"]}')
    assert received == "sec\udc80ret"
    assert client_state_matches(received, "secret") is False
    assert client_state_matches(received, "sec\udc80ret") is True
    assert client_state_matches("s\u00e9cr\u00e8t-\u2603", "s\u00e9cr\u00e8t-\u2603") is True


@pytest.mark.parametrize(
    ("notification", "expected"),
    [
        (item(), DEVICE),
        (item(resourceData=None), DEVICE),
        (item(resourceData={}, resource="devices/abc"), "abc"),
        (item(resourceData=None, resource="/devices/abc/"), "abc"),
        (item(resourceData=None, resource="users/abc"), None),
        (item(resourceData=None, resource="devices"), None),
        (item(resourceData=None, resource=None), None),
    ],
)
def test_device_id_of(notification: dict[str, object], expected: str | None) -> None:
    assert device_id_of(notification) == expected


def test_message_id_is_stable_for_a_redelivery_and_differs_between_notifications() -> None:
    first = notification_message_id(item(), DEVICE, "t1#0")
    assert first == notification_message_id(item(), DEVICE, "t2#5"), "Graph redelivery keeps the id"
    assert first != notification_message_id(item(id="n-2"), DEVICE, "t1#0")
    assert first != notification_message_id(item(changeType="deleted"), DEVICE, "t1#0")


def test_without_a_notification_id_two_posts_are_never_merged() -> None:
    for no_id in (item(id=None), item(id=""), item(id=42), item(id={"nested": [1]})):
        assert notification_message_id(no_id, DEVICE, "t1#0") != notification_message_id(
            no_id, DEVICE, "t2#0"
        )


@pytest.mark.parametrize(
    "notification_id", ["n" * 200, "x" * 100_000, "\ud800-lone", "caf\u00e9-\U0001f600"]
)
def test_message_id_fits_service_bus_whatever_the_notification_id(notification_id: str) -> None:
    """Service Bus refuses message ids over 128 characters; the id is a fixed-length hash."""
    message_id = notification_message_id(item(id=notification_id), DEVICE, "t#0")
    assert len(message_id) == 32 and message_id.isascii()
    assert message_id == notification_message_id(item(id=notification_id), DEVICE, "t2#9")
    assert len(hashed_key(notification_id, "\udfff")) == 32


@pytest.mark.parametrize(
    ("notification", "reason"),
    [
        (item(clientState="nope"), "client_state_mismatch"),
        (item(tenantId="someone-else"), "tenant_not_allowed"),
        (item(resourceData={"@odata.type": "#microsoft.graph.user", "id": "u"}), "not_a_device"),
        (item(lifecycleEvent="missed"), "lifecycle_event_on_notification_url"),
        (item(resourceData=None, resource="devices"), "no_device_id"),
        ("a string", "not_an_object"),
        (item(clientState="\ud800"), "client_state_mismatch"),
        (item(clientState=["secret"]), "client_state_mismatch"),
        # Device object ids are GUIDs: anything else is dropped, never queued as a session id.
        (item(resourceData={"id": "d" * 200}), "invalid_device_id"),
        (item(resourceData={"id": "dev-1"}), "invalid_device_id"),
        (item(resourceData={"id": f"{DEVICE}\n"}), "invalid_device_id"),
        (item(resourceData={"id": f"{DEVICE}x"}), "invalid_device_id"),
        (item(resourceData={"id": "\ud800" * 36}), "invalid_device_id"),
        (item(resourceData=None, resource="devices/" + "a" * 300), "invalid_device_id"),
        (item(changeType="exploded"), "unknown_change_type"),
        (item(changeType=["updated"]), "unknown_change_type"),
        (item(changeType="u" * 100_000), "unknown_change_type"),
        (item(tenantId="t" * 129), "invalid_id"),
        (item(tenantId=7), "invalid_id"),
        (item(subscriptionId="../../me"), "invalid_id"),
        (item(subscriptionId="s\ud800"), "invalid_id"),
        (item(subscriptionId={"a": [[[]]]}), "invalid_id"),
    ],
)
def test_triage_drops_with_a_reason(notification: object, reason: str) -> None:
    result = triage(
        [notification], client_state="secret", allowed_tenants=frozenset({TENANT}), received_at="t"
    )
    assert result.changes == []
    assert dict(result.dropped) == {reason: 1}


def test_triage_accepts_any_tenant_when_none_is_configured_and_keeps_order() -> None:
    items = [item(id=str(i), resourceData={"id": guid(i)}, tenantId=f"t{i}") for i in range(5)]
    result = triage(items, client_state="secret", allowed_tenants=frozenset(), received_at="t")
    assert [c.device_id for c in result.changes] == [guid(i) for i in range(5)]
    assert all(c.correlation_id == c.message_id for c in result.changes)


def test_odata_type_is_compared_case_insensitively() -> None:
    result = triage(
        [item(resourceData={"@odata.type": "#MICROSOFT.GRAPH.DEVICE", "id": guid(9)})],
        client_state="secret",
        allowed_tenants=frozenset({TENANT.upper().lower()}),
        received_at="t",
    )
    assert [c.device_id for c in result.changes] == [guid(9)]


def test_one_bad_item_never_costs_the_others_their_place() -> None:
    """The fuzzed POST that answered 503: a 200-character id in one item failed the send of
    all of them. Every field that reaches the message is checked per item."""
    bad = [
        item(resourceData={"id": "d" * 200}),
        item(id="n" * 200, clientState="\ud800"),
        item(subscriptionId="s" * 200),
        item(changeType="c" * 200),
        {"value": [[[]]]},
    ]
    good = [item(id=f"good-{i}", resourceData={"id": guid(i)}) for i in range(3)]
    result = triage(
        [bad[0], good[0], *bad[1:3], good[1], bad[3], bad[4], good[2]],
        client_state="secret",
        allowed_tenants=frozenset({TENANT}),
        received_at="t",
    )
    assert [c.device_id for c in result.changes] == [guid(i) for i in range(3)]
    assert sum(result.dropped.values()) == len(bad)
    for change in result.changes:
        assert len(change.message_id) <= 128 and len(change.device_id) <= 128
        assert change.change_type == "updated"
        json.loads(change.to_json())


@pytest.mark.parametrize(("given", "queued"), [("Updated", "updated"), ("DELETED", "deleted")])
def test_change_type_is_queued_in_graphs_spelling(given: str, queued: str) -> None:
    result = triage(
        [item(changeType=given), item(id="n-2", changeType=None)],
        client_state="secret",
        allowed_tenants=frozenset({TENANT}),
        received_at="t",
    )
    assert [c.change_type for c in result.changes] == [queued, "updated"]
