from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.bookkeeping import SubscriptionRecord, SyncState
from shared.views.health import EarlyWarning, PermissionCheck, assess

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LIVE = SubscriptionRecord("sub-1", "active", expires_at=NOW + timedelta(days=2))


@pytest.mark.parametrize(
    ("synced_ago", "subscription", "status"),
    [
        (timedelta(minutes=4), LIVE, "healthy"),
        (
            timedelta(minutes=4),
            SubscriptionRecord(status="refused", last_error="HTTP 400: not supported"),
            "degraded",
        ),
        (
            timedelta(minutes=4),
            SubscriptionRecord("sub-1", "active", expires_at=NOW - timedelta(minutes=1)),
            "degraded",
        ),
        (timedelta(minutes=4), SubscriptionRecord(), "degraded"),
        (timedelta(minutes=31), LIVE, "unhealthy"),
        (None, LIVE, "unhealthy"),
        (None, SubscriptionRecord(status="error"), "unhealthy"),
    ],
)
def test_status(
    synced_ago: timedelta | None, subscription: SubscriptionRecord, status: str
) -> None:
    sync = SyncState(last_success_at=NOW - synced_ago if synced_ago else None)
    report = assess(
        sync, subscription, now=NOW, stale_after=timedelta(minutes=30), devices=10, ineligible=2
    )
    assert report["status"] == status
    assert bool(report["problems"]) is (status != "healthy")


def test_report_carries_lag_expiry_errors_and_counts() -> None:
    sync = SyncState(
        last_success_at=NOW - timedelta(seconds=90), last_run_changes=7, phase="incremental"
    )
    refused = SubscriptionRecord(
        status="refused", last_error="HTTP 400 InvalidRequest: resource not supported"
    )
    report = assess(
        sync, refused, now=NOW, stale_after=timedelta(minutes=30), devices=120, ineligible=9
    )
    assert report["sync"]["lagSeconds"] == 90
    assert report["sync"]["lastRunChanges"] == 7
    assert report["subscription"]["lastError"].endswith("resource not supported")
    assert report["devices"] == {"total": 120, "ineligible": 9}
    assert "resource not supported" in report["problems"][0]


TRIED = NOW - timedelta(minutes=3)
# Graph's error text as error_text() records it from the errors.md body of a refused /devices
# subscription (code ExtensionError, as answered for an unsupported resource).
REFUSAL = (
    "HTTP 400 ExtensionError: Operation: Create; Exception: [Status Code: BadRequest; "
    "Reason: Resource 'devices' is not supported for change notifications.]"
)


@pytest.mark.parametrize(
    ("subscription", "mode", "phrases"),
    [
        (replace(LIVE, last_checked_at=TRIED), "notifications+delta", ["sub-1", "seconds"]),
        (
            SubscriptionRecord(
                status="refused", last_error=REFUSAL, last_checked_at=TRIED, last_error_at=TRIED
            ),
            "delta-only",
            ["refused", "not supported for change notifications", "2026-11-29T11:57:00Z"],
        ),
        (
            SubscriptionRecord(
                status="error",
                last_error="HTTP 503 serviceNotAvailable: busy",
                last_checked_at=TRIED,
            ),
            "delta-only",
            ["could not be kept", "serviceNotAvailable", "2026-11-29T11:57:00Z"],
        ),
        (
            SubscriptionRecord(
                "sub-1", "active", expires_at=NOW - timedelta(minutes=1), last_checked_at=TRIED
            ),
            "delta-only",
            ["expired 2026-11-29T11:59:00Z"],
        ),
        (SubscriptionRecord(), "delta-only", ["no subscription has been set up"]),
    ],
)
def test_detection_mode_explains_how_changes_arrive(
    subscription: SubscriptionRecord, mode: str, phrases: list[str]
) -> None:
    sync = SyncState(last_success_at=NOW - timedelta(seconds=40))
    report = assess(
        sync, subscription, now=NOW, stale_after=timedelta(minutes=30), devices=1, ineligible=0
    )
    detection = report["detection"]
    assert detection["mode"] == mode
    assert report["status"] == ("healthy" if mode == "notifications+delta" else "degraded")
    for phrase in phrases:
        assert phrase in detection["explanation"]
    assert detection["subscriptionError"] == (subscription.last_error or None)
    assert detection["lastTriedAt"] == (
        "2026-11-29T11:57:00Z" if subscription.last_checked_at else None
    )
    assert ("delta sync alone" in detection["explanation"]) is (mode == "delta-only")


GRANTED = PermissionCheck("Policy.Read.All", "policies cannot be read", missing=False)
MISSING = PermissionCheck(
    "DeviceManagementConfiguration.Read.All",
    "lost alerts cannot name the failing compliance policies and settings",
    missing=True,
    detail="Graph refused the read (403)",
    checked_at=NOW - timedelta(minutes=3),
)


@pytest.mark.parametrize(
    ("permissions", "status"),
    [((), "healthy"), ((GRANTED,), "healthy"), ((GRANTED, MISSING), "degraded")],
)
def test_a_missing_optional_permission_is_degraded_and_named(
    permissions: tuple[PermissionCheck, ...], status: str
) -> None:
    report = assess(
        SyncState(last_success_at=NOW),
        LIVE,
        now=NOW,
        stale_after=timedelta(minutes=30),
        devices=10,
        ineligible=0,
        permissions=permissions,
    )
    assert report["status"] == status
    assert [p["status"] for p in report["permissions"]] == [
        "missing" if p.missing else "granted" for p in permissions
    ]
    named = [p for p in report["problems"] if "DeviceManagementConfiguration.Read.All" in p]
    assert len(named) == (1 if MISSING in permissions else 0)
    if named:
        assert "cannot name the failing compliance" in named[0] and "grant-graph" in named[0]


# --- the early-warning timers: the Intune watch and the deadline timer ----------------------

HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("intune", "finished_ago", "overdue_ago", "problems"),
    [
        (True, timedelta(minutes=14), None, []),
        (True, timedelta(minutes=60), None, []),  # at the limit: not yet late
        (True, timedelta(minutes=61), None, ["Intune watch last finished a run 61 min ago"]),
        (False, timedelta(days=3), None, []),  # Intune off: the watch does not run
        (True, None, None, []),  # never finished: a new deployment's first run is still due
        (True, None, timedelta(minutes=7), ["deadline came due 7 min ago"]),
        (
            True,
            timedelta(hours=5),
            timedelta(hours=2),
            ["Intune watch last finished a run 300 min ago", "deadline came due 120 min ago"],
        ),
    ],
)
def test_a_stopped_early_warning_timer_is_degraded_and_named(
    intune: bool,
    finished_ago: timedelta | None,
    overdue_ago: timedelta | None,
    problems: list[str],
) -> None:
    early = EarlyWarning(
        intune_enabled=intune,
        watch_finished_at=NOW - finished_ago if finished_ago else None,
        watch_stale_after=HOUR,
        oldest_overdue=NOW - overdue_ago if overdue_ago else None,
    )
    sync = SyncState(last_success_at=NOW - timedelta(minutes=1))
    report = assess(
        sync,
        LIVE,
        now=NOW,
        stale_after=timedelta(minutes=30),
        devices=10,
        ineligible=0,
        early_warning=early,
    )
    assert report["status"] == ("degraded" if problems else "healthy")
    assert len(report["problems"]) == len(problems)
    for found, expected in zip(report["problems"], problems, strict=True):
        assert expected in found
    assert report["earlyWarning"]["intuneWatch"]["staleAfterSeconds"] == 3600
    assert report["earlyWarning"]["deadlines"]["oldestOverdueAt"] == (
        (NOW - overdue_ago).isoformat().replace("+00:00", "Z") if overdue_ago else None
    )
