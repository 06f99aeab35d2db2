"""The Conditional Access policy timer: read the tenant's policies and keep what was read
(shared/adapters/ca_policies.py, docs/ca-policies.md). Eligibility does not use them yet."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import azure.functions as func

from shared import logs
from shared.adapters.ca_policies import CaPolicyStore, PolicyRead, ReadStatus, refresh, table_name
from shared.adapters.store import make_service
from shared.runtime import Runtime, current

log = logging.getLogger("devicemon.policies")


async def refresh_policies(runtime: Runtime) -> PolicyRead:
    """One read of the policies, stored; a failed read is recorded, not raised."""
    service = make_service(runtime.settings)
    try:
        store = CaPolicyStore(service, table_name(runtime.settings))
        await store.ensure_table()
        read = await refresh(runtime.graph_json(), store, datetime.now(UTC))
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
