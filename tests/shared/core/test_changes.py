from __future__ import annotations

import json

import pytest

from shared.adapters.servicebus import change_message
from shared.core.changes import ChangeMessageError, DeviceChange, normalize_graph_id
from shared.core.commands import Command
from shared.core.models import Source
from shared.sources.notifications import triage


def test_round_trip() -> None:
    change = DeviceChange(
        "dev", "deleted", Source.SYNC, "m1", "c1", "2026-11-29T00:00:00Z", "t", "s"
    )
    assert DeviceChange.from_json(change.to_json()) == change


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[]",
        b'"x"',
        b"{}",
        b'{"device_id": ""}',
        b'{"device_id": 4}',
        b'{"device_id": "d", "source": "carrier-pigeon"}',
        b"\xff",
    ],
)
def test_unusable_messages_say_why(raw: bytes) -> None:
    with pytest.raises(ChangeMessageError):
        DeviceChange.from_json(raw)


def test_minimal_message_gets_defaults() -> None:
    change = DeviceChange.from_json(b'{"device_id": " d1 ", "message_id": "m"}')
    assert change.device_id == "d1"
    assert change.source is Source.NOTIFICATION
    assert change.correlation_id == "m"


# --- ids are normalised at construction, so every producer gets it (issue 17 item 1) ----------

OBJECT_ID = "3f2c0b8e-1d7a-4c1e-9a51-0a7e6b2f9c11"


@pytest.mark.parametrize(
    "spelt",
    [
        OBJECT_ID,
        OBJECT_ID.upper(),
        f"  {OBJECT_ID.upper()}\n",
        "3F2C0B8E-1d7a-4C1E-9a51-0A7E6B2F9C11",
    ],
)
def test_device_id_is_normalised_however_it_is_built(spelt: str) -> None:
    built = DeviceChange(spelt, "updated", Source.NOTIFICATION, "m", "m", "t")
    parsed = DeviceChange.from_json(json.dumps({"device_id": spelt, "message_id": "m"}))

    assert built.device_id == parsed.device_id == normalize_graph_id(spelt) == OBJECT_ID
    assert DeviceChange.from_json(built.to_json()) == built
    # The session id is the device id: one device, one session, whatever the spelling.
    assert change_message(built).session_id == OBJECT_ID


def test_notification_naming_a_device_in_upper_case_queues_its_lower_case_id() -> None:
    by_data = {
        "clientState": "cs",
        "changeType": "updated",
        "resource": f"Devices/{OBJECT_ID.upper()}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Device", "id": OBJECT_ID.upper()},
    }
    by_resource = {"clientState": "cs", "resource": f"devices/{OBJECT_ID.upper()}"}

    result = triage(
        [by_data, by_resource], client_state="cs", allowed_tenants=frozenset(), received_at="t"
    )

    assert [c.device_id for c in result.changes] == [OBJECT_ID, OBJECT_ID]


def test_command_subscription_id_is_normalised_like_any_graph_id() -> None:
    subscription = "7F105C7D-2DC5-4530-97CD-4E7AE6534C07"
    built = Command("reauthorize", "lifecycle", "t", subscription_id=f" {subscription} ")
    parsed = Command.from_json(json.dumps({"name": "reauthorize", "subscription_id": subscription}))

    assert built.subscription_id == parsed.subscription_id == subscription.lower()
    assert (
        built.message_id()
        == Command("reauthorize", "lifecycle", "t", subscription.lower()).message_id()
    )
