"""Intune's timeline on the tenant's clock: check-ins, grace periods, the validity period, Error.

What Intune does with time, each from the memdocs page named beside it, on `TenantClock` (tests
advance it; `POST /_sim/{tenant}/clock/advance`):

- Check-ins: a device checks in "about every 8 hours" (intune/configuration/
  device-profile-troubleshoot.md, the refresh cycle of every platform), so a checking-in device's
  `lastSyncDateTime` follows the clock in 8-hour steps from its own last check-in. The admin can
  stop a device's check-ins (switched off, offline) and resume them.
- Grace period: the "Mark device noncompliant" action's schedule gives the user days to fix the
  device; meanwhile Intune reports `inGracePeriod` and the device stays compliant in Entra ("become
  compliant without being marked as non-compliant": intune/protect/actions-for-noncompliance.md).
  When the clock passes `complianceGracePeriodExpirationDateTime` the device becomes noncompliant.
- Validity period: a device that does not check in within the tenant's "compliance status validity
  period" (`deviceManagement/settings.deviceComplianceCheckinThresholdDays`) is treated as
  noncompliant (intune/protect/device-compliance-get-started.md). A device that checks in again is
  evaluated again: it gets back the state it had.
- Error: a setting in Error keeps the device's state for up to seven days, then the device is
  noncompliant, without grace (intune/protect/compliance-policy-monitor.md). Intune does not write
  `error` to Entra (the device keeps its previous `isCompliant` there); the end of the seven days
  does.

Each move to noncompliant is a real change: `TenantState.patch_managed` writes the Entra device's
`isCompliant` (false), which delta rounds and change notifications report like any other change.

Cost: advancing the clock walks every managed device once (the check-in steps, O(n) on a
100,000-device tenant, a fraction of a second); a Graph request only looks at the devices with a
deadline on record (grace, stopped check-ins, Error), so paging a large tenant stays O(page).

Admin (routes registered by admin_api.py), the Python side in `admin.py`:
POST /_sim/{tenant}/managedDevices/{id}/timeline with one of
`{"action": "grace", "expires": iso}` (or `"hours": n`), `{"action": "stopCheckins"}`,
`{"action": "resumeCheckins"}`, `{"action": "error", "since": iso?}`, `{"action": "comply"}`;
GET /_sim/{tenant}/timeline: what is on record and when each deadline falls.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from .admin_http import body as _body
from .entities import NO_GRACE_PERIOD, EntityError
from .odata import iso_z, parse_datetime
from .runtime import TenantRuntime
from .state import TenantState
from .tenant_settings import _settings as tenant_compliance_settings

# device-profile-troubleshoot.md: "About every 8 hours" on every platform.
CHECKIN_INTERVAL = timedelta(hours=8)
# compliance-policy-monitor.md: Error "for up to seven days", then noncompliant.
ERROR_LIMIT = timedelta(days=7)
NONCOMPLIANT = "noncompliant"
# States the validity period ends: anything that is not already noncompliant or decided by
# Configuration Manager (a co-managed device whose compliance workload is not on Intune).
LAPSES = frozenset({"compliant", "inGracePeriod", "error", "conflict", "unknown"})


@dataclass
class Timeline:
    """What one tenant's timeline holds beyond the managed devices' own properties."""

    # managed id -> last check-in, for devices whose check-ins are stopped
    stopped: dict[str, datetime] = field(default_factory=dict)
    # managed id -> grace expiry, for devices seen in grace (admin call or a clock advance)
    grace: dict[str, datetime] = field(default_factory=dict)
    # managed id -> since when a setting is in Error
    error_since: dict[str, datetime] = field(default_factory=dict)
    # managed id -> state before the validity period ran out (given back on the next check-in)
    lapsed: dict[str, str] = field(default_factory=dict)
    # managed id -> (what made it noncompliant, when): the admin view's history
    ended: dict[str, tuple[str, datetime]] = field(default_factory=dict)


_STORE: weakref.WeakKeyDictionary[TenantRuntime, Timeline] = weakref.WeakKeyDictionary()


def timeline(rt: TenantRuntime) -> Timeline:
    return _STORE.setdefault(rt, Timeline())


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value or value == NO_GRACE_PERIOD:
        return None
    try:
        at = parse_datetime(value)
    except ValueError:
        return None
    # Intune's "never" (0001-01-01) is no instant a deadline can be counted from.
    return at if at.year > 1 else None


def _validity(rt: TenantRuntime) -> timedelta:
    return timedelta(days=tenant_compliance_settings(rt).checkin_threshold_days)


# --- deadlines --------------------------------------------------------------------------------


def deadlines(rt: TenantRuntime, managed_id: str) -> dict[str, datetime]:
    """The deadlines on record for a device: grace, validity, error (whichever apply)."""
    tl = timeline(rt)
    found: dict[str, datetime] = {}
    if managed_id in tl.grace:
        found["grace"] = tl.grace[managed_id]
    if managed_id in tl.stopped:
        found["validity"] = tl.stopped[managed_id] + _validity(rt)
    if managed_id in tl.error_since:
        found["error"] = tl.error_since[managed_id] + ERROR_LIMIT
    return found


def tick(rt: TenantRuntime) -> None:
    """End what the clock has passed, for the devices with a deadline on record: called before
    every Graph request, so time that passes without an advance is honoured too."""
    tl = timeline(rt)
    if not (tl.grace or tl.stopped or tl.error_since):
        return
    now = rt.state.clock.now()
    validity = _validity(rt)
    for managed_id in list(tl.grace):
        if tl.grace[managed_id] <= now:
            _end_grace(rt, tl, managed_id, now)
    for managed_id, since in list(tl.error_since.items()):
        if since + ERROR_LIMIT <= now:
            _end_error(rt, tl, managed_id, now)
    for managed_id, last in list(tl.stopped.items()):
        if last + validity <= now:
            _lapse(rt, tl, managed_id, now)


def _noncompliant(state: TenantState, managed_id: str) -> None:
    # sync_to_entra: Intune writes isCompliant=false on the Entra device (a real change).
    state.patch_managed(managed_id, {"complianceState": NONCOMPLIANT})


def _end_grace(rt: TenantRuntime, tl: Timeline, managed_id: str, now: datetime) -> None:
    expiry = tl.grace.pop(managed_id)
    device = rt.state.managed.get(managed_id)
    if device is None or device.get("complianceState") != "inGracePeriod":
        return  # fixed (or removed) during grace: nothing ends
    current = _instant(device.get("complianceGracePeriodExpirationDateTime"))
    if current is not None and current != expiry:
        tl.grace[managed_id] = current  # a new schedule was set since: follow it
        if current <= now:
            _end_grace(rt, tl, managed_id, now)
        return
    _noncompliant(rt.state, managed_id)
    tl.ended[managed_id] = ("grace", now)


def _end_error(rt: TenantRuntime, tl: Timeline, managed_id: str, now: datetime) -> None:
    tl.error_since.pop(managed_id)
    device = rt.state.managed.get(managed_id)
    if device is None or device.get("complianceState") != "error":
        return
    _noncompliant(rt.state, managed_id)
    tl.ended[managed_id] = ("error", now)


def _lapse(rt: TenantRuntime, tl: Timeline, managed_id: str, now: datetime) -> None:
    device = rt.state.managed.get(managed_id)
    if device is None:
        tl.stopped.pop(managed_id)
        return
    state = str(device.get("complianceState"))
    if state not in LAPSES or managed_id in tl.lapsed:
        return  # already noncompliant (or lapsed): stays stopped, nothing more to end
    tl.lapsed[managed_id] = state
    tl.grace.pop(managed_id, None)
    tl.error_since.pop(managed_id, None)
    _noncompliant(rt.state, managed_id)
    tl.ended[managed_id] = ("validity", now)


def advance(rt: TenantRuntime, before: datetime) -> None:
    """After the clock moved from `before`: checking-in devices check in, deadlines are recorded
    for devices found in grace or Error, then whatever the clock passed ends."""
    tl = timeline(rt)
    now = rt.state.clock.now()
    for managed_id, device in rt.state.managed.items():
        if managed_id not in tl.stopped:
            last = _instant(device.get("lastSyncDateTime"))
            if last is not None and now - last >= CHECKIN_INTERVAL:
                steps = (now - last) // CHECKIN_INTERVAL
                device["lastSyncDateTime"] = iso_z(last + steps * CHECKIN_INTERVAL)
        state = device.get("complianceState")
        if state == "inGracePeriod" and managed_id not in tl.grace:
            expiry = _instant(device.get("complianceGracePeriodExpirationDateTime"))
            if expiry is not None:
                tl.grace[managed_id] = expiry
        elif state == "error" and managed_id not in tl.error_since:
            # First seen in Error before this advance: its seven days run from then at the latest.
            tl.error_since[managed_id] = before
    tick(rt)


# --- admin --------------------------------------------------------------------------------------


def _managed(rt: TenantRuntime, managed_id: str) -> dict[str, Any]:
    device = rt.state.managed.get(managed_id)
    if device is None:
        raise KeyError(managed_id)
    return device


def _when(body: dict[str, Any], name: str) -> datetime | None:
    raw = body.get(name)
    if raw is None:
        return None
    try:
        return parse_datetime(str(raw))
    except ValueError as exc:
        raise EntityError(f"{name} must be an ISO 8601 instant, got {raw!r}") from exc


def enter_grace(rt: TenantRuntime, managed_id: str, expires: datetime) -> None:
    _managed(rt, managed_id)
    # Still compliant in Entra: entities.entra_compliance("inGracePeriod") is True.
    rt.state.patch_managed(
        managed_id,
        {
            "complianceState": "inGracePeriod",
            "complianceGracePeriodExpirationDateTime": iso_z(expires),
        },
    )
    timeline(rt).grace[managed_id] = parse_datetime(iso_z(expires))


def stop_checkins(rt: TenantRuntime, managed_id: str) -> None:
    last = _instant(_managed(rt, managed_id).get("lastSyncDateTime"))
    timeline(rt).stopped[managed_id] = last or rt.state.clock.now()


def resume_checkins(rt: TenantRuntime, managed_id: str) -> None:
    """The device checks in now; if the validity period had made it noncompliant, it is evaluated
    again and gets back the state it had."""
    tl = timeline(rt)
    _managed(rt, managed_id)
    tl.stopped.pop(managed_id, None)
    patch: dict[str, Any] = {"lastSyncDateTime": iso_z(rt.state.clock.now())}
    if managed_id in tl.lapsed:
        patch["complianceState"] = tl.lapsed.pop(managed_id)
    rt.state.patch_managed(managed_id, patch)


def set_error(rt: TenantRuntime, managed_id: str, since: datetime) -> None:
    _managed(rt, managed_id)
    # Intune keeps the device's previous compliance in Entra while a setting is in Error.
    rt.state.patch_managed(managed_id, {"complianceState": "error"}, sync_to_entra=False)
    timeline(rt).error_since[managed_id] = since


def comply(rt: TenantRuntime, managed_id: str) -> None:
    """The user fixed the device: compliant, no grace period, nothing pending."""
    tl = timeline(rt)
    _managed(rt, managed_id)
    for pending in (tl.grace, tl.error_since, tl.lapsed):
        pending.pop(managed_id, None)
    rt.state.patch_managed(
        managed_id,
        {
            "complianceState": "compliant",
            "complianceGracePeriodExpirationDateTime": NO_GRACE_PERIOD,
        },
    )


async def post_timeline(rt: TenantRuntime, request: web.Request) -> Any:
    body = await _body(request)
    if not isinstance(body, dict):
        raise EntityError("expected a JSON object with an 'action'")
    managed_id = request.match_info["id"]
    now = rt.state.clock.now()
    action = body.get("action")
    if action == "grace":
        expires = _when(body, "expires")
        if expires is None:
            expires = now + timedelta(hours=float(body.get("hours", 72)))
        enter_grace(rt, managed_id, expires)
    elif action == "stopCheckins":
        stop_checkins(rt, managed_id)
    elif action == "resumeCheckins":
        resume_checkins(rt, managed_id)
    elif action == "error":
        set_error(rt, managed_id, _when(body, "since") or now)
    elif action == "comply":
        comply(rt, managed_id)
    else:
        raise EntityError(
            "action must be one of grace, stopCheckins, resumeCheckins, error, comply"
        )
    tick(rt)
    return device_view(rt, managed_id)


def device_view(rt: TenantRuntime, managed_id: str) -> dict[str, Any]:
    device = _managed(rt, managed_id)
    tl = timeline(rt)
    ended = tl.ended.get(managed_id)
    return {
        "id": managed_id,
        "complianceState": device.get("complianceState"),
        "lastSyncDateTime": device.get("lastSyncDateTime"),
        "complianceGracePeriodExpirationDateTime": device.get(
            "complianceGracePeriodExpirationDateTime"
        ),
        "checkingIn": managed_id not in tl.stopped,
        "deadlines": {k: iso_z(v) for k, v in deadlines(rt, managed_id).items()},
        "ended": {"by": ended[0], "at": iso_z(ended[1])} if ended else None,
    }


async def get_timeline(rt: TenantRuntime, request: web.Request) -> Any:
    tick(rt)
    tl = timeline(rt)
    ids = sorted({*tl.grace, *tl.stopped, *tl.error_since, *tl.lapsed, *tl.ended})
    return {
        "now": iso_z(rt.state.clock.now()),
        "validityDays": tenant_compliance_settings(rt).checkin_threshold_days,
        "devices": [device_view(rt, i) for i in ids if i in rt.state.managed],
    }
