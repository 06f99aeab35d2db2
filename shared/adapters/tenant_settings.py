"""The tenant's Intune compliance settings: read from Graph (bounded), kept in Table storage.

One GET of `deviceManagement/settings` (shared.core.tenant_settings says what the values mean),
daily by the `refresh_tenant_settings` timer. The values live in one row of the DevicemonSync
bookkeeping table (PartitionKey `tenant`, RowKey `settings`), with the time Graph gave them, so
every worker evaluates with the same ones and `devicemon tenant` can show them. A read that fails
(403 for a missing permission, throttling, an outage, a slow or malformed answer) never loses what
was known: the last values read stay, or Intune's defaults if none ever were, and the row says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from azure.data.tables import UpdateMode
from kiota_abstractions.api_error import APIError

from shared import logs
from shared.adapters.graph import GraphJson, error_text
from shared.adapters.reloaded import Reloaded
from shared.adapters.table_adapter import TableAdapter
from shared.core.tenant_settings import (
    DEFAULT,
    TenantSettings,
    TenantSettingsError,
    parse_settings,
)
from shared.retry import RetriesExhausted

log = logging.getLogger("devicemon.tenant_settings")
PATH = "/deviceManagement/settings"
# deviceManagement reads are documented with DeviceManagementConfiguration.Read.All
# (intune-deviceconfig-devicemanagement-get.md), the permission compliance details use too.
PERMISSION = "DeviceManagementConfiguration.Read.All"
ROW_KEY = ("tenant", "settings")
DEFAULT_TIMEOUT = 20.0  # seconds for the read, retries included: a daily timer can wait that long
# How long a worker evaluates with the values it loaded before loading them again: a changed
# threshold is seen within minutes of the daily read, at one point read per worker per period.
CACHE_TTL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class StoredSettings:
    settings: TenantSettings
    checked_at: datetime | None = None  # the last attempt to read Graph, successful or not


def _entity(stored: StoredSettings) -> dict[str, Any]:
    s = stored.settings
    return {
        "PartitionKey": ROW_KEY[0],
        "RowKey": ROW_KEY[1],
        "CheckinThresholdDays": s.checkin_threshold_days,
        "SecureByDefault": s.secure_by_default,
        "ReadAt": s.read_at,
        "Status": s.status,
        "Note": s.note[:4000],
        "CheckedAt": stored.checked_at,
    }


def _from_entity(entity: Any) -> StoredSettings:
    defaults = TenantSettings()
    return StoredSettings(
        TenantSettings(
            checkin_threshold_days=int(
                entity.get("CheckinThresholdDays") or defaults.checkin_threshold_days
            ),
            secure_by_default=bool(entity.get("SecureByDefault", defaults.secure_by_default)),
            read_at=entity.get("ReadAt"),
            status=str(entity.get("Status") or DEFAULT),
            note=str(entity.get("Note") or ""),
        ),
        entity.get("CheckedAt"),
    )


class TenantSettingsBook(TableAdapter):
    """The row in the bookkeeping table (Settings.sync_table)."""

    async def load(self) -> StoredSettings:
        entity = await self._get(*ROW_KEY)
        return _from_entity(entity) if entity is not None else StoredSettings(TenantSettings())

    async def save(self, stored: StoredSettings) -> None:
        # One writer a day, idempotent: the latest read wins, no ETag needed.
        await self._table.upsert_entity(_entity(stored), mode=UpdateMode.REPLACE)


async def _read(graph: GraphJson, now: datetime, within: float) -> TenantSettings | str:
    """The settings Graph gave, or why there are none."""
    try:
        async with asyncio.timeout(within):
            body = await graph.get(PATH)
        return parse_settings(body, now)
    except TimeoutError:
        return f"Graph did not answer within {within:g} s"
    except RetriesExhausted as exc:
        cause = exc.__cause__
        if isinstance(cause, APIError):
            return _refused(cause)
        return f"Graph could not be reached: {exc}"
    except APIError as exc:
        return _refused(exc)
    except TenantSettingsError as exc:
        return f"Graph's answer is not usable: {exc}"
    except (httpx.HTTPError, ValueError) as exc:
        return f"Graph's answer could not be read: {error_text(exc)}"


def _refused(exc: APIError) -> str:
    if exc.response_status_code == 403:
        return f"Graph refused the read (403); grant {PERMISSION}"
    return f"Graph answered {exc.response_status_code}: {error_text(exc)}"


async def refresh(
    graph: GraphJson, book: TenantSettingsBook, now: datetime, *, within: float = DEFAULT_TIMEOUT
) -> TenantSettings:
    """Read the settings from Graph and store them; on failure keep and store what was known,
    saying why. Returns the settings in effect."""
    outcome = await _read(graph, now, within)
    if isinstance(outcome, TenantSettings):
        settings = outcome
        logs.event(
            log,
            "tenant_settings_read",
            checkin_threshold_days=settings.checkin_threshold_days,
            secure_by_default=settings.secure_by_default,
        )
    else:
        settings = (await book.load()).settings.kept(outcome)
        logs.event(
            log,
            "tenant_settings_kept",
            level=logging.WARNING,
            reason=outcome,
            status=settings.status,
            checkin_threshold_days=settings.checkin_threshold_days,
        )
    await book.save(StoredSettings(settings, now))
    return settings


class CachedTenantSettings:
    """What evaluation uses in a long-lived worker: the stored values, loaded again at most once
    per `ttl`. A failed load keeps the values in hand (or the defaults): evaluation never waits
    for, nor fails on, the settings."""

    def __init__(
        self, book: TenantSettingsBook, clock: Callable[[], datetime], ttl: timedelta = CACHE_TTL
    ) -> None:
        async def load() -> TenantSettings:
            return (await book.load()).settings

        self._cached = Reloaded(
            load,
            clock=clock,
            ttl=ttl,
            fallback=TenantSettings,
            event="tenant_settings_load_failed",
        )

    async def current(self) -> TenantSettings:
        return await self._cached.get()
