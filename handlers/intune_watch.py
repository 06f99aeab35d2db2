"""The Intune watch timer (INTUNE_WATCH_SCHEDULE, every 15 minutes): queue an observation for each
device whose Intune facts moved since the last run (shared/sources/intune_watch.py)."""

from __future__ import annotations

import azure.functions as func

from shared.adapters.intune_digests import DigestBook, table_name
from shared.adapters.store import make_service
from shared.adapters.tenant_settings import TenantSettingsBook
from shared.core.tenant_settings import TenantSettings
from shared.runtime import Runtime, current
from shared.sources.intune_watch import IntuneWatch, WatchResult, log_result


async def run_intune_watch(runtime: Runtime) -> WatchResult:
    """One run; raises when Graph, the table or the queue fails (the digests are then left as they
    were, and the next run finds the same changes)."""
    settings = runtime.settings
    if not settings.intune_enabled:
        return WatchResult("off")
    # A client of its own, like the other quarter-hourly and daily timers: the runtime's table
    # clients serve the processor.
    service = make_service(settings)
    book = DigestBook(service, table_name(settings.table_prefix))
    tenant_book = TenantSettingsBook(service, settings.sync_table)
    try:
        await book.ensure_table()
        await tenant_book.ensure_table()

        async def tenant() -> TenantSettings:
            book.requests["get"] += 1  # the tenant settings row: counted with the watch's reads
            return (await tenant_book.load()).settings

        watch = IntuneWatch(
            graph=runtime.graph_json(),
            book=book,
            sink=runtime.change_queue().with_timeout(None),
            tenant=tenant,
            warning_days=settings.intune_checkin_warn_days,
            clock=runtime.now,
        )
        return await watch.run()
    finally:
        await tenant_book.close()
        await book.close()
        await service.close()


async def intune_watch_timer(timer: func.TimerRequest, runtime: Runtime | None = None) -> None:
    log_result(await run_intune_watch(runtime or current()))
