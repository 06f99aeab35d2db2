from __future__ import annotations

import pytest

from shared.notifications import (
    MalformedNotification,
    client_state_matches,
    device_id_of,
    notification_message_id,
    parse_collection,
    triage,
)

TENANT = "7a3c1f0e-0000-4000-8000-000000000001"


def item(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "n-1",
        "subscriptionId": "s-1",
        "clientState": "secret",
        "changeType": "updated",
        "resource": "Devices/dev-1",
        "tenantId": TENANT,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Device", "id": "dev-1"},
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    "body", [b"", b"null", b"[]", b"{}", b'{"value": null}', b"\x00", b'{"value": "x"}']
)
def test_parse_collection_rejects_what_is_not_a_collection(body: bytes) -> None:
    with pytest.raises(MalformedNotification):
        parse_collection(body)


def test_parse_collection_accepts_an_empty_value() -> None:
    assert parse_collection(b'{"value": []}') == []


@pytest.mark.parametrize(
    ("received", "ok"),
    [
        ("secret", True),
        ("secreT", False),
        ("", False),
        (None, False),
        (42, False),
        ("secret ", False),
    ],
)
def test_client_state_comparison(received: object, ok: bool) -> None:
    assert client_state_matches(received, "secret") is ok


@pytest.mark.parametrize(
    ("notification", "expected"),
    [
        (item(), "dev-1"),
        (item(resourceData=None), "dev-1"),
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
    first = notification_message_id(item(), "dev-1", "t1#0")
    assert first == notification_message_id(item(), "dev-1", "t2#5"), (
        "Graph redelivery keeps the id"
    )
    assert first != notification_message_id(item(id="n-2"), "dev-1", "t1#0")
    assert first != notification_message_id(item(changeType="deleted"), "dev-1", "t1#0")


def test_without_a_notification_id_two_posts_are_never_merged() -> None:
    no_id = item(id=None)
    assert notification_message_id(no_id, "dev-1", "t1#0") != notification_message_id(
        no_id, "dev-1", "t2#0"
    )


@pytest.mark.parametrize(
    ("notification", "reason"),
    [
        (item(clientState="nope"), "client_state_mismatch"),
        (item(tenantId="someone-else"), "tenant_not_allowed"),
        (item(resourceData={"@odata.type": "#microsoft.graph.user", "id": "u"}), "not_a_device"),
        (item(lifecycleEvent="missed"), "lifecycle_event_on_notification_url"),
        (item(resourceData=None, resource="devices"), "no_device_id"),
        ("a string", "not_an_object"),
    ],
)
def test_triage_drops_with_a_reason(notification: object, reason: str) -> None:
    result = triage(
        [notification], client_state="secret", allowed_tenants=frozenset({TENANT}), received_at="t"
    )
    assert result.changes == []
    assert dict(result.dropped) == {reason: 1}


def test_triage_accepts_any_tenant_when_none_is_configured_and_keeps_order() -> None:
    items = [item(id=str(i), resourceData={"id": f"d{i}"}, tenantId=f"t{i}") for i in range(5)]
    result = triage(items, client_state="secret", allowed_tenants=frozenset(), received_at="t")
    assert [c.device_id for c in result.changes] == [f"d{i}" for i in range(5)]
    assert all(c.correlation_id == c.message_id for c in result.changes)


def test_odata_type_is_compared_case_insensitively() -> None:
    result = triage(
        [item(resourceData={"@odata.type": "#MICROSOFT.GRAPH.DEVICE", "id": "x"})],
        client_state="secret",
        allowed_tenants=frozenset({TENANT.upper().lower()}),
        received_at="t",
    )
    assert [c.device_id for c in result.changes] == ["x"]
