"""Noise control for the Teams channel: flapping devices and mass events. Pure.

Two state machines, each a function `(state, event) -> (new state, decision)` that the Table
adapter (shared/consumers/teams_store.py) runs under an ETag, so concurrent consumers never both act on
the same state:

- Flapping, per device, on *detection* times (when the device changed): once a device has
  `flap_threshold` alerts within `flap_window`, one "flapping" card replaces the per-flip cards and
  the device stays quiet until `flap_window` after that card. The first alert after the quiet
  period is posted with the number of changes skipped (or opens a new quiet period with another
  flapping card if the device still flaps: one card per window).
- Mass events, fleet-wide, on *arrival* times (what the channel would see, so a backlog flushed
  after an outage counts too): once `mass_threshold` alerts arrived within `mass_window`, one
  summary card replaces the per-device cards. While the storm lasts, a new summary is posted each
  time the count has grown `ESCALATION`-fold; the storm ends after `mass_window` without alerts,
  and the next alert posts the final summary (then is handled normally).

Every decision is remembered by alert id (`decided`, `claims`), so re-running a step for the same
alert (a redelivery after a crash) returns the same decision instead of counting it twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

ESCALATION = 4  # a storm's next summary comes when its count has grown fourfold
MAX_CLAIMS = 64  # summaries remembered per storm (log-scale: a handful in practice)


@dataclass(frozen=True, slots=True)
class NoiseSettings:
    flap_window: timedelta = timedelta(minutes=60)
    flap_threshold: int = 4
    mass_window: timedelta = timedelta(minutes=10)
    mass_threshold: int = 25


# --- flapping ----------------------------------------------------------------------------------


class FlapAction(StrEnum):
    POST = "post"  # an ordinary card (with `skipped` > 0: after a quiet period)
    FLAPPING = "flapping"  # one flapping card; the device goes quiet
    SKIP = "skip"  # quiet period: not posted


@dataclass(frozen=True, slots=True)
class FlapDecision:
    action: FlapAction
    skipped: int = 0  # POST: changes not posted during the quiet period that just ended
    quiet_until: datetime | None = None  # FLAPPING: when the device may post again


@dataclass(frozen=True, slots=True)
class Seen:
    """One alert of the device inside the flap window, with what was decided for it."""

    at: datetime
    lost: bool
    decision: FlapDecision
    reasons: tuple[str, ...] = ()  # what it lost, or what was fixed when it came back


@dataclass(frozen=True, slots=True)
class Flip:
    """One change of a flapping device, as its card lists it."""

    at: datetime
    lost: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FlapState:
    recent: dict[str, Seen] = field(default_factory=dict)  # alert id -> what we saw and decided
    quiet_until: datetime | None = None
    skipped: int = 0  # alerts skipped in the current quiet period


def flap_step(
    state: FlapState,
    alert_id: str,
    at: datetime,
    lost: bool,
    settings: NoiseSettings,
    reasons: tuple[str, ...] = (),
) -> tuple[FlapState, FlapDecision]:
    known = state.recent.get(alert_id)
    if known is not None:
        return state, known.decision
    newest = max([at, *(s.at for s in state.recent.values())])
    horizon = newest - settings.flap_window
    recent = {k: s for k, s in state.recent.items() if s.at > horizon}
    in_window = 1 + sum(1 for s in recent.values() if s.at > at - settings.flap_window)
    quiet_until, skipped = state.quiet_until, state.skipped

    if quiet_until is not None and at < quiet_until:
        decision = FlapDecision(FlapAction.SKIP)
        skipped += 1
    elif in_window >= settings.flap_threshold:
        quiet_until = at + settings.flap_window
        decision = FlapDecision(FlapAction.FLAPPING, skipped=skipped, quiet_until=quiet_until)
        skipped = 0
    else:
        decision = FlapDecision(FlapAction.POST, skipped=skipped)
        quiet_until, skipped = None, 0
    recent[alert_id] = Seen(at, lost, decision, reasons)
    return FlapState(recent, quiet_until, skipped), decision


def flips(state: FlapState, until: datetime, settings: NoiseSettings) -> list[Flip]:
    """The device's changes within the flap window ending at `until` (for the flapping card)."""
    start = until - settings.flap_window
    found = [Flip(s.at, s.lost, s.reasons) for s in state.recent.values() if start < s.at <= until]
    return sorted(found, key=lambda f: f.at)


# --- mass events -------------------------------------------------------------------------------


class MassAction(StrEnum):
    NORMAL = "normal"  # no storm: the alert goes on to flap control
    START = "start"  # this alert starts a storm: post the first summary instead of its card
    UPDATE = "update"  # the storm grew ESCALATION-fold: post an updated summary
    SUPPRESS = "suppress"  # inside a storm: counted, not posted
    END = "end"  # the storm was over: post its final summary, then handle the alert normally


@dataclass(frozen=True, slots=True)
class MassDecision:
    action: MassAction
    first: datetime | None = None  # the summary covers alerts that arrived in [first, last]
    last: datetime | None = None
    next_summary: int | None = None


@dataclass(frozen=True, slots=True)
class StormState:
    active: bool = False
    first: datetime | None = None  # arrival of the earliest alert in the storm
    last: datetime | None = None  # arrival of the latest one
    count: int = 0
    next_summary: int = 0
    claims: dict[str, MassDecision] = field(default_factory=dict)  # alert id -> its summary


def needs_window(state: StormState, now: datetime, settings: NoiseSettings) -> bool:
    """Whether `mass_step` needs the sliding-window count (only outside an ongoing storm)."""
    return not state.active or _over(state, now, settings)


def _over(state: StormState, now: datetime, settings: NoiseSettings) -> bool:
    return state.last is not None and now - state.last > settings.mass_window


def mass_step(
    state: StormState,
    alert_id: str,
    now: datetime,
    *,
    new: bool,
    window_count: int,
    window_first: datetime | None,
    settings: NoiseSettings,
) -> tuple[StormState, MassDecision]:
    """One alert's arrival. `new`: first time this alert is counted (its arrival row was just
    written); `window_count`/`window_first`: alerts that arrived within `mass_window` up to now,
    this one included (only read when `needs_window`)."""
    claimed = state.claims.get(alert_id)
    if claimed is not None:
        return state, claimed
    if state.active and not _over(state, now, settings):
        count = state.count + (1 if new else 0)
        last = max(now, state.last) if state.last else now
        if count >= state.next_summary:
            decision = MassDecision(MassAction.UPDATE, state.first, last, count * ESCALATION)
            claims = _claim(state.claims, alert_id, decision)
            return replace(
                state, last=last, count=count, next_summary=count * ESCALATION, claims=claims
            ), decision
        return replace(state, last=last, count=count), MassDecision(MassAction.SUPPRESS)
    if state.active:  # quiet for a whole window: the storm is over
        decision = MassDecision(MassAction.END, state.first, state.last)
        return StormState(claims={alert_id: decision}), decision
    if window_count >= settings.mass_threshold:
        first = window_first or now
        decision = MassDecision(MassAction.START, first, now, window_count * ESCALATION)
        return StormState(
            active=True,
            first=first,
            last=now,
            count=window_count,
            next_summary=window_count * ESCALATION,
            claims={alert_id: decision},
        ), decision
    return state, MassDecision(MassAction.NORMAL)


def _claim(
    claims: dict[str, MassDecision], alert_id: str, decision: MassDecision
) -> dict[str, MassDecision]:
    kept = dict(list(claims.items())[-(MAX_CLAIMS - 1) :])
    kept[alert_id] = decision
    return kept


# --- a mass event's figures (the noise table builds them; noise_cards.py draws them) ---------


@dataclass(frozen=True, slots=True)
class MassSummary:
    """What a mass event looked like between `first` and `last` (from the noise table)."""

    phase: str  # "start", "update" or "end"
    first: datetime
    last: datetime
    lost: int
    restored: int
    reasons: dict[str, int] = field(default_factory=dict)
    join_types: dict[str, int] = field(default_factory=dict)
    policies: dict[str, int] = field(default_factory=dict)  # blocking CA policy -> devices
    devices: tuple[str, ...] = ()  # a few names, for orientation
    next_summary_at: int | None = None  # the count that triggers the next summary
    at_risk: int = 0  # early warnings folded into the summary
    cleared: int = 0  # and their resolutions

    @property
    def total(self) -> int:
        return self.lost + self.restored + self.at_risk + self.cleared

    @property
    def changes(self) -> int:
        """Devices whose eligibility changed (the rest only changed their risk)."""
        return self.lost + self.restored
