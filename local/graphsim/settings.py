"""Per-tenant knobs, set through PATCH /_sim/{tenant}/settings (names are the JSON names).

Defaults follow Microsoft's documentation where it says what Graph does; a knob that makes
the simulator depart from the docs (e.g. deltaChangedPropertiesOnly=false) is named so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .entities import EntityError


@dataclass
class TenantSettings:
    deltaPageSize: int = 200
    # Page sizes cycled page after page of every delta round, each capped by the client's
    # odata.maxpagesize (delta-query-overview.md: "The number of objects in each page can
    # vary"); null = always deltaPageSize.
    deltaPageSizes: list[int] | None = None
    # Items from the end of each delta page sent again at the start of the next one
    # (delta-query-overview.md: "Assume that the same item can show up anywhere in the
    # @odata.nextLink sequence"); 0 = repeat only what changed between pages.
    deltaRepeatCount: int = 0
    listPageSize: int = 100
    requireAuth: bool = True
    notificationsEnabled: bool = True
    notificationMaxBatch: int = 50
    notificationConcurrency: int = 4
    notificationTimeoutSeconds: float = 10.0
    validationTimeoutSeconds: float = 10.0
    validateOnRenew: bool = True
    deltaTokenExpiredMode: Literal["syncStateNotFound", "gone"] = "syncStateNotFound"
    # delta-query-overview.md: "Updated instances are represented by their id with at least
    # the properties that have been updated"; false sends the whole selection instead.
    deltaChangedPropertiesOnly: bool = True
    refuseDeviceSubscriptions: int | None = None  # None (accept), 400 or 403
    maxSubscriptionMinutes: int = 41760
    maxSubscriptions: int | None = None
    batchBodyEncoding: Literal["json", "base64"] = "json"
    # json-batching.md: "Individual responses might appear in a different order than the
    # requests"; "reversed" makes a client that pairs by position fail every time.
    batchResponseOrder: Literal["request", "reversed"] = "request"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, patch: Mapping[str, Any]) -> None:
        current = asdict(self)
        for key, value in patch.items():
            if key not in current:
                raise EntityError(f"unknown setting {key!r}; known: {sorted(current)}")
            _check_setting(key, value)
        for key, value in patch.items():
            setattr(self, key, value)


_POSITIVE_INTS = (
    "deltaPageSize",
    "listPageSize",
    "notificationMaxBatch",
    "notificationConcurrency",
    "maxSubscriptionMinutes",
)
_BOOLS = ("requireAuth", "notificationsEnabled", "validateOnRenew", "deltaChangedPropertiesOnly")
_CHOICES: dict[str, tuple[Any, ...]] = {
    "deltaTokenExpiredMode": ("syncStateNotFound", "gone"),
    "refuseDeviceSubscriptions": (None, 400, 403),
    "batchBodyEncoding": ("json", "base64"),
    "batchResponseOrder": ("request", "reversed"),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_setting(key: str, value: Any) -> None:
    if key in _POSITIVE_INTS and (not _is_int(value) or value < 1):
        raise EntityError(f"{key} must be a positive integer")
    if key in ("notificationTimeoutSeconds", "validationTimeoutSeconds") and (
        not isinstance(value, int | float) or isinstance(value, bool) or value <= 0
    ):
        raise EntityError(f"{key} must be a positive number")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise EntityError(f"{key} must be one of {list(_CHOICES[key])}")
    if key == "maxSubscriptions" and value is not None and not _is_int(value):
        raise EntityError("maxSubscriptions must be an integer or null")
    if key == "deltaRepeatCount" and (not _is_int(value) or value < 0):
        raise EntityError("deltaRepeatCount must be an integer >= 0")
    if (
        key == "deltaPageSizes"
        and value is not None
        and (
            not isinstance(value, list)
            or not value
            or not all(_is_int(v) and v >= 1 for v in value)
        )
    ):
        raise EntityError("deltaPageSizes must be null or a non-empty list of positive integers")
    if key in _BOOLS and not isinstance(value, bool):
        raise EntityError(f"{key} must be a boolean")
