"""Adaptive Cards for the Teams channel: what happened to which device, why, and where to look.
Pure: alert in, JSON out.

Reason codes never sit in a FactSet: Teams caps the width of a fact's title column and breaks a
long code (HYBRID_JOIN_PENDING) mid-word there. A code stands either at the start of a
full-width text or alone in an auto-width column that does not wrap (`code_rows`).

Cards declare version 1.4 (what Teams renders for Workflows posts) and use only what a Workflows
webhook can show: no Action.Submit/Execute, only OpenUrl, ShowCard and ToggleVisibility. Every
card stays well under Teams' ~28 KB message limit by construction: texts are capped and lists are
cut to a few entries (tests/shared/consumers/test_teams_cards.py checks a worst case). The
flapping and mass-event cards are in noise_cards.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from shared.core import explain
from shared.core.alert_view import AlertView
from shared.core.compliance_details import ComplianceDetails
from shared.core.models import PolicyRef
from shared.core.os_names import os_label
from shared.core.policy_eligibility import conditions_phrase

CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_MESSAGE_BYTES = 28_000
MAX_TEXT = 200  # characters of any value taken from Graph (names, UPNs, OS versions)
MAX_LISTED = 10  # devices named in a summary, changes listed in a flapping card
MAX_SETTINGS = 5  # failing compliance settings on a card; the rest are counted, Intune lists all

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
    "replay": "a re-evaluation (a replayed change, or a change of the Conditional Access policies)",
    "deadline": "devicemon's deadline scheduler (a warning time or a deadline came)",
    "intune_watch": "devicemon's Intune watch (the Intune record changed)",
}
MAX_POLICIES = 5  # blocking policies named on a card; the rest are counted
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


def code_rows(rows: Iterable[tuple[str, str, str]]) -> list[Card]:
    """One row per code, `(lead, code, words)`: an optional short lead (a count), the code in an
    auto-width column that never wraps, and its words in the rest of the width."""
    blocks: list[Card] = []
    for lead, code, words in rows:
        columns: list[Card] = []
        if lead:
            columns.append(_column("auto", text(lead, wrap=False, weight="Bolder")))
        columns.append(
            _column("auto", text(clip(code, 40), wrap=False, weight="Bolder", fontType="Monospace"))
        )
        if words:
            columns.append(_column("stretch", text(words, isSubtle=True)))
        blocks.append({"type": "ColumnSet", "spacing": "Small", "columns": columns})
    return blocks


def _column(width: str, item: Card) -> Card:
    return {"type": "Column", "width": width, "items": [item]}


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


def os_text(alert: AlertView) -> str:
    """'Windows 11 24H2 (10.0.26100.2314)': the release by name, then the version as read."""
    if not (alert.operating_system or alert.operating_system_version):
        return "unknown"
    named = os_label(alert.operating_system, alert.operating_system_version)
    version = alert.operating_system_version
    return clip(f"{named} ({version})" if version else named)


def device_facts(alert: AlertView) -> list[tuple[str, str]]:
    return [
        ("Device", clip(alert.name)),
        ("Join type", JOIN_TYPES.get(alert.join_type, clip(alert.join_type))),
        ("OS", os_text(alert)),
        ("Owner", clip(alert.user_principal_name) or "unknown"),
        ("Management", MANAGEMENT.get(alert.management, clip(alert.management))),
        ("Compliance", COMPLIANCE.get(alert.compliance, clip(alert.compliance))),
    ]


def reason_blocks(codes: Iterable[str], fixed: bool) -> list[Card]:
    blocks: list[Card] = []
    for code in codes:
        meaning, todo = explain.reason(code).meaning, explain.reason(code).action
        if fixed:
            blocks.append(text(f"✔ **{code}** (resolved): {meaning}"))
        else:
            blocks.append(text(f"**{code}**: {meaning}"))
            blocks.append(text(f"What to do: {todo}", isSubtle=True, spacing="None"))
    return blocks


def risk_blocks(codes: Iterable[str]) -> list[Card]:
    """Each risk in words, at the start of a full-width text."""
    return [text(f"**{code}**: {explain.risk(code).meaning}") for code in codes]


def compliance_blocks(details: ComplianceDetails | None) -> list[Card]:
    """What Intune says fails: each failing setting in words with its fix and the policy it
    belongs to (an unknown setting in Intune's own name), or why Intune could not be read."""
    if details is None:
        return []
    if details.unavailable is not None:
        return [
            heading("Failing compliance settings"),
            text(
                f"Not read from Intune ({details.unavailable}): {details.unavailable_words}",
                isSubtle=True,
            ),
        ]
    if not details.failing_settings and not details.failing_policies:
        return []
    blocks = [heading("Failing compliance settings")]
    for setting in details.failing_settings[:MAX_SETTINGS]:
        blocks += [
            text(f"**{clip(setting.sentence, 300)}**"),
            text(f"Fix: {clip(setting.fix, 300)}", spacing="None"),
            text(
                f"Policy '{clip(setting.policy_name, 80)}', setting {clip(setting.setting, 120)} "
                f"({setting.state})",
                isSubtle=True,
                size="Small",
                spacing="None",
            ),
        ]
    more = len(details.failing_settings) - MAX_SETTINGS
    if more > 0:
        blocks.append(text(f"…and {more} more: open the device in Intune.", isSubtle=True))
    if not details.failing_settings:
        # A failing policy whose settings Intune did not list: name the policy at least.
        for policy in details.failing_policies[:MAX_SETTINGS]:
            blocks.append(text(f"Policy '{clip(policy.display_name, 80)}' is {policy.state}."))
    return blocks


def policy_line(policy: PolicyRef) -> str:
    line = f"**{clip(policy.display_name or policy.policy_id, 120)}**"
    if policy.conditional_on:
        # The same words as the CLI, the read API's consumers and the report.
        line += f" ({clip(conditions_phrase(policy.conditional_on), 160)})"
    if policy.reasons:
        line += f": {explain.reasons_in_words(policy.reasons)}"
    return line


def policy_blocks(alert: AlertView, title: str) -> list[Card]:
    """The Conditional Access policies the device fails, when the tenant's policies judged it
    (under the CA_POLICY setting there are no policies to name)."""
    if not alert.judged_by_policies or not alert.blocking_policies:
        return []
    blocks = [heading(title)]
    blocks += [text(policy_line(p)) for p in alert.blocking_policies[:MAX_POLICIES]]
    more = len(alert.blocking_policies) - MAX_POLICIES
    if more > 0:
        blocks.append(text(f"…and {more} more: `devicemon device` lists all.", isSubtle=True))
    if alert.report_only_failures:
        names = ", ".join(
            clip(p.display_name or p.policy_id, 80)
            for p in alert.report_only_failures[:MAX_POLICIES]
        )
        blocks.append(text(f"Report-only policies it would also fail: {names}", isSubtle=True))
    return blocks


def requires(alert: AlertView) -> str:
    if alert.judged_by_policies:
        return "what the tenant's Conditional Access policies require"
    return POLICIES.get(alert.policy, clip(alert.policy))


def timing_facts(alert: AlertView) -> list[tuple[str, str]]:
    """When the change was seen, by what, what devicemon knew before and what CA requires."""
    previous = "eligible" if alert.previous_eligible else "not eligible"
    if alert.previous_reasons and not alert.previous_eligible:
        previous += f" ({explain.reasons_in_words(alert.previous_reasons)})"
    timing = [
        ("Detected", when(alert.detected_at)),
        ("Detected by", SOURCES.get(alert.detection_source, clip(alert.detection_source))),
        ("Before", f"{previous}, as of {when(alert.previous_evaluated_at)}"),
        ("CA requires", requires(alert)),
    ]
    if alert.grace_period_expires:
        timing.append(("Grace period ends", when(alert.grace_period_expires)))
    return timing


def technical_details(alert: AlertView) -> Card:
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
        why = [
            heading("Why"),
            *reason_blocks(alert.reasons, fixed=False),
            *policy_blocks(alert, "Blocked by"),
            *compliance_blocks(alert.compliance_details),
        ]
        fallback = f"{name} lost eligibility: {', '.join(alert.reasons)}"
        settings = alert.compliance_details.failing_settings if alert.compliance_details else ()
        if settings:
            fallback += f" ({settings[0].sentence})"
    else:
        top = banner(
            "good",
            "🟢 ELIGIBILITY RESTORED",
            f"{name} passes device-based Conditional Access again",
            "Good",
        )
        why = [heading("What was fixed"), *reason_blocks(alert.previous_reasons, fixed=True)]
        if alert.current_risk_reasons:
            # Restored straight into a risk: no at_risk card follows, so this card warns.
            ends = f" on {when(alert.deadline)}" if alert.deadline else ""
            why += [
                heading("Still at risk"),
                text(f"Eligible again, but it will lose access again{ends} unless this is fixed:"),
                *risk_blocks(alert.current_risk_reasons),
            ]
        fallback = f"{name} is eligible again (resolved: {', '.join(alert.previous_reasons)})"
    body: list[Card] = [top]
    if note:
        body.append(text(f"Note: {note}", isSubtle=True))
    body += [facts(device_facts(alert)), *why]
    if alert.warnings:
        body.append(heading("Also worth knowing"))
        body += [text(f"**{w}**: {explain.warning(w).meaning}") for w in alert.warnings]
    body += [heading("When and how"), facts(timing_facts(alert))]
    actions = [
        *device_links(alert.object_id, alert.device_id, alert.managed_device_id),
        technical_details(alert),
    ]
    return adaptive_card(body, actions, fallback)
