"""The early-warning cards: amber for `at_risk` (a device still passes device-based Conditional
Access but will lose it at a known time), short and green for `at_risk_cleared`. Pure.

Built from the blocks in teams_cards.py and held to the same rules (Adaptive Card 1.4, Workflows
actions only, under Teams' size limit, codes never in a FactSet). An amber card answers three
questions in this order: when access ends (the deadline in UTC and from now, or "at any moment"),
why (each risk in words), and who should do what (the alert's own advice, data.risk.advice).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.consumers.teams_cards import (
    Card,
    adaptive_card,
    banner,
    clip,
    compliance_blocks,
    device_facts,
    device_links,
    facts,
    heading,
    policy_blocks,
    risk_blocks,
    technical_details,
    text,
    timing_facts,
    when,
)
from shared.core import explain
from shared.core.alert_view import AlertView
from shared.core.models import RiskReason

# Who can act on each risk: the user at the device, or an Intune admin (a setting in Error, or
# Entra lagging behind Intune, are nothing a user can fix alone).
WHO: dict[str, str] = {
    RiskReason.GRACE_PERIOD_ENDING: "the user, helped by an Intune admin",
    RiskReason.CHECKIN_OVERDUE: "the user",
    RiskReason.COMPLIANCE_ERROR_PENDING: "an Intune admin",
    RiskReason.INTUNE_ENTRA_MISMATCH: "an Intune admin",
}
# No instant is known when Entra ID merely lags behind Intune's verdict: it can catch up with
# every Intune check-in, so access can end at any moment.
ANY_MOMENT = frozenset({RiskReason.INTUNE_ENTRA_MISMATCH.value})


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{n} {unit}{'' if n == 1 else 's'}"
        for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"))
        if n
    ]
    return " ".join(parts[:2]) or "less than a minute"


def relative(deadline: datetime, now: datetime) -> str:
    """'in 2 days 5 hours', or how long ago it passed (a backlog can post a card late)."""
    if deadline > now:
        return f"in {_span(deadline - now)}"
    return f"passed {_span(now - deadline)} ago"


def access_ends(alert: AlertView, now: datetime) -> tuple[str, str]:
    """(the headline's 'when', the sentence under the banner)."""
    any_moment = not ANY_MOMENT.isdisjoint(alert.risk_reasons)
    if alert.deadline is None:
        if any_moment:
            return "at any moment", (
                "Access ends **at any moment**: Intune's verdict has not reached Entra ID yet, "
                "and can with the device's next check-in."
            )
        return "at a time devicemon does not know", (
            "Access ends **at a time devicemon does not know**: it will look again."
        )
    span = relative(alert.deadline, now)
    sentence = f"Access ends **{when(alert.deadline)}** ({span})"
    if any_moment:
        return (
            "at any moment",
            sentence + ", or sooner: Entra ID can catch up with Intune at any moment.",
        )
    headline = span if alert.deadline > now else "now (its deadline has passed)"
    return headline, sentence + "."


def _what_to_do(alert: AlertView) -> list[Card]:
    blocks: list[Card] = []
    for code in alert.risk_reasons:
        action = alert.risk_action(code) or explain.risk(code).action
        who = WHO.get(code, "an admin")
        blocks.append(text(f"**{code}**, for {who}: {clip(action, 600)}"))
    return blocks


def at_risk_card(alert: AlertView, now: datetime) -> Card:
    """The amber card for one at_risk alert."""
    name = clip(alert.name, 80)
    headline, sentence = access_ends(alert, now)
    top = banner(
        "warning",
        "🟠 AT RISK",
        f"{name} will lose device-based Conditional Access {headline}",
        "Warning",
    )
    body: list[Card] = [
        top,
        text(sentence),
        facts(device_facts(alert)),
        heading("Why"),
        *risk_blocks(alert.risk_reasons),
        *compliance_blocks(alert.compliance_details),
        heading("What to do"),
        *_what_to_do(alert),
        *policy_blocks(alert, "Policies that will block it"),
    ]
    timing = timing_facts(alert)
    if alert.lead_hours is not None:
        timing.append(("Warned", f"{alert.lead_hours} hours ahead of a known deadline"))
    body += [heading("When and how"), facts(timing)]
    actions = [
        *device_links(alert.object_id, alert.device_id, alert.managed_device_id),
        technical_details(alert),
    ]
    risks = ", ".join(alert.risk_reasons) or "unknown"
    return adaptive_card(body, actions, f"{name} at risk ({risks}): access ends {headline}")


def cleared_card(alert: AlertView) -> Card:
    """The short green card: the risk went away without a loss."""
    name = clip(alert.name, 80)
    top = banner(
        "good",
        "🟢 NO LONGER AT RISK",
        f"{name} keeps device-based Conditional Access",
        "Good",
    )
    body: list[Card] = [
        top,
        *(
            text(f"✔ **{code}** (resolved): {explain.risk(code).short}")
            for code in alert.risk_reasons
        ),
        facts(
            [
                ("Device", clip(alert.name)),
                ("Owner", clip(alert.user_principal_name) or "unknown"),
                ("Detected", when(alert.detected_at)),
            ]
        ),
    ]
    actions = device_links(alert.object_id, alert.device_id, alert.managed_device_id)
    resolved = ", ".join(alert.risk_reasons) or "its risk"
    return adaptive_card(body, actions, f"{name} is no longer at risk (resolved: {resolved})")
