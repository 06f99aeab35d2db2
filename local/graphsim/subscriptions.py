"""The /subscriptions API of one tenant: create (with the validation handshake), list, get,
renew, delete, reauthorize. Deliveries live in notifications.py.

Time is the tenant's clock (clock.py): expiry limits, and the deletion of subscriptions past
their expirationDateTime, follow it, so a test can let a subscription lapse without waiting.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from .notifications import NotificationHub
from .odata import GraphResponse, graph_error, iso_7, parse_datetime
from .state import TenantState

CHANGE_TYPES = ("created", "updated", "deleted")


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

    def is_live(self, now: datetime) -> bool:
        return self.expiration > now

    def covers(self, object_id: str) -> bool:
        """'devices' covers every device, 'devices/{id}' just one."""
        parts = self.resource.strip("/").lower().split("/")
        return len(parts) == 1 or (len(parts) == 2 and parts[1] == object_id.lower())


def _normalise_resource(resource: str) -> str | None:
    parts = resource.strip().strip("/").split("/")
    if parts[0].lower() != "devices" or len(parts) > 2:
        return None
    return "/".join(["devices", *parts[1:]])


def _refusal(mode: int | None, resource: str) -> GraphResponse | None:
    """Graph's answer when it will not notify on `devices` (setting refuseDeviceSubscriptions).

    `device` is missing from the supported-resources lists
    (concepts/includes/change-notifications-supported-resources-*.md), so a tenant may refuse
    it; null accepts, as Graph has been seen to do for unlisted resources
    (microsoft-graph-docs#8454). The body is the errors.md shape (code, message, innerError)
    with the ExtensionError wording Graph's subscription service uses: BadRequest for an
    unsupported resource (docs-contrib#5376), Forbidden as answered for directory resources
    (msgraph-sdk-dotnet#365).
    """
    if mode == 403:
        return graph_error(
            403,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: Forbidden]",
        )
    if mode == 400:
        return graph_error(
            400,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: BadRequest; Reason: Resource "
            f"'{resource}' is not supported for change notifications.]",
        )
    return None


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
        now = self.tenant.clock.now()
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
        refused = _refusal(self.tenant.settings.refuseDeviceSubscriptions, resource)
        if refused is not None:
            return refused
        change_types = [part.strip() for part in str(body["changeType"]).split(",")]
        bad = [c for c in change_types if c not in CHANGE_TYPES]
        if bad or not change_types:
            return graph_error(400, "InvalidRequest", f"Invalid changeType '{body['changeType']}'.")
        expiration = self._check_expiry(body["expirationDateTime"])
        if isinstance(expiration, GraphResponse):
            return expiration
        self.hub.purge()
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
        self.hub.purge()
        return GraphResponse(
            200,
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions",
                "value": [sub.to_json() for sub in self.items.values()],
            },
        )

    def get(self, sub_id: str) -> GraphResponse:
        self.hub.purge()
        sub = self.items.get(sub_id)
        return GraphResponse(200, self._entity(sub)) if sub else self.not_found(sub_id)

    async def update(self, sub_id: str, body: Any) -> GraphResponse:
        self.hub.purge()
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
        self.hub.purge()
        if self.items.pop(sub_id, None) is None:
            return self.not_found(sub_id)
        return GraphResponse(204)

    async def reauthorize(self, sub_id: str) -> GraphResponse:
        self.hub.purge()
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
