"""Graph subscriptions: create/renew validation handshake, change and lifecycle notifications.

Notifications are queued per (kind, subscription, url) and sent by background workers so
the admin call that changed a device never waits on the receiver; `flush()` waits for the
queues to drain. Every handshake and delivery is recorded with status and latency.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, urlsplit

import aiohttp
from yarl import URL

from .entities import EntityError
from .odata import GraphResponse, graph_error, iso_7, now_utc, parse_datetime, status_phrase
from .state import ChangeKind, TenantState

CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
MAX_DELIVERY_LOG = 100_000
SubscriptionCreated = Callable[["Subscription"], None]


@dataclass
class Subscription:
    id: str
    resource: str
    change_types: list[str]
    notification_url: str
    expiration: datetime
    client_state: str | None = None
    lifecycle_notification_url: str | None = None
    application_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    creator_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    include_resource_data: bool | None = None
    latest_supported_tls_version: str | None = "v1_2"
    notification_query_options: str | None = None
    encryption_certificate: str | None = None
    encryption_certificate_id: str | None = None
    notification_url_app_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": self.notification_query_options,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": iso_7(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": self.include_resource_data,
            "latestSupportedTlsVersion": self.latest_supported_tls_version,
            "encryptionCertificate": self.encryption_certificate,
            "encryptionCertificateId": self.encryption_certificate_id,
            "notificationUrlAppId": self.notification_url_app_id,
        }

    def is_live(self) -> bool:
        return self.expiration > now_utc()

    def covers(self, object_id: str) -> bool:
        """'devices' covers every device, 'devices/{id}' just one."""
        parts = self.resource.strip("/").lower().split("/")
        return len(parts) == 1 or (len(parts) == 2 and parts[1] == object_id.lower())


def _normalise_resource(resource: str) -> str | None:
    parts = resource.strip().strip("/").split("/")
    if parts[0].lower() != "devices" or len(parts) > 2:
        return None
    return "/".join(["devices", *parts[1:]])


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


class NotificationHub:
    def __init__(
        self,
        tenant: TenantState,
        subscriptions: dict[str, Subscription],
        session: Callable[[], aiohttp.ClientSession],
    ) -> None:
        self.tenant = tenant
        self.subscriptions = subscriptions
        self._session = session
        self._queues: dict[str, asyncio.Queue[tuple[Subscription, dict[str, Any], float]]] = {}
        self._workers: dict[str, list[asyncio.Task[None]]] = {}
        self.deliveries: list[dict[str, Any]] = []
        tenant.listeners.append(self.on_change)

    # --- recording ---------------------------------------------------------------------------

    def _record(self, entry: dict[str, Any]) -> None:
        self.deliveries.append(entry)
        if len(self.deliveries) > MAX_DELIVERY_LOG:
            del self.deliveries[: MAX_DELIVERY_LOG // 10]

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
                content_type = response.headers.get("Content-Type", "")
                if response.status != 200:
                    error = graph_error(
                        400,
                        "ValidationError",
                        "Subscription validation request failed. HTTP status code is "
                        f"'{status_phrase(response.status)}'. Notification endpoint must "
                        "respond with 200 OK to validation request.",
                    )
                elif not content_type.lower().startswith("text/plain"):
                    error = graph_error(
                        400,
                        "ValidationError",
                        "Subscription validation request failed. Notification endpoint must "
                        "respond with content type text/plain to validation request.",
                    )
                elif body.decode("utf-8", "replace") != token:
                    error = graph_error(
                        400,
                        "ValidationError",
                        "Subscription validation request failed. Response must exactly match "
                        "validationToken query parameter.",
                    )
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
        # Entra reports creations as "updated"; a "created"-only subscription stays silent.
        change_type = "updated" if kind == "created" else kind
        for sub in list(self.subscriptions.values()):
            if change_type not in sub.change_types or not sub.covers(object_id):
                continue
            if not sub.is_live():
                continue
            item = {
                "id": str(uuid.uuid4()),
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": iso_7(sub.expiration),
                "clientState": sub.client_state,
                "changeType": change_type,
                "resource": f"devices/{object_id}",
                "tenantId": tenant.name,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Device",
                    "@odata.id": f"devices/{object_id}",
                    "id": object_id,
                },
            }
            self._enqueue("change", sub, sub.notification_url, item)

    def send_lifecycle(self, sub: Subscription, event: str) -> None:
        if event not in LIFECYCLE_EVENTS:
            raise EntityError(f"lifecycleEvent must be one of {list(LIFECYCLE_EVENTS)}")
        if not sub.lifecycle_notification_url:
            raise EntityError("subscription has no lifecycleNotificationUrl")
        item = {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": iso_7(sub.expiration),
            "tenantId": self.tenant.name,
            "clientState": sub.client_state,
            "lifecycleEvent": event,
        }
        # Lifecycle events are control traffic: sent even when change notifications are off.
        self._enqueue("lifecycle", sub, sub.lifecycle_notification_url, item, force=True)
        if event == "subscriptionRemoved":
            self.subscriptions.pop(sub.id, None)

    def _enqueue(
        self, kind: str, sub: Subscription, url: str, item: dict[str, Any], force: bool = False
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
        queue = self._queues.get(key)
        if queue is None:
            queue = asyncio.Queue()
            self._queues[key] = queue
            self._workers[key] = [
                asyncio.create_task(self._worker(kind, url, queue))
                for _ in range(self.tenant.settings.notificationConcurrency)
            ]
        queue.put_nowait((sub, item, time.perf_counter()))

    async def _worker(
        self,
        kind: str,
        url: str,
        queue: asyncio.Queue[tuple[Subscription, dict[str, Any], float]],
    ) -> None:
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

    async def _deliver(
        self, kind: str, url: str, batch: list[tuple[Subscription, dict[str, Any], float]]
    ) -> None:
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
            queues = list(self._queues.values())
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
        tasks = [task for workers in self._workers.values() for task in workers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._queues.clear()
        self._workers.clear()


class SubscriptionService:
    """The /subscriptions API of one tenant."""

    def __init__(self, tenant: TenantState, session: Callable[[], aiohttp.ClientSession]) -> None:
        self.tenant = tenant
        self.items: dict[str, Subscription] = {}
        self.hub = NotificationHub(tenant, self.items, session)

    def _check_expiry(self, text: Any) -> datetime | GraphResponse:
        if not isinstance(text, str):
            return graph_error(400, "InvalidRequest", "expirationDateTime is required.")
        try:
            expiration = parse_datetime(text)
        except ValueError:
            return graph_error(400, "InvalidRequest", f"Invalid expirationDateTime '{text}'.")
        limit = self.tenant.settings.maxSubscriptionMinutes
        now = now_utc()
        if expiration <= now:
            return graph_error(
                400, "InvalidRequest", "Subscription expiration must be in the future."
            )
        if expiration > now + timedelta(minutes=limit):
            return graph_error(
                400,
                "InvalidRequest",
                f"Subscription expiration can only be {limit} minutes in the future.",
            )
        return expiration

    async def create(self, body: Any) -> GraphResponse:
        if not isinstance(body, dict):
            return graph_error(400, "BadRequest", "Empty Payload. JSON content expected.")
        for required in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not body.get(required):
                return graph_error(
                    400, "InvalidRequest", f"Required property '{required}' is missing."
                )
        resource = _normalise_resource(str(body["resource"]))
        if resource is None:
            return graph_error(
                400,
                "InvalidRequest",
                f"Resource '{body['resource']}' is not supported by this simulator "
                "(only 'devices' and 'devices/{id}').",
            )
        refuse = self.tenant.settings.refuseDeviceSubscriptions
        if refuse == 403:
            return graph_error(
                403,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: Forbidden; Reason: Forbidden]",
            )
        if refuse == 400:
            return graph_error(
                400,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: BadRequest; Reason: Resource "
                f"'{resource}' is not supported for change notifications.]",
            )
        change_types = [part.strip() for part in str(body["changeType"]).split(",")]
        bad = [c for c in change_types if c not in CHANGE_TYPES]
        if bad or not change_types:
            return graph_error(400, "InvalidRequest", f"Invalid changeType '{body['changeType']}'.")
        expiration = self._check_expiry(body["expirationDateTime"])
        if isinstance(expiration, GraphResponse):
            return expiration
        quota = self.tenant.settings.maxSubscriptions
        if quota is not None and len(self.items) >= quota:
            return graph_error(
                403,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: Forbidden; Reason: Subscription "
                f"quota exceeded: the tenant already has {len(self.items)} subscriptions.]",
            )
        urls = [("notificationUrl", str(body["notificationUrl"]))]
        if body.get("lifecycleNotificationUrl"):
            urls.append(("lifecycleNotificationUrl", str(body["lifecycleNotificationUrl"])))
        failure = await self.hub.validate_subscription(urls)
        if failure is not None:
            return failure
        sub = Subscription(
            id=str(uuid.uuid4()),
            resource=resource,
            change_types=change_types,
            notification_url=str(body["notificationUrl"]),
            expiration=expiration,
            client_state=body.get("clientState"),
            lifecycle_notification_url=body.get("lifecycleNotificationUrl"),
            include_resource_data=body.get("includeResourceData"),
            latest_supported_tls_version=body.get("latestSupportedTlsVersion") or "v1_2",
            notification_query_options=body.get("notificationQueryOptions"),
            encryption_certificate=body.get("encryptionCertificate"),
            encryption_certificate_id=body.get("encryptionCertificateId"),
        )
        self.items[sub.id] = sub
        return GraphResponse(201, self._entity(sub))

    def _entity(self, sub: Subscription) -> dict[str, Any]:
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            **sub.to_json(),
        }

    def not_found(self, sub_id: str) -> GraphResponse:
        return graph_error(
            404, "ResourceNotFound", f"The object was not found. Subscription '{sub_id}'."
        )

    def list(self) -> GraphResponse:
        return GraphResponse(
            200,
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions",
                "value": [sub.to_json() for sub in self.items.values()],
            },
        )

    def get(self, sub_id: str) -> GraphResponse:
        sub = self.items.get(sub_id)
        return GraphResponse(200, self._entity(sub)) if sub else self.not_found(sub_id)

    async def update(self, sub_id: str, body: Any) -> GraphResponse:
        sub = self.items.get(sub_id)
        if sub is None:
            return self.not_found(sub_id)
        if not isinstance(body, dict):
            return graph_error(400, "BadRequest", "Empty Payload. JSON content expected.")
        allowed = {"expirationDateTime", "notificationUrl", "@odata.type"}
        extra = sorted(set(body) - allowed)
        if extra:
            return graph_error(
                400, "InvalidRequest", f"Properties {extra} cannot be updated on a subscription."
            )
        expiration = sub.expiration
        if "expirationDateTime" in body:
            checked = self._check_expiry(body["expirationDateTime"])
            if isinstance(checked, GraphResponse):
                return checked
            expiration = checked
        url = str(body.get("notificationUrl") or sub.notification_url)
        if self.tenant.settings.validateOnRenew:
            # Graph re-validates the endpoint on renewal, which can fail a renewal.
            failure = await self.hub.validate_subscription([("notificationUrl", url)])
            if failure is not None:
                return failure
        sub.expiration = expiration
        sub.notification_url = url
        return GraphResponse(200, self._entity(sub))

    def delete(self, sub_id: str) -> GraphResponse:
        if self.items.pop(sub_id, None) is None:
            return self.not_found(sub_id)
        return GraphResponse(204)

    async def reauthorize(self, sub_id: str) -> GraphResponse:
        sub = self.items.get(sub_id)
        if sub is None:
            return self.not_found(sub_id)
        if self.tenant.settings.validateOnRenew:
            failure = await self.hub.validate_subscription(
                [("notificationUrl", sub.notification_url)]
            )
            if failure is not None:
                return failure
        return GraphResponse(204)
