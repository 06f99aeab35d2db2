"""GET /api/health: 200 healthy/degraded, 503 unhealthy — for Azure Monitor availability tests.

Besides the sync and the subscription, health reads whether decisions reach anyone: alerts left
pending (PendingAlerts), failed attempts (ProcessingFailures) and dead letters, peeked with the
receive rights the triggers already have (shared/adapters/dead_letters.py). Every read is bounded: a
frozen or dead dependency makes health answer 503 with a JSON reason, never hang.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import azure.functions as func

from handlers.responses import json_error
from shared import logs
from shared.adapters.ca_policies import StoredPolicies
from shared.adapters.pending_alerts import stranded
from shared.runtime import Runtime, current
from shared.views.health import (
    DEADLINE_OVERDUE_AFTER,
    Delivery,
    EarlyWarning,
    EligibilityMode,
    PermissionCheck,
    assess,
)

log = logging.getLogger("devicemon.health")

# Counting devices scans DeviceState. When that scan is slow (a large fleet) the count is kept a
# minute, the pace at which monitors poll; small fleets are always counted afresh.
COUNT_TTL_SECONDS = 60.0
SLOW_SCAN_SECONDS = 0.5
_counts: dict[str, tuple[float, int, int]] = {}
# Peeking opens a receiver per entity (about half a second each, in parallel): monitors polling
# every minute from several regions share one peek per half minute.
DEAD_LETTER_TTL_SECONDS = 30.0
_dead_letters: dict[str, tuple[float, dict[str, int]]] = {}
# Bounds on what health reads: a frozen dependency must give a 503, not a hang.
STORAGE_BOUND_SECONDS = 10.0
SERVICE_BUS_BOUND_SECONDS = 10.0


async def _device_counts(rt: Runtime) -> tuple[int, int]:
    key = rt.settings.state_table
    cached = _counts.get(key)
    if cached and time.monotonic() - cached[0] < COUNT_TTL_SECONDS:
        return cached[1], cached[2]
    started = time.monotonic()
    total = ineligible = 0
    store = await rt.store()
    async for eligible in store.eligibility():
        total += 1
        ineligible += 0 if eligible else 1
    if time.monotonic() - started > SLOW_SCAN_SECONDS:
        _counts[key] = (time.monotonic(), total, ineligible)
    return total, ineligible


async def _dead_letter_counts(rt: Runtime) -> dict[str, int]:
    from shared.adapters.dead_letters import counts

    key = f"{rt.settings.device_changes_queue}|{rt.settings.device_alerts_topic}"
    cached = _dead_letters.get(key)
    if cached and time.monotonic() - cached[0] < DEAD_LETTER_TTL_SECONDS:
        return cached[1]
    async with asyncio.timeout(SERVICE_BUS_BOUND_SECONDS):
        found = await counts(rt.service_bus(), rt.settings)
    _dead_letters[key] = (time.monotonic(), found)
    return found


async def _delivery(rt: Runtime, now: datetime) -> Delivery:
    s = rt.settings
    pending_after = timedelta(seconds=s.pending_alert_sweep_seconds)
    window = timedelta(minutes=s.health_failure_window_minutes)
    unreadable: list[str] = []
    store = await rt.store()
    held = await stranded(await rt.pending_alerts(), store.get_state, now - pending_after)
    failures = await (await rt.failure_log()).count_since(now - window)
    dead_letters: dict[str, int] | None
    try:
        dead_letters = await _dead_letter_counts(rt)
    except Exception as exc:  # health reports what it cannot see instead of failing
        dead_letters = None
        unreadable.append(f"dead-letter queues could not be read ({type(exc).__name__})")
    return Delivery(
        pending_overdue=len(held),
        oldest_pending_at=min((h.held_at for h in held), default=None),
        pending_after=pending_after,
        failures=failures,
        failure_window=window,
        max_failures=s.health_max_failures,
        dead_letters=dead_letters,
        unreadable=tuple(unreadable),
    )


async def _stored_policies(rt: Runtime) -> tuple[StoredPolicies | None, bool]:
    """(the stored policy read, whether the table could be read at all)."""
    from shared.adapters.ca_policies import CaPolicyStore, table_name

    try:
        return await CaPolicyStore(await rt.table_service(), table_name(rt.settings)).load(), True
    except Exception as exc:  # a table not deployed yet: health says it cannot tell
        logs.event(log, "health_permission_unreadable", what="policies", error=type(exc).__name__)
        return None, False


async def _early_warning(rt: Runtime) -> EarlyWarning | None:
    """The Intune watch's last finished run and the deadline index's oldest overdue row (one
    read each); None when they cannot be read (health then says nothing of them)."""
    from shared.adapters.intune_digests import DigestBook, table_name

    settings = rt.settings
    try:
        finished = None
        if settings.intune_enabled:
            book = DigestBook(await rt.table_service(), table_name(settings.table_prefix))
            try:
                last = await book.last_run()
            finally:
                await book.close()
            finished = last.get("FinishedAt") if last else None
        oldest = None
        # The index's own clock: rows are due by the runtime's clock (a test tenant's, locally).
        async for page in (await rt.deadlines()).due(
            rt.now() - DEADLINE_OVERDUE_AFTER, page_size=1
        ):
            oldest = page[0].due
            break
    except Exception as exc:
        logs.event(log, "health_early_warning_unreadable", error=type(exc).__name__)
        return None
    stale_after = timedelta(minutes=settings.intune_watch_stale_minutes)
    return EarlyWarning(settings.intune_enabled, finished, stale_after, oldest)


async def _permissions(rt: Runtime, policies: StoredPolicies | None) -> tuple[PermissionCheck, ...]:
    """The optional Graph permissions, as the last read that needed each found them. A read
    never tried, or a record that cannot be read (a table not deployed yet), says nothing."""
    from shared.adapters.ca_policies import ReadStatus
    from shared.adapters.tenant_settings import TenantSettingsBook
    from shared.core.compliance_details import READ_PERMISSION
    from shared.core.tenant_settings import READ

    checks: list[PermissionCheck] = []
    mark = await (await rt.bookkeeping()).compliance_read_permission()
    if mark.status:
        checks.append(
            PermissionCheck(
                READ_PERMISSION,
                "lost alerts cannot name the failing compliance policies and settings",
                mark.status == "missing",
                mark.detail,
                mark.at,
            )
        )
    service = await rt.table_service()
    try:
        tenant = (await TenantSettingsBook(service, rt.settings.sync_table).load()).settings
        if tenant.read_at is not None or "403" in tenant.note:
            checks.append(
                PermissionCheck(
                    READ_PERMISSION,
                    "the tenant's compliance validity period and default marking cannot be read "
                    "(Intune's defaults are used)",
                    tenant.status != READ and "403" in tenant.note,
                    tenant.note,
                    tenant.read_at,
                )
            )
    except Exception as exc:
        logs.event(log, "health_permission_unreadable", what="tenant", error=type(exc).__name__)
    if policies is not None:
        checks.append(
            PermissionCheck(
                "Policy.Read.All",
                "the tenant's Conditional Access policies cannot be read "
                f"(CA_POLICY={rt.settings.policy.value} is used)",
                policies.status is ReadStatus.PERMISSION_MISSING,
                policies.detail,
                policies.read_at,
            )
        )
    return tuple(checks)


async def health(req: func.HttpRequest, runtime: Runtime | None = None) -> func.HttpResponse:
    rt = runtime or current()
    now = datetime.now(UTC)
    try:
        async with asyncio.timeout(STORAGE_BOUND_SECONDS + SERVICE_BUS_BOUND_SECONDS):
            books = await rt.bookkeeping()
            total, ineligible = await _device_counts(rt)
            sync, subscription = await books.sync_state(), await books.subscription()
            delivery = await _delivery(rt, now)
            policies, readable = await _stored_policies(rt)
            permissions = await _permissions(rt, policies)
            early_warning = await _early_warning(rt)
    except Exception as exc:
        # Table storage unreachable or frozen: devicemon cannot record anything right now.
        logs.event(log, "health_unavailable", level=logging.ERROR, error=type(exc).__name__)
        return json_error(
            503, "storageUnavailable", f"health could not be read: {type(exc).__name__}"
        )
    report = assess(
        sync,
        subscription,
        now=now,
        stale_after=timedelta(minutes=rt.settings.sync_stale_minutes),
        devices=total,
        ineligible=ineligible,
        delivery=delivery,
        permissions=permissions,
        eligibility=EligibilityMode(
            rt.settings.eligibility_source, rt.settings.policy.value, policies
        )
        if readable
        else None,
        early_warning=early_warning,
    )
    status = 503 if report["status"] == "unhealthy" else 200
    return func.HttpResponse(json.dumps(report), status_code=status, mimetype="application/json")
