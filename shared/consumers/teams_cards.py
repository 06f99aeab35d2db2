"""Adaptive Cards for the Teams channel: what happened to which device, why, and where to look.
Pure: alert in, JSON out.

Cards declare version 1.4 (what Teams renders for Workflows posts) and use only what a Workflows
webhook can show: no Action.Submit/Execute, only OpenUrl, ShowCard and ToggleVisibility. Every
card stays well under Teams' ~28 KB message limit by construction: texts are capped and lists are
cut to a few entries (tests/shared/consumers/test_teams_cards.py checks a worst case).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from shared.core import explain
from shared.core.alert_view import AlertView

CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_MESSAGE_BYTES = 28_000
MAX_TEXT = 200  # characters of any value taken from Graph (names, UPNs, OS versions)
MAX_LISTED = 10  # devices named in a summary, changes listed in a flapping card

Card = dict[str, Any]

JOIN_TYPES = {
    "entra_joined": "Microsoft Entra joined",
    "hybrid_joined": "Microsoft Entra hybrid joined",
    "registered": "Microsoft Entra registered (personal device)",
    "unknown": "unknown join type",
}
MANAGEMENT = {
    "intune": "Intune",
    "co_managed": "co-managed (Intune and Configuration Manager)",
    "unmanaged": "not managed by an MDM",
    "unknown": "unknown",
}
COMPLIANCE = {
    "compliant": "compliant",
    "noncompliant": "noncompliant",
    "in_grace_period": "noncompliant, still in its grace period",
    "unknown": "not reported by Intune",
}
POLICIES = {
    "compliant_or_hybrid": "a compliant device or a hybrid joined device",
    "compliant": "a compliant device",
    "hybrid": "a hybrid joined device",
    "compliant_and_hybrid": "a compliant and hybrid joined device",
}
SOURCES = {
    "notification": "a Microsoft Graph change notification",
    "sync": "devicemon's periodic delta sync",
    "replay": "a replay of stored changes",
}
# --- small helpers ---------------------------------------------------------------------------


def clip(value: str | None, limit: int = MAX_TEXT) -> str:
    text = (value or "").replace("\r", " ").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "unknown"


def hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M UTC")


def entra_url(object_id: str, device_id: str | None) -> str:
    url = (
        "https://entra.microsoft.com/#view/Microsoft_AAD_Devices/DeviceDetailsMenuBlade"
        f"/~/Properties/objectId/{quote(object_id, safe='')}"
    )
    return f"{url}/deviceId/{quote(device_id, safe='')}" if device_id else url


def intune_url(managed_device_id: str) -> str:
    return (
        "https://intune.microsoft.com/#view/Microsoft_Intune_Devices/DeviceSettingsMenuBlade"
        f"/~/overview/mdmDeviceId/{quote(managed_device_id, safe='')}"
    )


def text(value: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": value, "wrap": True, **style}


def heading(value: str) -> dict[str, Any]:
    return text(value, weight="Bolder", size="Medium", separator=True, spacing="Medium")


def facts(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in pairs]}


def banner(style: str, label: str, title: str, color: str) -> dict[str, Any]:
    """The coloured top of a card: a lost card is red, restored green, noise summaries amber."""
    return {
        "type": "Container",
        "style": style,
        "bleed": True,
        "items": [
            text(label, weight="Bolder", color=color, size="Small", spacing="None"),
            text(title, weight="Bolder", size="Large", spacing="Small"),
        ],
    }


def open_url(title: str, url: str) -> dict[str, Any]:
    return {"type": "Action.OpenUrl", "title": title, "url": url}


def device_links(object_id: str, device_id: str | None, managed_id: str | None) -> list[Card]:
    links = [open_url("Open in Entra admin center", entra_url(object_id, device_id))]
    if managed_id:
        links.append(open_url("Open in Intune", intune_url(managed_id)))
    return links


def adaptive_card(body: list[Card], actions: list[Card], fallback: str) -> Card:
    return {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "fallbackText": clip(fallback, 300),
        "body": body,
        "actions": actions,
    }


def message(card: Card) -> dict[str, Any]:
    """The body a Teams Workflows "when a webhook request is received" flow expects."""
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def message_size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


# --- one alert -------------------------------------------------------------------------------


def _device_facts(alert: AlertView) -> list[tuple[str, str]]:
    os_text = " ".join(p for p in (alert.operating_system, alert.operating_system_version) if p)
    return [
        ("Device", clip(alert.name)),
        ("Join type", JOIN_TYPES.get(alert.join_type, clip(alert.join_type))),
        ("OS", clip(os_text) or "unknown"),
        ("Owner", clip(alert.user_principal_name) or "unknown"),
        ("Management", MANAGEMENT.get(alert.management, clip(alert.management))),
        ("Compliance", COMPLIANCE.get(alert.compliance, clip(alert.compliance))),
    ]


def _reason_blocks(codes: Iterable[str], fixed: bool) -> list[Card]:
    blocks: list[Card] = []
    for code in codes:
        meaning, todo = explain.reason(code).meaning, explain.reason(code).action
        if fixed:
            blocks.append(text(f"✔ **{code}** (resolved): {meaning}"))
        else:
            blocks.append(text(f"**{code}**: {meaning}"))
            blocks.append(text(f"What to do: {todo}", isSubtle=True, spacing="None"))
    return blocks


def _technical_details(alert: AlertView) -> Card:
    details = [
        ("Alert id", alert.id),
        ("Correlation id", clip(alert.correlation_id) or "-"),
        ("State version", str(alert.state_version)),
        ("Entra object id", alert.object_id),
        ("Entra device id", alert.device_id or "-"),
        ("Intune device id", alert.managed_device_id or "-"),
        ("Trust type", clip(alert.trust_type) or "-"),
    ]
    return {
        "type": "Action.ShowCard",
        "title": "Technical details",
        "card": {"type": "AdaptiveCard", "body": [facts(details)]},
    }


def alert_card(alert: AlertView, note: str | None = None) -> Card:
    """The card for one lost or restored alert."""
    name = clip(alert.name, 80)
    if alert.lost:
        top = banner(
            "attention",
            "🔴 LOST ELIGIBILITY",
            f"{name} no longer passes device-based Conditional Access",
            "Attention",
        )
        why = [heading("Why"), *_reason_blocks(alert.reasons, fixed=False)]
        fallback = f"{name} lost eligibility: {', '.join(alert.reasons)}"
    else:
        top = banner(
            "good",
            "🟢 ELIGIBILITY RESTORED",
            f"{name} passes device-based Conditional Access again",
            "Good",
        )
        why = [heading("What was fixed"), *_reason_blocks(alert.previous_reasons, fixed=True)]
        fallback = f"{name} is eligible again (resolved: {', '.join(alert.previous_reasons)})"
    body: list[Card] = [top]
    if note:
        body.append(text(f"Note: {note}", isSubtle=True))
    body += [facts(_device_facts(alert)), *why]
    if alert.warnings:
        body.append(heading("Also worth knowing"))
        body += [text(f"**{w}**: {explain.warning(w).meaning}") for w in alert.warnings]
    previous = "eligible" if alert.previous_eligible else "not eligible"
    if alert.previous_reasons and not alert.previous_eligible:
        previous += f" ({', '.join(alert.previous_reasons)})"
    timing = [
        ("Detected", when(alert.detected_at)),
        ("Detected by", SOURCES.get(alert.detection_source, clip(alert.detection_source))),
        ("Before", f"{previous}, as of {when(alert.previous_evaluated_at)}"),
        ("CA requires", POLICIES.get(alert.policy, clip(alert.policy))),
    ]
    if alert.grace_period_expires:
        timing.append(("Grace period ends", when(alert.grace_period_expires)))
    body += [heading("When and how"), facts(timing)]
    actions = [
        *device_links(alert.object_id, alert.device_id, alert.managed_device_id),
        _technical_details(alert),
    ]
    return adaptive_card(body, actions, fallback)


# --- noise control: a flapping device, a mass event ------------------------------------------


@dataclass(frozen=True, slots=True)
class Flip:
    at: datetime
    lost: bool


def flapping_card(
    alert: AlertView,
    flips: list[Flip],
    window_minutes: int,
    quiet_until: datetime,
    skipped: int = 0,
) -> Card:
    """One card for a device that keeps losing and regaining eligibility."""
    name = clip(alert.name, 80)
    now = "LOST eligibility" if alert.lost else "eligible again"
    reasons = alert.reasons if alert.lost else ()
    top = banner(
        "warning",
        "🟠 FLAPPING",
        f"{name} changed eligibility {len(flips)} times in {window_minutes} minutes",
        "Warning",
    )
    latest = f"Latest: **{now}**" + (f" ({', '.join(reasons)})" if reasons else "") + "."
    body: list[Card] = [
        top,
        text(
            f"{latest} devicemon posts no more cards for this device until {hhmm(quiet_until)}; "
            "the next change after that comes with the number of changes skipped. The device's "
            "timeline in devicemon has every change."
        ),
        *(
            [text(f"Note: {skipped} change(s) during the previous quiet period were not posted.")]
            if skipped
            else []
        ),
        facts(_device_facts(alert)),
        heading("Recent changes"),
        facts(
            (when(f.at), "lost" if f.lost else "restored")
            for f in sorted(flips, key=lambda f: f.at)[-MAX_LISTED:]
        ),
    ]
    if reasons:
        body += [heading("Why (latest)"), *_reason_blocks(reasons, fixed=False)]
    body.append(
        text(
            "Frequent flips usually mean a device that keeps failing and passing its compliance "
            "evaluation (e.g. a setting that drifts back), or an admin toggling it.",
            isSubtle=True,
        )
    )
    actions = [
        *device_links(alert.object_id, alert.device_id, alert.managed_device_id),
        _technical_details(alert),
    ]
    return adaptive_card(body, actions, f"{name} is flapping ({len(flips)} changes)")


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
    devices: tuple[str, ...] = ()  # a few names, for orientation
    next_summary_at: int | None = None  # the count that triggers the next summary

    @property
    def total(self) -> int:
        return self.lost + self.restored


def _counted(counts: dict[str, int], labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LISTED]
    return [((labels or {}).get(k, clip(k, 60)), str(n)) for k, n in ordered]


def mass_card(summary: MassSummary, window_minutes: int) -> Card:
    """One summary card instead of one card per device."""
    n = summary.total
    titles = {
        "start": f"{n} devices changed eligibility within {window_minutes} minutes",
        "update": f"Mass event continues: {n} devices since {hhmm(summary.first)}",
        "end": f"Mass event over: {n} devices between {hhmm(summary.first)} and {hhmm(summary.last)}",
    }
    label = "🟢 MASS EVENT OVER" if summary.phase == "end" else "🟠 MASS EVENT"
    body: list[Card] = [
        banner("warning", label, titles.get(summary.phase, titles["start"]), "Warning"),
        facts(
            [
                ("Lost eligibility", str(summary.lost)),
                ("Regained eligibility", str(summary.restored)),
                ("From", when(summary.first)),
                ("To", when(summary.last)),
            ]
        ),
    ]
    if summary.reasons:
        body += [heading("Reasons (devices)"), facts(_counted(summary.reasons))]
        top, count = max(summary.reasons.items(), key=lambda kv: kv[1])
        if count * 5 >= n * 4 and top in explain.REASONS:
            body.append(
                text(
                    f"{count} of {n} share **{top}**: one common cause is likely (for "
                    "compliance, a recently changed or newly assigned Intune compliance policy). "
                    f"{explain.reason(top).action}"
                )
            )
    if summary.join_types:
        body += [heading("Join types"), facts(_counted(summary.join_types, JOIN_TYPES))]
    if summary.devices:
        shown = ", ".join(clip(d, 60) for d in summary.devices[:MAX_LISTED])
        more = n - min(len(summary.devices), MAX_LISTED)
        body += [heading("Devices"), text(shown + (f" and {more} more" if more > 0 else ""))]
    if summary.phase == "end":
        body.append(text("Cards for single devices are posted again from now on.", isSubtle=True))
    else:
        follow_up = "when the mass event is over"
        if summary.next_summary_at:
            follow_up = f"at {summary.next_summary_at} devices or " + follow_up
        body.append(
            text(
                "Cards for single devices are paused while this lasts; the next summary comes "
                f"{follow_up}. Every device's timeline and the fleet view in devicemon have "
                "each device.",
                isSubtle=True,
            )
        )
    return adaptive_card(body, [], f"Mass event: {n} devices changed eligibility")
