"""The tenant settings timer: read the tenant's Intune compliance settings and store them
(shared/adapters/tenant_settings.py); evaluation reads them from there."""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func

from shared.adapters.store import make_service
from shared.adapters.tenant_settings import TenantSettingsBook, refresh
from shared.core.tenant_settings import TenantSettings
from shared.runtime import Runtime, current


async def refresh_tenant_settings(runtime: Runtime) -> TenantSettings:
    """One read, stored; a failed read keeps what was known and says why (never raises for
    Graph's sake: the next tick tries again)."""
    # A client of its own: one daily run, and no reach into the runtime's table clients.
    service = make_service(runtime.settings)
    try:
        book = TenantSettingsBook(service, runtime.settings.sync_table)
        await book.ensure_table()
        try:
            return await refresh(runtime.graph_json(), book, datetime.now(UTC))
        finally:
            await book.close()
    finally:
        await service.close()


async def tenant_settings_timer(timer: func.TimerRequest, runtime: Runtime | None = None) -> None:
    await refresh_tenant_settings(runtime or current())
