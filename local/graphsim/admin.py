"""Thin Python clients for the graphsim admin API: `SimAdmin` (sync) and `AsyncSimAdmin`.

Both expose the same methods; the async one returns awaitables. Use the async client from
async code that also runs a notification receiver on the same loop: a blocking call such
as `flush_notifications()` would otherwise stall the receiver it is waiting for.

    admin = SimAdmin("http://127.0.0.1:8123", "tenant-a")
    admin.ensure()
    admin.generate(100_000, seed=1)
    client.request_adapter.base_url = admin.graph_url
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from .entities import PENDING_HYBRID
from .odata import tenant_guid

R = TypeVar("R")


class SimAdminError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"graphsim admin call failed ({status}): {body}")
        self.status = status
        self.body = body


def _result(response: httpx.Response) -> Any:
    body = response.json() if response.content else None
    if response.status_code >= 400:
        raise SimAdminError(response.status_code, body)
    return body


class _AdminApi(Generic[R]):
    """Every admin call, written once; `_call` decides sync (value) or async (awaitable)."""

    def __init__(self, base_url: str, tenant: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self._prefix = f"/_sim/{quote(tenant, safe='')}"

    @property
    def graph_url(self) -> str:
        """Value for `client.request_adapter.base_url`."""
        return f"{self.base_url}/{quote(self.tenant, safe='')}/v1.0"

    @property
    def tenant_id(self) -> str:
        """The GUID Graph sends as this tenant's `tenantId` (the name itself if it is one)."""
        return tenant_guid(self.tenant)

    def _call(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> R:
        raise NotImplementedError

    # tenant and settings
    def ensure(self, **settings: Any) -> R:
        """Create the tenant if needed (optionally applying settings); returns its summary."""
        return self._call("PUT", "", {"settings": settings} if settings else None)

    def summary(self) -> R:
        return self._call("GET", "")

    def drop(self) -> R:
        return self._call("DELETE", "")

    def settings(self, **changes: Any) -> R:
        """PATCH settings (see README for names, e.g. deltaPageSize=50); no args = read."""
        if not changes:
            return self._call("GET", "/settings")
        return self._call("PATCH", "/settings", changes)

    # devices
    def upsert_device(self, notify: bool = True, **props: Any) -> R:
        return self._call("POST", "/devices", props, _notify(notify))

    def upsert_devices(self, devices: list[dict[str, Any]], notify: bool = True) -> R:
        return self._call("POST", "/devices", {"devices": devices}, _notify(notify))

    def upsert_pending_hybrid_device(self, notify: bool = True, **props: Any) -> R:
        """A hybrid device synced from on-premises AD that has not registered yet ("Pending"):
        entities.PENDING_HYBRID, then `props` on top."""
        return self.upsert_device(notify=notify, **{**PENDING_HYBRID, **props})

    def generate(
        self,
        count: int,
        seed: int = 0,
        managed_devices: bool = True,
        notify: bool = False,
        pending_fraction: float = 0.0,
    ) -> R:
        """A seeded fleet; `pending_fraction` of its hybrid devices are Pending."""
        body = {
            "count": count,
            "seed": seed,
            "managedDevices": managed_devices,
            "notify": notify,
            "pendingFraction": pending_fraction,
        }
        return self._call("POST", "/devices/generate", body, timeout=300.0)

    def mutate(
        self,
        count: int,
        seed: int = 0,
        delete_fraction: float = 0.0,
        soft_delete_fraction: float = 0.0,
        patch: dict[str, Any] | None = None,
        notify: bool = True,
    ) -> R:
        body = {
            "count": count,
            "seed": seed,
            "deleteFraction": delete_fraction,
            "softDeleteFraction": soft_delete_fraction,
            "patch": patch,
            "notify": notify,
        }
        return self._call("POST", "/devices/mutate", body, timeout=300.0)

    def device(self, object_id: str) -> R:
        """{"state": "active"|"softDeleted"|"deleted", "seq": n, "device": {...}}"""
        return self._call("GET", f"/devices/{object_id}")

    def devices(self, offset: int = 0, limit: int = 100) -> R:
        return self._call("GET", "/devices", params={"offset": str(offset), "limit": str(limit)})

    def device_ids(self) -> R:
        return self._call("GET", "/devices/ids")

    def patch_device(self, object_id: str, notify: bool = True, **props: Any) -> R:
        return self._call("PATCH", f"/devices/{object_id}", props, _notify(notify))

    def patch_devices(self, patches: list[dict[str, Any]], notify: bool = True) -> R:
        return self._call("PATCH", "/devices", {"devices": patches}, _notify(notify))

    def delete_device(self, object_id: str, soft: bool = False, notify: bool = True) -> R:
        params = {"mode": "soft" if soft else "hard", **_notify(notify)}
        return self._call("DELETE", f"/devices/{object_id}", params=params)

    def delete_devices(self, ids: list[str], soft: bool = False, notify: bool = True) -> R:
        body = {"ids": ids, "mode": "soft" if soft else "hard"}
        return self._call("POST", "/devices/delete", body, _notify(notify))

    def restore_device(self, object_id: str, notify: bool = True) -> R:
        return self._call("POST", f"/devices/{object_id}/restore", params=_notify(notify))

    # Intune managed devices
    def upsert_managed_device(self, **props: Any) -> R:
        return self._call("POST", "/managedDevices", props)

    def managed_devices(self, azure_ad_device_id: str | None = None, limit: int = 100) -> R:
        params = {"limit": str(limit)}
        if azure_ad_device_id:
            params["azureADDeviceId"] = azure_ad_device_id
        return self._call("GET", "/managedDevices", params=params)

    def patch_managed_device(self, managed_id: str, sync_to_entra: bool = True, **props: Any) -> R:
        params = {"syncToEntra": "true" if sync_to_entra else "false"}
        return self._call("PATCH", f"/managedDevices/{managed_id}", props, params)

    def delete_managed_device(self, managed_id: str) -> R:
        return self._call("DELETE", f"/managedDevices/{managed_id}")

    # Intune's timeline on the tenant's clock (intune_timeline.py)
    def enter_grace(
        self, managed_id: str, expires: str | None = None, hours: float | None = None
    ) -> R:
        """Intune's grace schedule: `inGracePeriod` until `expires` (ISO; or `hours` from the
        tenant's now; 72 h by default), compliant in Entra meanwhile, noncompliant after."""
        body: dict[str, Any] = {"action": "grace", "expires": expires}
        if hours is not None:
            body["hours"] = hours
        return self._call("POST", f"/managedDevices/{managed_id}/timeline", body)

    def stop_checkins(self, managed_id: str) -> R:
        """The device stops checking in: lastSyncDateTime stays, and past the tenant's validity
        period (deviceComplianceCheckinThresholdDays) the device is noncompliant."""
        return self._call(
            "POST", f"/managedDevices/{managed_id}/timeline", {"action": "stopCheckins"}
        )

    def resume_checkins(self, managed_id: str) -> R:
        """The device checks in now (and every ~8 h of the clock after); a validity lapse ends."""
        body = {"action": "resumeCheckins"}
        return self._call("POST", f"/managedDevices/{managed_id}/timeline", body)

    def set_compliance_error(self, managed_id: str, since: str | None = None) -> R:
        """A setting in Error since `since` (ISO; default now): Entra keeps its isCompliant,
        and seven days after `since` the device is noncompliant."""
        body = {"action": "error", "since": since}
        return self._call("POST", f"/managedDevices/{managed_id}/timeline", body)

    def comply(self, managed_id: str) -> R:
        """The device is fixed: compliant, no grace period, nothing pending."""
        return self._call("POST", f"/managedDevices/{managed_id}/timeline", {"action": "comply"})

    def intune_timeline(self) -> R:
        """{"now", "validityDays", "devices": [{"id", "complianceState", "lastSyncDateTime",
        "checkingIn", "deadlines": {"grace"|"validity"|"error": iso}, "ended": {...}|null}]}"""
        return self._call("GET", "/timeline")

    # faults
    def faults(self) -> R:
        return self._call("GET", "/faults")

    def set_latency(self, ms: float, jitter_ms: float = 0.0) -> R:
        return self._call("PUT", "/faults/latency", {"ms": ms, "jitterMs": jitter_ms})

    def add_fault(
        self,
        status: int = 429,
        count: int | None = None,
        fraction: float | None = None,
        retry_after: float | None = None,
        path: str | None = None,
        route: str | None = None,
        method: str | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> R:
        """Answer matching requests with `status` (next `count` and/or a `fraction`).

        retry_after=None sends no Retry-After header (like some Intune 429s); fractions such
        as 2.128 are sent as given (throttling.md).
        """
        rule = {
            "status": status,
            "count": count,
            "fraction": fraction,
            "retryAfter": retry_after,
            "path": path,
            "route": route,
            "method": method,
            "code": code,
            "message": message,
        }
        return self._call("POST", "/faults/rules", rule)

    def throttle(
        self,
        count: int = 1,
        retry_after: float | None = 2.128,
        route: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> R:
        """The next `count` matching requests get throttling.md's 429, by default with its
        fractional `Retry-After: 2.128`."""
        return self.add_fault(
            status=429, count=count, retry_after=retry_after, route=route, method=method, path=path
        )

    def remove_fault(self, rule_id: str) -> R:
        return self._call("DELETE", f"/faults/rules/{rule_id}")

    def clear_faults(self) -> R:
        return self._call("DELETE", "/faults")

    # notifications and subscriptions
    def flush_notifications(self, timeout_seconds: float = 10.0) -> R:
        return self._call(
            "POST",
            "/notifications/flush",
            {"timeoutSeconds": timeout_seconds},
            timeout=timeout_seconds + 10,
        )

    def deliveries(self, since: int = 0, kind: str | None = None) -> R:
        """{"total": n, "deliveries": [...]} - kind: change | lifecycle | validation."""
        params = {"since": str(since)}
        if kind:
            params["kind"] = kind
        return self._call("GET", "/notifications", params=params)

    def clear_deliveries(self) -> R:
        return self._call("DELETE", "/notifications")

    def subscriptions(self) -> R:
        return self._call("GET", "/subscriptions")

    def set_subscription_expiry(self, sub_id: str, expiration_iso: str) -> R:
        body = {"expirationDateTime": expiration_iso}
        return self._call("PATCH", f"/subscriptions/{sub_id}", body)

    def refuse_device_subscriptions(self, status: int = 400) -> R:
        """POST /subscriptions on devices answers Graph's refusal (400 unsupported resource,
        or 403); existing subscriptions stay."""
        return self.settings(refuseDeviceSubscriptions=status)

    def accept_device_subscriptions(self) -> R:
        """Subscriptions on devices are created (after the validation handshake)."""
        return self.settings(refuseDeviceSubscriptions=None)

    def remove_subscription(self, sub_id: str) -> R:
        return self._call("DELETE", f"/subscriptions/{sub_id}")

    def send_lifecycle(self, sub_id: str, event: str) -> R:
        """event: reauthorizationRequired | subscriptionRemoved | missed (queued; flush)."""
        return self._call("POST", f"/subscriptions/{sub_id}/lifecycle", {"event": event})

    # the tenant's clock
    def clock(self) -> R:
        """{"now": iso, "offsetSeconds": n}: the time the tenant's Graph goes by."""
        return self._call("GET", "/clock")

    def advance_clock(
        self, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0
    ) -> R:
        """Move the tenant's clock forward: delta tokens expire after 7 days of it,
        subscriptions past their expirationDateTime are deleted, and Intune's timeline moves
        (check-ins, grace periods, validity period, Error: intune_timeline.py)."""
        body = {"seconds": seconds, "minutes": minutes, "hours": hours, "days": days}
        return self._call("POST", "/clock/advance", body)

    # delta, Intune actions, accounting
    def expire_delta_tokens(self) -> R:
        """Every outstanding token fails as expired (setting deltaTokenExpiredMode)."""
        return self._call("POST", "/delta/expire")

    def reset_delta_sync(self) -> R:
        """Every outstanding token gets Graph's synchronization reset: 410 Gone + Location."""
        return self._call("POST", "/delta/reset")

    def delta_page_sizes(self, sizes: list[int] | None) -> R:
        """Delta pages cycle through these sizes (capped by the client's maxpagesize)."""
        return self.settings(deltaPageSizes=sizes)

    def force_delta_repeats(self, count: int) -> R:
        """The last `count` items of every delta page come again on the next page."""
        return self.settings(deltaRepeatCount=count)

    def delta_changed_properties_only(self, enabled: bool = True) -> R:
        """Updated delta items carry id + changed properties (the docs; the default)."""
        return self.settings(deltaChangedPropertiesOnly=enabled)

    def sync_device_calls(self) -> R:
        return self._call("GET", "/syncDeviceCalls")

    def clear_sync_device_calls(self) -> R:
        return self._call("DELETE", "/syncDeviceCalls")

    def requests(self) -> R:
        """{"httpRequests", "batchItems", "routes": {"GET /devices/{id}": n}, "statuses"}"""
        return self._call("GET", "/requests")

    def reset_requests(self) -> R:
        """Reset counters; returns the counts before the reset."""
        return self._call("DELETE", "/requests")


class SimClock:
    """The tenant's clock as a client reads it (wall clock + the tenant's offset), for a devicemon
    Runtime(clock=...) that must judge by the simulator's time; `advance` moves both."""

    def __init__(self, admin: SimAdmin) -> None:
        self.admin = admin
        self.offset = timedelta(seconds=admin.clock()["offsetSeconds"])

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **amount: float) -> None:
        """advance(days=..., hours=..., minutes=..., seconds=...)"""
        self.offset = timedelta(seconds=self.admin.advance_clock(**amount)["offsetSeconds"])


def _notify(notify: bool) -> dict[str, str]:
    return {"notify": "true" if notify else "false"}


class SimAdmin(_AdminApi[Any]):
    """Blocking admin client (httpx)."""

    def __init__(self, base_url: str, tenant: str) -> None:
        super().__init__(base_url, tenant)
        self._client = httpx.Client(base_url=self.base_url)

    def _call(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Any:
        response = self._client.request(
            method, self._prefix + path, json=json, params=params, timeout=timeout
        )
        return _result(response)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SimAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSimAdmin(_AdminApi[Awaitable[Any]]):
    """Async admin client (httpx.AsyncClient); same methods, awaitable results."""

    def __init__(self, base_url: str, tenant: str) -> None:
        super().__init__(base_url, tenant)
        self._client = httpx.AsyncClient(base_url=self.base_url)

    async def _request(
        self,
        method: str,
        path: str,
        json: Any,
        params: dict[str, str] | None,
        timeout_s: float,
    ) -> Any:
        response = await self._client.request(
            method, self._prefix + path, json=json, params=params, timeout=timeout_s
        )
        return _result(response)

    def _call(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Awaitable[Any]:
        return self._request(method, path, json, params, timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncSimAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@asynccontextmanager
async def scratch_tenant(base_url: str, prefix: str = "t") -> AsyncIterator[AsyncSimAdmin]:
    """A tenant of its own (unique name, created on entry, dropped on exit) and its client."""
    client = AsyncSimAdmin(base_url, f"{prefix}-{uuid.uuid4().hex[:10]}")
    await client.ensure()
    try:
        yield client
    finally:
        await client.drop()
        await client.aclose()
