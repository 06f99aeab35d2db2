from __future__ import annotations

import pytest

from shared.changes import ChangeMessageError, DeviceChange
from shared.models import Source


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
