"""The fleet as operators read it: eligibility counts, filters, and eligibility over time. Pure.

Input is what DeviceState and DeviceHistory hold (shared.core.records); output is plain data that the
CLI prints, the read API serialises and the HTML report draws. Deleted devices stay in
DeviceState with the reason DEVICE_DELETED, so they are counted (as ineligible) like everywhere
else (the health API's counts, the tables), and `deleted` says how many of them there are.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from shared.core.models import JUDGED_BY_POLICIES, JoinType, PolicyRef, Reason, Warning_
from shared.core.os_names import os_label
from shared.core.records import DeviceRecord, HistoryRow

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(value: str) -> bool:
    return bool(GUID.match(value))


def record_os_label(record: DeviceRecord) -> str:
    return os_label(record.operating_system, record.operating_system_version)


def display_name(record: DeviceRecord) -> str:
    return record.display_name or record.object_id


@dataclass(slots=True)
class Counts:
    devices: int = 0
    eligible: int = 0

    @property
    def ineligible(self) -> int:
        return self.devices - self.eligible

    @property
    def eligible_percent(self) -> float:
        return round(100.0 * self.eligible / self.devices, 1) if self.devices else 0.0

    def add(self, eligible: bool) -> None:
        self.devices += 1
        self.eligible += 1 if eligible else 0


@dataclass(slots=True)
class FleetSummary:
    """Counts over DeviceState. `by_reason` and `by_warning` count devices carrying each code."""

    overall: Counts = field(default_factory=Counts)
    deleted: int = 0
    by_join_type: dict[str, Counts] = field(default_factory=dict)
    by_os: dict[str, Counts] = field(default_factory=dict)
    by_reason: Counter[str] = field(default_factory=Counter)
    by_warning: Counter[str] = field(default_factory=Counter)
    policies: Counter[str] = field(default_factory=Counter)
    # Who judged (the CA_POLICY setting or the tenant's CA policies), and per CA policy id the
    # devices it blocks and the devices that would fail it in report-only; `policy_names` holds
    # the policies' display names as last recorded.
    judged_by: Counter[str] = field(default_factory=Counter)
    by_blocking_policy: Counter[str] = field(default_factory=Counter)
    by_report_only: Counter[str] = field(default_factory=Counter)
    policy_names: dict[str, str] = field(default_factory=dict)

    def add(self, record: DeviceRecord) -> None:
        self.overall.add(record.eligible)
        self.deleted += 1 if record.deleted else 0
        self.by_join_type.setdefault(record.join_type, Counts()).add(record.eligible)
        self.by_os.setdefault(record_os_label(record), Counts()).add(record.eligible)
        self.by_reason.update(set(record.reasons))
        self.by_warning.update(set(record.warnings))
        # `policies`: the CA_POLICY values that judged devices (not the fallback of a device
        # the tenant's policies judged).
        if record.policy and record.judged_by != JUDGED_BY_POLICIES:
            self.policies[record.policy] += 1
        self.judged_by[record.judged_by] += 1
        for counter, refs in (
            (self.by_blocking_policy, record.blocking_policies),
            (self.by_report_only, record.report_only_failures),
        ):
            counter.update({ref.policy_id for ref in refs})
            self.policy_names.update({ref.policy_id: ref.display_name for ref in refs})


def _ranked(counts: dict[str, Counts]) -> list[tuple[str, Counts]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1].devices, kv[0]))


def summarize(records: Iterable[DeviceRecord]) -> FleetSummary:
    summary = FleetSummary()
    for record in records:
        summary.add(record)
    # Largest groups first, so a terminal table reads from what matters most.
    summary.by_join_type = dict(_ranked(summary.by_join_type))
    summary.by_os = dict(_ranked(summary.by_os))
    return summary


def ineligible(records: Iterable[DeviceRecord]) -> list[DeviceRecord]:
    """Ineligible devices by name (case-insensitive), then object id."""
    found = [r for r in records if not r.eligible]
    return sorted(found, key=lambda r: (display_name(r).casefold(), r.object_id))


def stale(records: Iterable[DeviceRecord]) -> list[DeviceRecord]:
    """Devices with no sign-in for STALE_SIGN_IN_DAYS (never under 21: docs/reason-codes.md), by
    name: candidates for clean-up, eligible or not. Listed for operators to review, never
    alerted on: staleness is a warning and does not change eligibility."""
    found = [r for r in records if Warning_.STALE_SIGN_IN.value in r.warnings and not r.deleted]
    return sorted(found, key=lambda r: (display_name(r).casefold(), r.object_id))


# --- filters (the read API's query parameters, the CLI's options) ---------------------------


class FilterError(ValueError):
    """A filter value that cannot be right; the message names the parameter."""


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """Which devices to list. `eligible` and `join_type` are answered by Table storage itself;
    `reason` (a reason code the device carries), `os` (a case-insensitive prefix of the OS's
    name, 'Windows 11', or, when it holds a dot, of the OS and version as read, 'Windows
    10.0.19045') and `blocked_by` (a Conditional Access policy that blocks the device, by id or
    display name, case-insensitive) are checked row by row."""

    eligible: bool | None = None
    join_type: str | None = None
    reason: str | None = None
    os: str | None = None
    blocked_by: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        eligible: str | None = None,
        join_type: str | None = None,
        reason: str | None = None,
        os: str | None = None,
        blocked_by: str | None = None,
        names: tuple[str, ...] = ("eligible", "joinType", "reason", "os", "blockedBy"),
    ) -> DeviceFilter:
        """From text (query string or command line); `names` are used in error messages."""
        flag: bool | None = None
        if eligible not in (None, ""):
            lowered = str(eligible).strip().lower()
            if lowered not in ("true", "false"):
                raise FilterError(f"{names[0]} must be true or false, not {eligible!r}")
            flag = lowered == "true"
        joined: str | None = None
        if join_type not in (None, ""):
            joined = str(join_type).strip().lower()
            allowed = [j.value for j in JoinType]
            if joined not in allowed:
                raise FilterError(f"{names[1]} must be one of {', '.join(allowed)}")
        code: str | None = None
        if reason not in (None, ""):
            code = str(reason).strip().upper()
            known = [r.value for r in Reason]
            if code not in known:
                raise FilterError(f"{names[2]} must be one of {', '.join(known)}")
        prefix = os.strip() if os and os.strip() else None
        policy = blocked_by.strip() if blocked_by and blocked_by.strip() else None
        return cls(flag, joined, code, prefix, policy)

    def table_query(self) -> tuple[str | None, dict[str, Any]]:
        """The OData filter Table storage evaluates (parameters substituted by the SDK)."""
        clauses: list[str] = []
        parameters: dict[str, Any] = {}
        if self.eligible is not None:
            clauses.append("Eligible eq @eligible")
            parameters["eligible"] = self.eligible
        if self.join_type is not None:
            clauses.append("JoinType eq @joinType")
            parameters["joinType"] = self.join_type
        return (" and ".join(clauses) or None), parameters

    @property
    def checks_rows(self) -> bool:
        """Whether some rows the table returns may still be filtered out here."""
        return any(v is not None for v in (self.reason, self.os, self.blocked_by))

    def matches(self, record: DeviceRecord) -> bool:
        if self.eligible is not None and record.eligible is not self.eligible:
            return False
        if self.join_type is not None and record.join_type != self.join_type:
            return False
        if self.reason is not None and self.reason not in record.reasons:
            return False
        if self.blocked_by is not None and not blocked_by(record, self.blocked_by):
            return False
        if self.os is not None:
            prefix = self.os.casefold()
            if "." in prefix:  # a version: 'Windows 10.0.19045' (Windows 11 is 10.0 too)
                raw = f"{record.operating_system or ''} {record.operating_system_version or ''}"
                return raw.strip().casefold().startswith(prefix)
            return record_os_label(record).casefold().startswith(prefix)
        return True


def blocked_by(record: DeviceRecord, policy: str) -> bool:
    """Whether one of the CA policies blocking the device has this id or display name (ids in
    any case, names case-insensitively)."""
    wanted = policy.casefold()
    return any(
        wanted in (ref.policy_id.casefold(), ref.display_name.casefold())
        for ref in record.blocking_policies
    )


# --- eligibility over time ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayPoint:
    """The fleet at the end of one UTC day; `known` is False for a day that ended before
    monitoring began (no device had been evaluated yet: no data, not zero devices)."""

    day: date
    eligible: int
    ineligible: int
    known: bool = True

    @property
    def devices(self) -> int:
        return self.eligible + self.ineligible


def window_start(days: int, today: date) -> datetime:
    """Midnight UTC at the start of the first of `days` days ending with `today`."""
    return datetime.combine(today - timedelta(days=days - 1), time(0), tzinfo=UTC)


def _eligible_before(first: HistoryRow) -> bool | None:
    """What a device was just before its first row in the window, told by that row's transition:
    None when the row is its first sighting (it did not exist yet)."""
    if first.transition == "first_seen":
        return None
    if first.transition == "lost":
        return True
    if first.transition == "restored":
        return False
    return first.record.eligible


def monitoring_began(
    steady: dict[str, bool], timelines: dict[str, list[HistoryRow]], start: datetime
) -> datetime | None:
    """When devicemon first evaluated a device: `start` when some device was known before the
    window (it has no row in it, or its first row in it is not its first sighting), the earliest
    first sighting otherwise, None when nothing was ever evaluated."""
    if steady or any(t[0].transition != "first_seen" for t in timelines.values()):
        return start
    return min((t[0].record.evaluated_at for t in timelines.values()), default=None)


def daily_series(
    current: Iterable[DeviceRecord], window: Iterable[HistoryRow], days: int, today: date
) -> list[DayPoint]:
    """Eligible and ineligible devices at the end of each of the last `days` UTC days.

    `window` holds the DeviceHistory rows evaluated since `window_start(days, today)` (older rows
    are not needed): each row's Transition tells what the device was before it, so a device's
    state at the window's start follows from its first row in the window, and a device with no
    row in the window was all along what DeviceState says now. Days that ended before the first
    evaluation are not known (no data), rather than days with no device.
    """
    start = window_start(days, today)
    rows: dict[str, list[HistoryRow]] = {}
    for row in window:
        if row.record.evaluated_at >= start:
            rows.setdefault(row.record.object_id, []).append(row)
    steady: dict[str, bool] = {}
    for record in current:
        if record.object_id not in rows:
            steady[record.object_id] = record.eligible
    timelines = {k: sorted(v, key=lambda r: r.record.evaluated_at) for k, v in rows.items()}
    began = monitoring_began(steady, timelines, start)
    points = []
    for offset in range(days):
        day = start.date() + timedelta(days=offset)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
        if began is None or end <= began:
            points.append(DayPoint(day, 0, 0, known=False))
            continue
        tally = Counter(steady.values())
        for timeline in timelines.values():
            seen = [r for r in timeline if r.record.evaluated_at < end]
            state = seen[-1].record.eligible if seen else _eligible_before(timeline[0])
            if state is not None:
                tally[state] += 1
        points.append(DayPoint(day, tally[True], tally[False]))
    return points


# --- continuation tokens (the read API's paging) --------------------------------------------


def encode_token(resume: dict[str, Any]) -> str:
    """An opaque, URL-safe token for a resume point of DeviceStore.page_states."""
    raw = json.dumps({"v": 1, **resume}, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    """The resume point of a token made by encode_token; FilterError for anything else."""
    try:
        padded = token.strip() + "=" * (-len(token.strip()) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise FilterError("continuationToken is not a token this API issued") from None
    if not isinstance(data, dict) or data.get("v") != 1:
        raise FilterError("continuationToken is not a token this API issued")
    after, after_ok = data.get("after"), isinstance(data.get("after"), str)
    following = data.get("next")
    next_ok = isinstance(following, dict) and all(
        isinstance(k, str) and isinstance(v, str | None) for k, v in following.items()
    )
    if after_ok and after:
        return {"after": after}
    if next_ok:
        return {"next": following}
    raise FilterError("continuationToken is not a token this API issued")


# --- what changed between two versions of a device (timelines) ------------------------------

_COMPARED: tuple[tuple[str, str], ...] = (
    ("display_name", "name"),
    ("join_type", "join type"),
    ("trust_type", "trustType"),
    ("compliance", "compliance"),
    ("management", "management"),
    ("account_enabled", "accountEnabled"),
    ("operating_system", "OS"),
    ("operating_system_version", "OS version"),
    ("deleted", "deleted"),
    ("policy", "policy"),
    ("judged_by", "judged by"),
)


def _shown(value: object) -> str:
    if value is None or value == "":
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _names(refs: tuple[PolicyRef, ...]) -> tuple[str, ...]:
    return tuple(ref.display_name or ref.policy_id for ref in refs)


def record_changes(older: DeviceRecord | None, newer: DeviceRecord) -> list[str]:
    """'compliance: compliant → noncompliant', … — the facts that moved between two versions,
    then the reasons and warnings that appeared or went away."""
    if older is None:
        return []
    found = []
    for attribute, label in _COMPARED:
        before, after = getattr(older, attribute), getattr(newer, attribute)
        if before != after:
            found.append(f"{label}: {_shown(before)} → {_shown(after)}")
    for kind, old, new in (
        ("reason", older.reasons, newer.reasons),
        ("warning", older.warnings, newer.warnings),
        ("blocked by", _names(older.blocking_policies), _names(newer.blocking_policies)),
        (
            "report-only failure",
            _names(older.report_only_failures),
            _names(newer.report_only_failures),
        ),
    ):
        added = [c for c in new if c not in old]
        gone = [c for c in old if c not in new]
        if added:
            found.append(f"+{kind} {', '.join(added)}")
        if gone:
            found.append(f"-{kind} {', '.join(gone)}")
    return found
