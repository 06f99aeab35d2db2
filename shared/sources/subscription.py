"""The Graph change-notification subscription to /devices: create, renew, reauthorize, recreate.

Best-effort by design: Graph does not list /devices among the resources that support change
notifications, and may refuse (or silently not honour) the subscription. Every outcome is
recorded with Graph's own words in the DevicemonSync table, and the delta sync keeps devicemon
correct meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from kiota_abstractions.api_error import APIError
from kiota_abstractions.method import Method

from shared import logs
from shared.adapters.bookkeeping import Bookkeeping, SubscriptionRecord
from shared.adapters.graph import GraphJson, error_text
from shared.core.models import utc_now
from shared.core.snapshots import parse_time
from shared.settings import Settings

log = logging.getLogger("devicemon.subscription")
RESOURCE = "devices"
CHANGE_TYPES = "updated,deleted"


class SubscriptionKeeper:
    def __init__(
        self,
        *,
        graph: GraphJson,
        books: Bookkeeping,
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._graph = graph
        self._books = books
        self._settings = settings
        self._clock = clock

    def _expiry(self) -> str:
        at = self._clock() + timedelta(minutes=self._settings.subscription_expiry_minutes)
        return at.isoformat().replace("+00:00", "Z")

    async def ensure(self) -> SubscriptionRecord:
        """One live subscription, renewed well before it expires; created when missing."""
        record = await self._books.subscription()
        if not self._settings.notification_url:
            return await self._save(
                record,
                status="error",
                error="NOTIFICATION_URL is not set: no subscription can be created",
            )
        if record.subscription_id:
            try:
                live = await self._graph.get(f"/subscriptions/{record.subscription_id}")
            except APIError as exc:
                if exc.response_status_code != 404:
                    return await self._save(record, status="error", error=error_text(exc))
                logs.event(
                    log,
                    "subscription_gone",
                    level=logging.WARNING,
                    subscription_id=record.subscription_id,
                )
                return await self._create(record)
            expires = parse_time((live or {}).get("expirationDateTime"))
            if expires is None or expires - self._clock() < timedelta(
                minutes=self._settings.subscription_renew_before_minutes
            ):
                return await self._renew(record)
            return await self._save(record, status="active", expires_at=expires, error="")
        return await self._create(record)

    async def _create(self, record: SubscriptionRecord) -> SubscriptionRecord:
        # Only called when Graph has no live subscription for us (none yet, or gone): the old id
        # is forgotten even if this create is refused, or every later upkeep run would spend a
        # request on its 404 before trying to create again.
        record = replace(record, subscription_id="", expires_at=None)
        body: dict[str, Any] = {
            "changeType": CHANGE_TYPES,
            "notificationUrl": self._settings.notification_url,
            "resource": RESOURCE,
            "expirationDateTime": self._expiry(),
            "clientState": self._settings.client_state,
        }
        if self._settings.lifecycle_notification_url:
            body["lifecycleNotificationUrl"] = self._settings.lifecycle_notification_url
        try:
            created = await self._graph.request(Method.POST, "/subscriptions", body)
        except APIError as exc:
            status = "refused" if 400 <= (exc.response_status_code or 0) < 500 else "error"
            logs.event(
                log,
                "subscription_refused",
                level=logging.WARNING,
                status=status,
                error=error_text(exc),
            )
            return await self._save(record, status=status, error=error_text(exc))
        now = self._clock()
        logs.event(log, "subscription_created", subscription_id=created.get("id"))
        return await self._save(
            replace(
                record, subscription_id=str(created.get("id")), created_at=now, last_renewed_at=now
            ),
            status="active",
            expires_at=parse_time(created.get("expirationDateTime")),
            error="",
        )

    async def _renew(self, record: SubscriptionRecord) -> SubscriptionRecord:
        try:
            renewed = await self._graph.request(
                Method.PATCH,
                f"/subscriptions/{record.subscription_id}",
                {"expirationDateTime": self._expiry()},
            )
        except APIError as exc:
            if exc.response_status_code == 404:
                return await self._create(record)
            return await self._save(record, status="error", error=error_text(exc))
        logs.event(log, "subscription_renewed", subscription_id=record.subscription_id)
        expires = parse_time((renewed or {}).get("expirationDateTime"))
        return await self._save(
            replace(record, last_renewed_at=self._clock()),
            status="active",
            expires_at=expires,
            error="",
        )

    async def reauthorize(self, subscription_id: str) -> SubscriptionRecord:
        """Answer `reauthorizationRequired`: reauthorize, or renew when that fails."""
        record = await self._books.subscription()
        if record.subscription_id and subscription_id and record.subscription_id != subscription_id:
            logs.event(
                log,
                "lifecycle_for_unknown_subscription",
                level=logging.WARNING,
                subscription_id=subscription_id,
            )
            return record
        try:
            await self._graph.request(Method.POST, f"/subscriptions/{subscription_id}/reauthorize")
        except APIError as exc:
            logs.event(log, "reauthorize_failed", level=logging.WARNING, error=error_text(exc))
            return await self._renew(replace(record, subscription_id=subscription_id))
        logs.event(log, "subscription_reauthorized", subscription_id=subscription_id)
        return await self._save(
            replace(record, subscription_id=subscription_id, last_renewed_at=self._clock()),
            status="active",
            error="",
        )

    async def recreate(self) -> SubscriptionRecord:
        """Answer `subscriptionRemoved`: the old one is gone, make a new one."""
        record = await self._books.subscription()
        if record.subscription_id:
            # Most likely already gone, which is why we are here.
            with contextlib.suppress(APIError):
                await self._graph.request(Method.DELETE, f"/subscriptions/{record.subscription_id}")
        return await self._create(replace(record, subscription_id=""))

    async def delete(self) -> SubscriptionRecord:
        record = await self._books.subscription()
        if record.subscription_id:
            try:
                await self._graph.request(Method.DELETE, f"/subscriptions/{record.subscription_id}")
            except APIError as exc:
                if exc.response_status_code != 404:
                    return await self._save(record, status="error", error=error_text(exc))
        return await self._save(
            replace(record, subscription_id="", expires_at=None), status="absent", error=""
        )

    async def _save(
        self,
        record: SubscriptionRecord,
        *,
        status: str,
        error: str,
        expires_at: datetime | None = None,
    ) -> SubscriptionRecord:
        now = self._clock()
        return await self._books.save_subscription(
            replace(
                record,
                status=status,
                expires_at=expires_at or record.expires_at,
                last_checked_at=now,
                last_error=error,
                last_error_at=now if error else record.last_error_at,
                notification_url=self._settings.notification_url or "",
            )
        )
