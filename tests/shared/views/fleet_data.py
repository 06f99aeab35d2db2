"""DeviceState and DeviceHistory rows built in memory, for the pure fleet and report tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from shared.core.records import DeviceRecord, HistoryRow, StateRow

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def record(object_id: str = "00000000-0000-4000-8000-000000000001", **changes: Any) -> DeviceRecord:
    base = DeviceRecord(
        object_id=object_id,
        version=1,
        evaluated_at=T0,
        eligible=True,
        reasons=(),
        warnings=(),
        policy="compliant_or_hybrid",
        join_type="entra_joined",
        compliance="compliant",
        management="intune",
        display_name="LAPTOP-0042",
        device_id="8a1d3c5e-7f90-4b2a-8c6d-1e2f3a4b5c6d",
        trust_type="AzureAd",
        operating_system="Windows",
        operating_system_version="10.0.22631.4460",
        account_enabled=True,
        deleted=False,
        grace_period_expires=None,
        user_principal_name="adele.vance@contoso.example",
        managed_device_id="c1d2e3f4-a5b6-4c7d-8e9f-a0b1c2d3e4f5",
        source="sync",
        correlation_id="c0ffee",
        fingerprint="f",
    )
    return replace(base, **changes)


def ineligible(**changes: Any) -> DeviceRecord:
    return record(
        eligible=False,
        reasons=("NOT_COMPLIANT", "NOT_HYBRID_JOINED"),
        compliance="noncompliant",
        **changes,
    )


def state(
    rec: DeviceRecord, transition: str = "first_seen", at: datetime | None = None
) -> StateRow:
    return StateRow(rec, transition, at or rec.evaluated_at)


def history(rec: DeviceRecord, transition: str) -> HistoryRow:
    return HistoryRow(rec, transition)


def sample_report(today_at: datetime, devices: int = 40, days: int = 30, first_day: int = 0) -> Any:
    """A month of a small fleet: devices first seen over the month (from `first_day` of it on:
    monitoring began then), some losing compliance and some getting it back, one disabled, one
    hostile name, one whose grace period ends in 20 hours, one not signed in for long.
    Deterministic."""
    from datetime import timedelta

    from shared.views.fleet import daily_series, summarize
    from shared.views.report_html import ReportData

    start = today_at - timedelta(days=days - 1)
    states: list[StateRow] = []
    window: list[HistoryRow] = []
    for n in range(devices):
        object_id = f"00000000-0000-4000-8000-{n:012d}"
        name = "<script>alert(1)</script>" if n == 5 else f"PC-{n:03d}"
        seen = start + timedelta(days=first_day + n % 6, hours=n % 5)
        join = ("entra_joined", "hybrid_joined", "registered")[n % 3]
        trust = {"entra_joined": "AzureAd", "hybrid_joined": "ServerAd"}.get(join, "Workplace")
        base = record(
            object_id,
            display_name=name,
            evaluated_at=seen,
            join_type=join,
            trust_type=trust,
            operating_system_version="10.0.19045.5131" if n % 4 == 0 else "10.0.22631.4460",
        )
        if n == 7:
            base = replace(
                base,
                warnings=("COMPLIANCE_GRACE_PERIOD",),
                compliance="in_grace_period",
                grace_period_expires=today_at + timedelta(hours=20),
            )
        if n == 13:
            base = replace(base, warnings=("STALE_SIGN_IN",))
        rows = [history(base, "first_seen")]
        if n % 5 == 0:  # loses compliance mid-month
            lost_at = start + timedelta(days=first_day + 8 + n % 10)
            if join == "hybrid_joined":  # still passes by its join: a change, not a loss
                after = replace(base, version=2, evaluated_at=lost_at, compliance="noncompliant")
                rows.append(history(after, "changed"))
            else:
                second = "NOT_HYBRID_JOINED" if join == "entra_joined" else "NOT_JOINED"
                after = replace(
                    base,
                    version=2,
                    evaluated_at=lost_at,
                    eligible=False,
                    reasons=("NOT_COMPLIANT", second),
                    compliance="noncompliant",
                )
                rows.append(history(after, "lost"))
                if n % 10 == 0:  # and gets it back
                    back = replace(base, version=3, evaluated_at=lost_at + timedelta(days=4))
                    rows.append(history(back, "restored"))
        if n == 11:
            disabled = replace(
                base,
                version=2,
                evaluated_at=start + timedelta(days=20),
                eligible=False,
                reasons=("DEVICE_DISABLED",),
                account_enabled=False,
            )
            rows.append(history(disabled, "lost"))
        window += rows
        last = rows[-1].record
        moved = [r for r in rows if r.transition in ("first_seen", "lost", "restored")][-1]
        states.append(StateRow(last, moved.transition, moved.record.evaluated_at))
    records = [s.record for s in states]
    return ReportData(
        summary=summarize(records),
        ineligible=sorted(
            (s for s in states if not s.record.eligible), key=lambda s: s.record.display_name or ""
        ),
        series=daily_series(records, window, days, today_at.date()),
        generated_at=today_at,
        warned=[s for s in states if s.record.warnings],
    )


def many_ineligible(today_at: datetime, count: int, devices: int = 200) -> Any:
    """A fleet in which `count` devices lost eligibility one after another (two reasons each),
    for the page's size: every device row must stay one or two lines."""
    from datetime import timedelta

    from shared.views.fleet import summarize
    from shared.views.report_html import ReportData

    states = []
    for n in range(devices):
        object_id = f"00000000-0000-4000-8000-{n:012d}"
        if n < count:
            rec = ineligible(
                object_id=object_id,
                display_name=f"WS-{n:04d}",
                evaluated_at=today_at - timedelta(hours=n),
            )
            states.append(StateRow(rec, "lost", rec.evaluated_at))
        else:
            rec = record(object_id, display_name=f"PC-{n:04d}")
            states.append(StateRow(rec, "first_seen", rec.evaluated_at))
    records = [s.record for s in states]
    return ReportData(
        summary=summarize(records),
        ineligible=[s for s in states if not s.record.eligible],
        series=[],
        generated_at=today_at,
    )
