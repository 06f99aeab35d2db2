"""Timer schedules: NCRONTAB (6 fields, with seconds) and TimeSpan intervals.

The Functions host parses timer schedules with NCrontab ("{second} {minute} {hour} {day}
{month} {day-of-week}") and, when that fails, as a TimeSpan ("hh:mm:ss") constant
interval. This mirrors NCrontab's rules, including one that differs from Unix cron:
a restricted day-of-month AND a restricted day-of-week must BOTH match.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from local.devhost.settings import parse_timespan

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_name) if name})
# cron numbers days from Sunday=0; calendar.day_abbr starts on Monday.
_DAYS = {name.lower(): (i + 1) % 7 for i, name in enumerate(calendar.day_abbr)}
_DAYS.update({name.lower(): (i + 1) % 7 for i, name in enumerate(calendar.day_name)})

# (name, low, high, names) per field, in expression order.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)

# Past this horizon a schedule can never fire (e.g. "0 0 0 30 2 *"); the longest real gap
# is a Feb 29 that must also be a given weekday, which recurs within 28 years.
_SEARCH_YEARS = 30


class ScheduleError(ValueError):
    """The schedule is neither a valid NCRONTAB expression nor a TimeSpan."""


def _value(token: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    key = token.strip().lower()
    if key in names:
        return names[key]
    if not key.isdigit():
        raise ScheduleError(f"{field}: {token!r} is not a number")
    number = int(key)
    if not low <= number <= high:
        raise ScheduleError(f"{field}: {number} is outside {low}-{high}")
    return number


def parse_field(
    text: str, field: str, low: int, high: int, names: dict[str, int]
) -> frozenset[int]:
    """The set of values one cron field allows: *, a, a-b, */n, a-b/n, a/n, and lists."""
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"{field}: empty list item in {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{field}: bad step {step_text!r}")
            step = int(step_text)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _value(first, low, high, names, field)
            stop = _value(last, low, high, names, field)
            if start > stop:
                raise ScheduleError(f"{field}: range {base!r} runs backwards")
        else:
            start = _value(base, low, high, names, field)
            # NCrontab reads "a/n" as "from a to the field's maximum, every n".
            stop = high if slash else start
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed 6-field NCRONTAB expression."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        parts = expression.split()
        if len(parts) != 6:
            raise ScheduleError(
                f"{expression!r}: expected 6 fields "
                f"'{{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}', "
                f"got {len(parts)}"
            )
        sets = [
            parse_field(text, name, low, high, names)
            for text, (name, low, high, names) in zip(parts, _FIELDS, strict=True)
        ]
        return cls(expression, *sets)

    def next_after(self, after: datetime) -> datetime:
        """The first matching time strictly after `after` (keeps its tzinfo, works on wall time)."""
        t = after.replace(microsecond=0) + timedelta(seconds=1)
        limit_year = after.year + _SEARCH_YEARS
        while t.year <= limit_year:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
                continue
            if t.day not in self.days or (t.weekday() + 1) % 7 not in self.days_of_week:
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t += timedelta(seconds=1)
                continue
            return t
        raise ScheduleError(f"{self.expression!r} never fires")


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule: fire every `interval`, the first time one interval after start."""

    expression: str
    interval: timedelta

    def next_after(self, after: datetime) -> datetime:
        return after + self.interval


Schedule = CronSchedule | IntervalSchedule


def parse_schedule(expression: str) -> Schedule:
    """Parse a timer trigger schedule the way the host does: NCRONTAB first, then TimeSpan."""
    text = expression.strip()
    if " " in text:
        schedule = CronSchedule.parse(text)
        schedule.next_after(datetime(2000, 1, 1))  # reject never-firing expressions up front
        return schedule
    try:
        interval = parse_timespan(text)
    except ValueError:
        raise ScheduleError(
            f"{expression!r} is neither a 6-field NCRONTAB expression nor a TimeSpan (hh:mm:ss)"
        ) from None
    if interval <= timedelta(0):
        raise ScheduleError(f"{expression!r}: a TimeSpan schedule must be positive")
    return IntervalSchedule(text, interval)
