from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.core.snapshots import (
    SnapshotError,
    device_from_json,
    managed_device_from_json,
    parse_time,
)

GRAPH_DOCS_DEVICE = {
    "id": "000005c3-b7a6-4c61-89fc-80bf5ccfc366",
    "deviceId": "6fa60d52-01e7-4b18-8055-4759461fc16b",
    "accountEnabled": False,
    "displayName": "DESKTOP-858MANH",
    "operatingSystem": "Windows",
    "operatingSystemVersion": "10.0.19043.1165",
}


def test_device_from_graph_docs_example() -> None:
    device = device_from_json(GRAPH_DOCS_DEVICE)
    assert device.object_id == "000005c3-b7a6-4c61-89fc-80bf5ccfc366"
    assert device.account_enabled is False
    assert device.is_compliant is None
    assert device.trust_type is None
    assert not device.deleted


def test_removed_entry_from_delta_is_deleted() -> None:
    assert device_from_json({"id": "x", "@removed": {"reason": "deleted"}}).deleted


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "x",
        {},
        {"id": ""},
        {"id": 5},
        {"id": "x", "isCompliant": "yes"},
        {"id": "x", "displayName": 3},
        {"id": "x", "registrationDateTime": "yesterday"},
    ],
)
def test_bad_device_json_is_a_clear_error(bad: object) -> None:
    with pytest.raises(SnapshotError):
        device_from_json(bad)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-29T10:15:02Z", datetime(2026, 11, 29, 10, 15, 2, tzinfo=UTC)),
        ("2026-11-29T10:15:02.1234567Z", datetime(2026, 11, 29, 10, 15, 2, 123456, tzinfo=UTC)),
        (
            "2026-11-29T10:15:02.5+02:00",
            datetime(2026, 11, 29, 10, 15, 2, 500000, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2026-11-29T10:15:02", datetime(2026, 11, 29, 10, 15, 2, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_parse_time(raw: str | None, expected: datetime | None) -> None:
    assert parse_time(raw) == expected


def test_managed_device() -> None:
    managed = managed_device_from_json(
        {
            "id": "m",
            "complianceState": "inGracePeriod",
            "managementAgent": "configurationManagerClientMdm",
            "complianceGracePeriodExpirationDateTime": "2026-12-01T00:00:00Z",
        }
    )
    assert managed.compliance_state == "inGracePeriod"
    assert managed.grace_period_expires == datetime(2026, 12, 1, tzinfo=UTC)
