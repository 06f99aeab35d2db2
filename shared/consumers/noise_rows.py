"""The noise state machines' state as TeamsNoise columns (shared/consumers/teams_store.py runs the
machines under the rows' ETags): the flap row of a device and the fleet's storm row. Pure."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.consumers.noise import (
    FlapAction,
    FlapDecision,
    FlapState,
    MassAction,
    MassDecision,
    Seen,
    StormState,
)
from shared.core.alert_view import parse_time


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _flap_decision_json(d: FlapDecision) -> dict[str, Any]:
    return {"action": d.action.value, "skipped": d.skipped, "quietUntil": _iso(d.quiet_until)}


def _flap_decision(raw: dict[str, Any]) -> FlapDecision:
    return FlapDecision(
        FlapAction(raw["action"]), int(raw.get("skipped") or 0), parse_time(raw.get("quietUntil"))
    )


def flap_columns(state: FlapState) -> dict[str, Any]:
    recent = {
        k: {
            "at": _iso(s.at),
            "lost": s.lost,
            "reasons": list(s.reasons),
            "decision": _flap_decision_json(s.decision),
        }
        for k, s in state.recent.items()
    }
    return {
        "Recent": json.dumps(recent, separators=(",", ":")),
        "QuietUntil": state.quiet_until,
        "Skipped": state.skipped,
    }


def flap_state(row: Any | None) -> FlapState:
    if row is None:
        return FlapState()
    recent = {}
    for key, raw in json.loads(row.get("Recent") or "{}").items():
        at = parse_time(raw["at"])
        assert at is not None
        reasons = tuple(str(r) for r in raw.get("reasons") or ())
        recent[key] = Seen(at, bool(raw["lost"]), _flap_decision(raw["decision"]), reasons)
    return FlapState(recent, row.get("QuietUntil"), int(row.get("Skipped") or 0))


def _mass_decision_json(d: MassDecision) -> dict[str, Any]:
    return {
        "action": d.action.value,
        "first": _iso(d.first),
        "last": _iso(d.last),
        "next": d.next_summary,
    }


def storm_columns(state: StormState) -> dict[str, Any]:
    claims = {k: _mass_decision_json(d) for k, d in state.claims.items()}
    return {
        "Active": state.active,
        "First": state.first,
        "Last": state.last,
        "Count": state.count,
        "NextSummary": state.next_summary,
        "Claims": json.dumps(claims, separators=(",", ":")),
    }


def storm_state(row: Any | None) -> StormState:
    if row is None:
        return StormState()
    claims = {
        k: MassDecision(
            MassAction(d["action"]), parse_time(d["first"]), parse_time(d["last"]), d.get("next")
        )
        for k, d in json.loads(row.get("Claims") or "{}").items()
    }
    return StormState(
        active=bool(row.get("Active")),
        first=row.get("First"),
        last=row.get("Last"),
        count=int(row.get("Count") or 0),
        next_summary=int(row.get("NextSummary") or 0),
        claims=claims,
    )
