"""The Conditional Access policy timer: read the tenant's policies, keep what was read
(shared/adapters/ca_policies.py, docs/ca-policies.md), and when what judges devices changed since
the fleet was last judged, queue every known device for re-evaluation
(shared/sources/policy_change.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import azure.functions as func

from shared import logs
from shared.adapters.ca_policies import CaPolicyStore, PolicyRead, ReadStatus, refresh, table_name
from shared.adapters.policy_source import SETTING_DIGEST, in_force
from shared.adapters.store import make_service
from shared.runtime import Runtime, current
from shared.sources.policy_change import reevaluate_fleet

log = logging.getLogger("devicemon.policies")
# Added to the workers' cache period before queued re-evaluations become visible: instances'
# clocks and the broker's are not exactly one.
RELOAD_MARGIN = timedelta(seconds=10)


def reevaluation_delay(cache_seconds: int) -> timedelta:
    """How long after the policies are stored every worker is sure to hold them."""
    if cache_seconds <= 0:
        return timedelta(0)
    return timedelta(seconds=cache_seconds) + RELOAD_MARGIN


async def reevaluate_if_changed(runtime: Runtime, store: CaPolicyStore, now: datetime) -> int:
    """Queue the fleet when the policies in force differ from those it was last judged by;
    returns how many devices were queued (0: nothing changed). Raises when queuing fails: the
    mark is not moved, so the next run tries again."""
    stored = await store.load()
    force = in_force(stored, runtime.settings.eligibility_source)
    # Before any re-evaluation the fleet was judged by the setting (devicemon before policies).
    judged_by = (stored.fleet_digest if stored else "") or SETTING_DIGEST
    if judged_by == force.digest:
        return 0
    queued = await reevaluate_fleet(
        (await runtime.store()).live_device_ids(),
        runtime.change_queue().with_timeout(None),
        digest=force.digest,
        now=now,
        delay=reevaluation_delay(runtime.settings.policy_cache_seconds),
    )
    await store.mark_fleet(force.digest)
    logs.event(
        log,
        "eligibility_source_changed",
        mode=force.mode.value,
        why=force.why,
        digest=force.digest,
        previous=judged_by,
        devices=queued,
    )
    return queued


async def refresh_policies(runtime: Runtime) -> PolicyRead:
    """One read of the policies, stored; a failed read is recorded, not raised. A change of
    what judges devices queues the fleet; a failure to queue is logged and retried next run."""
    service = make_service(runtime.settings)
    now = datetime.now(UTC)
    try:
        store = CaPolicyStore(service, table_name(runtime.settings))
        await store.ensure_table()
        read = await refresh(runtime.graph_json(), store, now)
        try:
            await reevaluate_if_changed(runtime, store, now)
        except Exception as exc:  # the read is kept; the next run queues the fleet
            logs.event(
                log,
                "fleet_reevaluation_failed",
                level=logging.ERROR,
                error=f"{type(exc).__name__}: {exc}",
            )
        await store.close()
    finally:
        await service.close()
    logs.event(
        log,
        "ca_policies_read",
        level=logging.INFO if read.status is ReadStatus.OK else logging.WARNING,
        status=read.status.value,
        policies=len(read.policies),
        detail=read.detail or None,
    )
    return read


async def policy_timer(timer: func.TimerRequest, runtime: Runtime | None = None) -> None:
    await refresh_policies(runtime or current())
