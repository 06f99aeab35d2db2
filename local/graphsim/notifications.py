"""Outbound traffic to subscribers: validation handshakes, change and lifecycle notifications.

Notifications are queued and sent by background workers so the admin call that changed a
device never waits on the receiver; `flush()` waits for the queues to drain. Every handshake
and delivery is recorded with status and latency.

Ordering: each (kind, subscription, url) has `notificationConcurrency` lanes, one worker
each, and a resource always takes the same lane. Changes to different devices are delivered
in parallel; changes to one device leave in the order they happened, one POST at a time.
With one shared queue and several workers, a device's "deleted" could overtake its
"updated" whenever the earlier POST was slower (a fresh connection, a busy receiver), so the
order a receiver saw depended on timing, not on the simulator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
import uuid
import zlib
from collections.abc import Callable, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlsplit

import aiohttp
from yarl import URL

from .entities import EntityError
from .odata import GraphResponse, graph_error, iso_7, now_utc, status_phrase
from .state import ChangeKind, TenantState

if TYPE_CHECKING:
    from .subscriptions import Subscription

LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
MAX_DELIVERY_LOG = 100_000
Queued = tuple["Subscription", dict[str, Any], float]


def make_validation_token() -> str:
    """A token shaped like Graph's, plus characters that break naive URL decoding."""
    nonce = base64.b64encode(secrets.token_bytes(12)).decode()
    return (
        "Validation: Testing client application reachability for subscription "
        f"Request-Id: {uuid.uuid4()} nonce={nonce}&x=%+/?"
    )


def with_query(url: str, name: str, value: str) -> URL:
    """Append an encoded query parameter without letting the client re-encode it."""
    separator = "&" if urlsplit(url).query else "?"
    return URL(f"{url}{separator}{name}={quote_plus(value)}", encoded=True)


def drop_expired(subscriptions: MutableMapping[str, Subscription], now: datetime) -> list[str]:
    """Delete subscriptions past their expirationDateTime; returns their ids.

    change-notifications-delivery-webhooks.md: "If you don't renew a subscription in time,
    Microsoft Graph deletes the subscription" - a late PATCH then gets 404, not a renewal.
    """
    expired = [sub_id for sub_id, sub in subscriptions.items() if sub.expiration <= now]
    for sub_id in expired:
        del subscriptions[sub_id]
    return expired


def lane_of(key: str, lanes: int) -> int:
    """The lane a resource's notifications take (stable, so one device stays in order)."""
    return zlib.crc32(key.encode()) % lanes


class _Lanes:
    """`count` FIFO queues with one worker each; a key always maps to the same queue."""

    def __init__(self, count: int, worker: Callable[[asyncio.Queue[Queued]], Any]) -> None:
        self.queues: list[asyncio.Queue[Queued]] = [asyncio.Queue() for _ in range(count)]
        self.tasks = [asyncio.create_task(worker(queue)) for queue in self.queues]

    def put(self, key: str, entry: Queued) -> None:
        self.queues[lane_of(key, len(self.queues))].put_nowait(entry)


class NotificationHub:
    def __init__(
        self,
        tenant: TenantState,
        subscriptions: MutableMapping[str, Subscription],
        session: Callable[[], aiohttp.ClientSession],
    ) -> None:
        self.tenant = tenant
        self.subscriptions = subscriptions
        self._session = session
        self._lanes: dict[str, _Lanes] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.expired: list[str] = []  # ids deleted for being past expiry, oldest first
        tenant.listeners.append(self.on_change)

    # --- recording ---------------------------------------------------------------------------

    def _record(self, entry: dict[str, Any]) -> None:
        self.deliveries.append(entry)
        if len(self.deliveries) > MAX_DELIVERY_LOG:
            del self.deliveries[: MAX_DELIVERY_LOG // 10]

    def purge(self) -> None:
        self.expired.extend(drop_expired(self.subscriptions, self.tenant.clock.now()))

    # --- validation handshake ----------------------------------------------------------------

    async def validate(self, url: str, purpose: str) -> GraphResponse | None:
        """POST ?validationToken=... and require 200 text/plain echoing the token exactly.

        Returns the Graph error to answer with, or None when the endpoint passed.
        """
        token = make_validation_token()
        timeout = self.tenant.settings.validationTimeoutSeconds
        started = time.perf_counter()
        entry: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "kind": "validation",
            "purpose": purpose,
            "url": url,
            "status": None,
            "error": None,
            "sentAt": iso_7(now_utc()),
        }
        error: GraphResponse | None = None
        try:
            async with self._session().post(
                with_query(url, "validationToken", token),
                data=b"",
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                body = await response.read()
                entry["status"] = response.status
                error = _validation_error(response, body, token)
        except TimeoutError:
            entry["error"] = "timeout"
            error = graph_error(400, "InvalidRequest", "Subscription validation request timed out.")
        except aiohttp.ClientError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            error = graph_error(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond "
                "with 200 OK to validation request.",
            )
        entry["latencyMs"] = round((time.perf_counter() - started) * 1000, 2)
        entry["ok"] = error is None
        if error is not None and entry["error"] is None:
            entry["error"] = error.body["error"]["message"]
        self._record(entry)
        return error

    async def validate_subscription(self, sub_urls: list[tuple[str, str]]) -> GraphResponse | None:
        results = await asyncio.gather(*(self.validate(url, purpose) for purpose, url in sub_urls))
        return next((result for result in results if result is not None), None)

    # --- change notifications ------------------------------------------------------------------

    def on_change(self, tenant: TenantState, object_id: str, kind: ChangeKind) -> None:
        self.purge()
        # Entra reports creations as "updated"; a "created"-only subscription stays silent.
        change_type = "updated" if kind == "created" else kind
        for sub in list(self.subscriptions.values()):
            if change_type not in sub.change_types or not sub.covers(object_id):
                continue
            item = {
                "id": str(uuid.uuid4()),
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": iso_7(sub.expiration),
                "clientState": sub.client_state,
                "changeType": change_type,
                "resource": f"devices/{object_id}",
                # The tenant's GUID, as in the docs' example payload
                # (change-notifications-delivery-webhooks.md), never its name.
                "tenantId": tenant.tenant_id,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Device",
                    "@odata.id": f"devices/{object_id}",
                    "id": object_id,
                },
            }
            self._enqueue("change", sub, sub.notification_url, item, lane_key=object_id)

    def send_lifecycle(self, sub: Subscription, event: str) -> None:
        if event not in LIFECYCLE_EVENTS:
            raise EntityError(f"lifecycleEvent must be one of {list(LIFECYCLE_EVENTS)}")
        if not sub.lifecycle_notification_url:
            raise EntityError("subscription has no lifecycleNotificationUrl")
        item = {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": iso_7(sub.expiration),
            "tenantId": self.tenant.tenant_id,
            "clientState": sub.client_state,
            "lifecycleEvent": event,
        }
        # Lifecycle events are control traffic: sent even when change notifications are off.
        url = sub.lifecycle_notification_url
        self._enqueue("lifecycle", sub, url, item, lane_key=sub.id, force=True)
        if event == "subscriptionRemoved":
            self.subscriptions.pop(sub.id, None)

    def _enqueue(
        self,
        kind: str,
        sub: Subscription,
        url: str,
        item: dict[str, Any],
        *,
        lane_key: str,
        force: bool = False,
    ) -> None:
        if not force and not self.tenant.settings.notificationsEnabled:
            self._record(
                {
                    "id": item.get("id"),
                    "kind": kind,
                    "subscriptionId": sub.id,
                    "url": url,
                    "items": [item],
                    "status": None,
                    "dropped": True,
                    "sentAt": iso_7(now_utc()),
                }
            )
            return
        key = f"{kind}|{sub.id}|{url}"
        lanes = self._lanes.get(key)
        if lanes is None:
            count = self.tenant.settings.notificationConcurrency
            lanes = _Lanes(count, lambda queue: self._worker(kind, url, queue))
            self._lanes[key] = lanes
        lanes.put(lane_key, (sub, item, time.perf_counter()))

    async def _worker(self, kind: str, url: str, queue: asyncio.Queue[Queued]) -> None:
        while True:
            first = await queue.get()
            batch = [first]
            # Graph packs whatever is already waiting into one POST ("value" array).
            while len(batch) < self.tenant.settings.notificationMaxBatch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._deliver(kind, url, batch)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _deliver(self, kind: str, url: str, batch: list[Queued]) -> None:
        items = [item for _, item, _ in batch]
        started = time.perf_counter()
        entry: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "kind": kind,
            "subscriptionId": batch[0][0].id,
            "url": url,
            "items": items,
            "status": None,
            "error": None,
            "dropped": False,
            "sentAt": iso_7(now_utc()),
            "queuedMs": round((started - batch[0][2]) * 1000, 2),
        }
        try:
            async with self._session().post(
                url,
                json={"value": items},
                timeout=aiohttp.ClientTimeout(
                    total=self.tenant.settings.notificationTimeoutSeconds
                ),
            ) as response:
                await response.read()
                entry["status"] = response.status
        except TimeoutError:
            entry["error"] = "timeout"
        except aiohttp.ClientError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["latencyMs"] = round((time.perf_counter() - started) * 1000, 2)
        self._record(entry)

    async def flush(self, timeout_seconds: float) -> dict[str, Any]:
        """Wait until every queued notification has been attempted."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            queues = [queue for lanes in self._lanes.values() for queue in lanes.queues]
            pending = sum(queue.qsize() for queue in queues)
            busy = [q for q in queues if q._unfinished_tasks]  # type: ignore[attr-defined]
            if not busy:
                return {"flushed": True, "pending": 0, "deliveries": len(self.deliveries)}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {"flushed": False, "pending": pending, "deliveries": len(self.deliveries)}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(queue.join() for queue in busy)), timeout=remaining
                )

    async def close(self) -> None:
        tasks = [task for lanes in self._lanes.values() for task in lanes.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lanes.clear()


def _validation_error(
    response: aiohttp.ClientResponse, body: bytes, token: str
) -> GraphResponse | None:
    content_type = response.headers.get("Content-Type", "")
    if response.status != 200:
        return graph_error(
            400,
            "ValidationError",
            "Subscription validation request failed. HTTP status code is "
            f"'{status_phrase(response.status)}'. Notification endpoint must "
            "respond with 200 OK to validation request.",
        )
    if not content_type.lower().startswith("text/plain"):
        return graph_error(
            400,
            "ValidationError",
            "Subscription validation request failed. Notification endpoint must "
            "respond with content type text/plain to validation request.",
        )
    if body.decode("utf-8", "replace") != token:
        return graph_error(
            400,
            "ValidationError",
            "Subscription validation request failed. Response must exactly match "
            "validationToken query parameter.",
        )
    return None
