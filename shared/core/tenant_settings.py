"""The tenant's Intune compliance settings and what they mean for one device. Pure.

Graph serves them as the deviceManagementSettings complex type at `GET /deviceManagement/settings`
(microsoft-graph-docs-contrib, api-reference/v1.0/resources/
intune-deviceconfig-devicemanagementsettings.md):

- `deviceComplianceCheckinThresholdDays`: "the number of days a device is allowed to go without
  checking in to remain compliant": the admin center's "Compliance status validity period (days)",
  1 to 120, 30 unless changed (memdocs compliance-policy-settings: `device-compliance-get-started.md`).
  A device that has not checked in within it is marked not compliant by the built-in policy's
  "Is active" (RequireRemainContact) setting.
- `secureByDefault`: "device should be noncompliant when there is no compliance policy targeted
  when this is true": the admin center's "Mark devices with no compliance policy assigned as",
  Compliant (false, the default) or Not compliant (true).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# Intune's defaults for a tenant nobody changed (memdocs device-compliance-get-started.md).
DEFAULT_CHECKIN_THRESHOLD_DAYS = 30
DEFAULT_SECURE_BY_DEFAULT = False
MIN_CHECKIN_THRESHOLD_DAYS = 1
MAX_CHECKIN_THRESHOLD_DAYS = 120
# entra-docs manage-stale-devices.md: approximateLastSignInDateTime is refreshed only about every
# 14 days, so a device younger than 21 days may just not have been refreshed: never stale.
MIN_STALE_SIGN_IN_DAYS = 21
# How long before the validity deadline INTUNE_CHECKIN_STALE warns, at most (and never more than
# half the period): docs/reason-codes.md explains the choice.
DEFAULT_CHECKIN_WARNING_DAYS = 7

# Where the values in hand come from.
READ = "read"  # Graph answered at read_at
KEPT = "kept"  # the last read failed; the values are those Graph gave at read_at
DEFAULT = "default"  # never read: Intune's defaults


class TenantSettingsError(ValueError):
    """Graph's answer is not a deviceManagementSettings the docs describe."""


@dataclass(frozen=True, slots=True)
class TenantSettings:
    checkin_threshold_days: int = DEFAULT_CHECKIN_THRESHOLD_DAYS
    secure_by_default: bool = DEFAULT_SECURE_BY_DEFAULT
    read_at: datetime | None = None  # when Graph last answered; None: never
    status: str = DEFAULT
    note: str = ""  # why the values were kept or defaulted, for people

    @property
    def validity_period(self) -> timedelta:
        return timedelta(days=self.checkin_threshold_days)

    def kept(self, note: str) -> TenantSettings:
        """These values again after a failed read: the last known ones, or still the defaults."""
        return TenantSettings(
            self.checkin_threshold_days,
            self.secure_by_default,
            self.read_at,
            DEFAULT if self.read_at is None else KEPT,
            note,
        )


def parse_settings(body: Any, read_at: datetime) -> TenantSettings:
    """The settings from Graph's answer. A value outside the documented range or of the wrong type
    is refused rather than guessed: evaluation would otherwise warn on every device or on none."""
    if not isinstance(body, Mapping):
        raise TenantSettingsError("deviceManagementSettings must be a JSON object")
    days = body.get("deviceComplianceCheckinThresholdDays")
    if isinstance(days, bool) or not isinstance(days, int):
        raise TenantSettingsError(f"deviceComplianceCheckinThresholdDays is not a number: {days!r}")
    if not MIN_CHECKIN_THRESHOLD_DAYS <= days <= MAX_CHECKIN_THRESHOLD_DAYS:
        raise TenantSettingsError(
            f"deviceComplianceCheckinThresholdDays={days} is outside "
            f"{MIN_CHECKIN_THRESHOLD_DAYS}..{MAX_CHECKIN_THRESHOLD_DAYS}"
        )
    secure = body.get("secureByDefault", DEFAULT_SECURE_BY_DEFAULT)
    if not isinstance(secure, bool):
        raise TenantSettingsError(f"secureByDefault is not a boolean: {secure!r}")
    return TenantSettings(days, secure, read_at, READ)


def checkin_deadline(last_sync: datetime | None, tenant: TenantSettings) -> datetime | None:
    """When Intune marks the device not compliant if it does not check in again."""
    return None if last_sync is None else last_sync + tenant.validity_period


def checkin_warning_lead(threshold_days: int, warning_days: int) -> timedelta:
    """How long before the deadline to warn: `warning_days`, but never more than half the period,
    so that under a short period a device between two ordinary check-ins (about every 8 hours,
    memdocs device-profile-troubleshoot.md) is not warned about."""
    return min(timedelta(days=warning_days), timedelta(days=threshold_days) / 2)


def checkin_overdue(
    last_sync: datetime | None, now: datetime, tenant: TenantSettings, warning_days: int
) -> bool:
    deadline = checkin_deadline(last_sync, tenant)
    if deadline is None:
        return False
    return now >= deadline - checkin_warning_lead(tenant.checkin_threshold_days, warning_days)


def to_json(tenant: TenantSettings) -> dict[str, Any]:
    return {
        "deviceComplianceCheckinThresholdDays": tenant.checkin_threshold_days,
        "secureByDefault": tenant.secure_by_default,
        "readAt": tenant.read_at.isoformat() if tenant.read_at else None,
        "status": tenant.status,
        "note": tenant.note,
    }
