"""Health verdict from the bookkeeping rows: pure, so every combination is tested."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.bookkeeping import SubscriptionRecord, SyncState


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def assess(
    sync: SyncState,
    subscription: SubscriptionRecord,
    *,
    now: datetime,
    stale_after: timedelta,
    devices: int | None,
    ineligible: int | None,
) -> dict[str, Any]:
    """healthy: sync fresh and notifications live; degraded: sync fresh, notifications not
    (refused, failing, expired or never set up): devicemon still sees every change, only later;
    unhealthy: the sync is stale or never succeeded: changes may go unseen."""
    lag = (now - sync.last_success_at) if sync.last_success_at else None
    sync_fresh = lag is not None and lag <= stale_after
    subscription_live = (
        subscription.status == "active"
        and subscription.expires_at is not None
        and subscription.expires_at > now
    )
    problems = []
    if not sync_fresh:
        problems.append(
            "delta sync has never succeeded"
            if lag is None
            else f"last successful delta sync {int(lag.total_seconds() // 60)} min ago"
        )
    if not subscription_live:
        problems.append(
            f"change notifications unavailable ({subscription.status}{': ' + subscription.last_error if subscription.last_error else ''})"
        )
    status = "unhealthy" if not sync_fresh else ("healthy" if subscription_live else "degraded")
    return {
        "status": status,
        "checkedAt": _iso(now),
        "problems": problems,
        "sync": {
            "lastSuccessAt": _iso(sync.last_success_at),
            "lagSeconds": round(lag.total_seconds()) if lag is not None else None,
            "staleAfterSeconds": round(stale_after.total_seconds()),
            "phase": sync.phase,
            "running": bool(sync.lease_owner) and (sync.lease_until or now) > now,
            "lastRunPages": sync.last_run_pages,
            "lastRunChanges": sync.last_run_changes,
            "lastRunSeconds": sync.last_run_seconds,
            "fullResyncs": sync.full_resyncs,
            "lastError": sync.last_error or None,
            "lastErrorAt": _iso(sync.last_error_at),
        },
        "subscription": {
            "status": subscription.status,
            "id": subscription.subscription_id or None,
            "expiresAt": _iso(subscription.expires_at),
            "lastRenewedAt": _iso(subscription.last_renewed_at),
            "lastCheckedAt": _iso(subscription.last_checked_at),
            "lastError": subscription.last_error or None,
        },
        "devices": {"total": devices, "ineligible": ineligible},
    }
