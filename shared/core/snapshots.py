"""Graph JSON (camelCase, as Graph returns it) to the domain's snapshots. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.core.models import DeviceSnapshot, ManagedDeviceSnapshot


class SnapshotError(ValueError):
    """The JSON is not a Graph device or managed device."""


def parse_time(value: Any) -> datetime | None:
    """Graph timestamps (ISO 8601, 'Z' or offset, up to 7 fractional digits) as aware datetimes."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise SnapshotError(f"not a timestamp: {value!r}")
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        # Python accepts at most 6 fractional digits; Graph sends up to 7.
        head, _, rest = text.partition(".")
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise SnapshotError(f"not a timestamp: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bool(data: dict[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise SnapshotError(f"{key} must be true, false or null, not {value!r}")


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise SnapshotError(f"{key} must be a string or null, not {value!r}")


def device_from_json(data: Any) -> DeviceSnapshot:
    if not isinstance(data, dict):
        raise SnapshotError("a device must be a JSON object")
    object_id = data.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise SnapshotError("a device needs its object id in 'id'")
    return DeviceSnapshot(
        object_id=object_id,
        device_id=_str(data, "deviceId"),
        display_name=_str(data, "displayName"),
        account_enabled=_bool(data, "accountEnabled"),
        is_compliant=_bool(data, "isCompliant"),
        is_managed=_bool(data, "isManaged"),
        trust_type=_str(data, "trustType"),
        operating_system=_str(data, "operatingSystem"),
        operating_system_version=_str(data, "operatingSystemVersion"),
        approximate_last_sign_in=parse_time(data.get("approximateLastSignInDateTime")),
        registration_time=parse_time(data.get("registrationDateTime")),
        mdm_app_id=_str(data, "mdmAppId"),
        profile_type=_present(data, "profileType"),
        alternative_security_ids=_count(data, "alternativeSecurityIds"),
        device_ownership=_lower(_str(data, "deviceOwnership")),
        on_premises_sync=_bool(data, "onPremisesSyncEnabled"),
        deleted="@removed" in data,
        removed_reason=_removed_reason(data.get("@removed")),
    )


def managed_device_from_json(data: Any) -> ManagedDeviceSnapshot:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise SnapshotError("a managed device must be a JSON object with an 'id'")
    return ManagedDeviceSnapshot(
        managed_device_id=data["id"],
        compliance_state=_str(data, "complianceState"),
        management_agent=_str(data, "managementAgent"),
        grace_period_expires=parse_time(data.get("complianceGracePeriodExpirationDateTime")),
        last_sync=parse_time(data.get("lastSyncDateTime")),
        user_principal_name=_str(data, "userPrincipalName"),
        compliance_policy_by_intune=_compliance_workload(
            data.get("configurationManagerClientEnabledFeatures")
        ),
    )


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def _removed_reason(removed: Any) -> str | None:
    """delta's `{"@removed": {"reason": "changed" | "deleted"}}`; anything else says nothing."""
    reason = removed.get("reason") if isinstance(removed, dict) else None
    return reason.lower() if isinstance(reason, str) and reason else None


def _compliance_workload(features: Any) -> bool | None:
    """configurationManagerClientEnabledFeatures.compliancePolicy ("Whether compliance policy is
    managed by Intune"); null or absent for a device Configuration Manager does not co-manage."""
    if not isinstance(features, dict):
        return None
    value = features.get("compliancePolicy")
    return value if isinstance(value, bool) else None


def _count(data: dict[str, Any], key: str) -> int | None:
    """How many items a collection property holds; None when Graph did not send it."""
    value = data.get(key)
    return len(value) if isinstance(value, list) else None


def _present(data: dict[str, Any], key: str) -> str | None:
    """A string property, "" when Graph sent it as null, None when Graph did not send it: a
    pending hybrid device is told apart by a null profileType, an old snapshot by its absence."""
    if key not in data:
        return None
    value = data[key]
    return value if isinstance(value, str) else ""
