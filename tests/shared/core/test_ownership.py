"""Issue 13 item 6: a registered device is not "personal" by its join type; Intune's
deviceOwnership says who owns it. device.md: "deviceOwnership | String | Ownership of the device.
Intune sets this property. Possible values are: unknown, company, personal."; the device filter
doc (entra-docs concept-condition-filters-for-devices.md) spells them "Personal" and "Company"."""

from __future__ import annotations

from typing import Any

import pytest

from shared.core import explain
from shared.core.alert_view import parse_alert
from shared.core.models import Policy
from shared.core.snapshots import device_from_json
from tests.shared.core.payloads import lost_alert

REGISTERED: dict[str, Any] = {
    "id": "000005c3-b7a6-4c61-89fc-80bf5ccfc366",
    "deviceId": "6fa60d52-01e7-4b18-8055-4759461fc16b",
    "displayName": "PIXEL-BYOD-19",
    "accountEnabled": True,
    "isCompliant": False,
    "trustType": "Workplace",
    "operatingSystem": "Android",
    "operatingSystemVersion": "14",
}


@pytest.mark.parametrize(
    ("ownership", "stored", "words"),
    [
        ("Company", "company", "Entra registered, company-owned"),
        ("Personal", "personal", "Entra registered, personal"),
        ("personal", "personal", "Entra registered, personal"),
        ("unknown", "unknown", "Entra registered"),
        (None, None, "Entra registered"),
    ],
)
def test_ownership_comes_from_device_ownership(
    ownership: str | None, stored: str | None, words: str
) -> None:
    device = device_from_json({**REGISTERED, "deviceOwnership": ownership})
    assert device.device_ownership == stored
    view = parse_alert(lost_alert(device, policy=Policy.COMPLIANT))
    assert (view.join_type, view.ownership) == ("registered", stored)
    assert explain.join_type(view.join_type, view.ownership) == words


def test_no_join_type_is_called_personal_by_itself() -> None:
    assert not any("personal" in words for words in explain.JOIN_TYPES.values())
