"""The noise-control cards: one card for a flapping device, one summary for a mass event. Pure.

Built from the blocks in teams_cards.py and held to the same rules (Adaptive Card 1.4, Workflows
actions only, under Teams' size limit, reason codes never in a FactSet). Each names the reason
behind the noise and where to look, following that reason (FLAP_CAUSES, MASS_CAUSES).
"""

from __future__ import annotations

from datetime import datetime

from shared.consumers.noise import Flip, MassSummary
from shared.consumers.teams_cards import (
    JOIN_TYPES,
    MAX_LISTED,
    Card,
    adaptive_card,
    banner,
    clip,
    code_rows,
    device_facts,
    device_links,
    facts,
    heading,
    hhmm,
    reason_blocks,
    technical_details,
    text,
    when,
)
from shared.core import explain
from shared.core.alert_view import AlertView

# What usually makes one device flip on a reason, and where to look.
FLAP_CAUSES: dict[str, str] = {
    "NOT_COMPLIANT": "A compliance setting that keeps failing and passing (something on the "
    "device resets it, or two policies disagree): open the device in Intune and compare its "
    "compliance reports.",
    "COMPLIANCE_UNKNOWN": "Intune's compliance report comes and goes: check the enrollment, and "
    "for a co-managed device which authority holds the compliance workload.",
    "DEVICE_DISABLED": "Someone or some automation keeps disabling and enabling the device: the "
    "Entra audit log names who.",
    "DEVICE_DELETED": "The device keeps being deleted and registered again: look for a cleanup "
    "script and a re-join loop in the Entra audit log.",
    "NOT_HYBRID_JOINED": "The device's join keeps changing: check `dsregcmd /status` on it and "
    "Entra Connect's sync scope.",
    "HYBRID_JOIN_PENDING": "The hybrid join keeps falling back to Pending: check that the device "
    "stays in Entra Connect's sync scope and is not deleted and re-synced.",
    "NOT_JOINED": "The device's registration keeps changing: check the Entra audit log for the "
    "device.",
    "COMPLIANCE_NOT_SUPPORTED": "The device's reported Windows version keeps changing between "
    "down-level and Windows 10 or later: check what it reports in Entra.",
    "BLOCKED_BY_POLICY": "The device keeps entering and leaving a blocking policy's scope: an "
    "attribute its device filter reads (an extension attribute, the trust type) keeps changing, "
    "or the policy keeps being switched on and off: the Entra audit log names who.",
}
# What usually makes many devices change at once for the same reason. Eligibility lost: the
# likely cause and where to look; regained together: the cause was probably undone centrally.
MASS_CAUSES: dict[str, str] = {
    "NOT_COMPLIANT": "A compliance policy changed or newly assigned, or a requirement many "
    "devices miss at once (a minimum OS version, a Defender risk signal): check Intune's recent "
    "compliance policy changes, then the failing setting on one device.",
    "COMPLIANCE_UNKNOWN": "Intune stopped reporting compliance for many devices: check Intune's "
    "service health, the co-management compliance workload, and recent enrollment changes.",
    "DEVICE_DISABLED": "A bulk action: check the Entra audit log (Disable device) for who or "
    "what disabled them, e.g. a stale-device cleanup.",
    "DEVICE_DELETED": "A bulk deletion: check the Entra audit log (Delete device) for who or "
    "what deleted them, e.g. a stale-device cleanup.",
    "NOT_HYBRID_JOINED": "The hybrid join requirement met Entra joined devices: a Conditional "
    "Access change (or CA_POLICY) now requires hybrid join, or Entra Connect stopped syncing "
    "these devices.",
    "HYBRID_JOIN_PENDING": "Entra Connect synced devices that have not registered yet (a new OU "
    "in sync scope, or devices deleted in Entra and synced back): they complete the join at the "
    "next user sign-in on the corporate network.",
    "NOT_JOINED": "Registered (personal) devices fail a requirement they cannot meet: a "
    "Conditional Access change (or CA_POLICY) likely now requires hybrid join.",
    "COMPLIANCE_NOT_SUPPORTED": "Down-level Windows devices met the compliant control, which "
    "never supported them: a Conditional Access change (or CA_POLICY) now requires compliance "
    "of Windows devices older than Windows 10.",
    "BLOCKED_BY_POLICY": "A Conditional Access policy that blocks was created, enabled or "
    "widened (its platforms or device filter): check the Entra audit log for Conditional "
    "Access changes; each device's card names the policy.",
}
MASS_RESTORED = (
    "They came back together: the cause was most likely fixed or undone centrally. Nothing to do "
    "unless it happens again."
)
# Many devices put at risk at once: the central change behind it, and where to look.
MASS_RISK_CAUSES: dict[str, str] = {
    "GRACE_PERIOD_ENDING": "A compliance policy changed (a new requirement, or one newly "
    "assigned) with a grace period: these devices keep access until it ends. Check Intune's "
    "recent compliance policy changes, then the failing setting on one device.",
    "CHECKIN_OVERDUE": "The tenant's compliance status validity period was shortened (Intune "
    "> Compliance policies > Compliance policy settings), or many devices stopped checking in "
    "at once (network, certificates, Intune service health).",
    "COMPLIANCE_ERROR_PENDING": "A compliance setting fails to evaluate on many devices (a "
    "setting those devices cannot report): check the policy's per-setting report in Intune "
    "before its seven days run out.",
    "INTUNE_ENTRA_MISMATCH": "Intune marked many devices noncompliant and Entra ID has not "
    "caught up: check the compliance policy change behind it now, access ends at any moment.",
}
MASS_CLEARED = (
    "Their risk went away together: the cause was most likely fixed or undone centrally. Nothing "
    "to do unless it happens again."
)
DOMINANT_SHARE = 0.8  # a reason carried by this share of a mass event's devices is its cause


def flip_codes(flips: list[Flip]) -> list[tuple[str, int, int]]:
    """(code, times lost on it, times restored from it), most frequent first."""
    lost: dict[str, int] = {}
    restored: dict[str, int] = {}
    for f in flips:
        for code in f.reasons:
            side = lost if f.lost else restored
            side[code] = side.get(code, 0) + 1
    codes = sorted(
        set(lost) | set(restored),
        key=lambda c: (-(lost.get(c, 0) + restored.get(c, 0)), c),
    )
    return [(c, lost.get(c, 0), restored.get(c, 0)) for c in codes][:MAX_LISTED]


def times(n: int) -> str:
    return {0: "never", 1: "once", 2: "twice"}.get(n, f"{n} times")


def _flip_words(f: Flip) -> str:
    change = "lost" if f.lost else "restored"
    return f"{change} ({explain.reasons_in_words(f.reasons)})" if f.reasons else change


def flapping_card(
    alert: AlertView,
    flips: list[Flip],
    window_minutes: int,
    quiet_until: datetime,
    skipped: int = 0,
) -> Card:
    """One card for a device that keeps losing and regaining eligibility, naming the reason
    (or reasons) it flips on."""
    name = clip(alert.name, 80)
    now = "LOST eligibility" if alert.lost else "eligible again"
    reasons = alert.reasons if alert.lost else ()
    codes = flip_codes(flips) or [(c, 0, 0) for c in alert.subject_reasons]
    top = banner(
        "warning",
        "🟠 FLAPPING",
        f"{name} changed eligibility {len(flips)} times in {window_minutes} minutes",
        "Warning",
    )
    body: list[Card] = [
        top,
        text(
            f"Latest: **{now}**. devicemon posts no more cards for this device until "
            f"{hhmm(quiet_until)}; the next change after that comes with the number of changes "
            "skipped. The device's timeline in devicemon has every change."
        ),
        *(
            [text(f"Note: {skipped} change(s) during the previous quiet period were not posted.")]
            if skipped
            else []
        ),
    ]
    if codes:
        body += [
            heading("What flips"),
            *code_rows(
                (
                    "",
                    code,
                    f"{explain.reason(code).short}: lost {times(n_lost)}, restored {times(n_restored)}"
                    if n_lost or n_restored
                    else explain.reason(code).short,
                )
                for code, n_lost, n_restored in codes
            ),
        ]
    body += [
        facts(device_facts(alert)),
        heading("Recent changes (UTC)"),
        facts(
            (f.at.strftime("%d %b %H:%M:%S"), _flip_words(f))
            for f in sorted(flips, key=lambda f: f.at)[-MAX_LISTED:]
        ),
    ]
    if reasons:
        body += [heading("Why (latest)"), *reason_blocks(reasons, fixed=False)]
    cause = FLAP_CAUSES.get(codes[0][0]) if codes else None
    body.append(
        text(
            cause
            or "Frequent flips usually mean a device that keeps failing and passing its "
            "evaluation, or an admin toggling it.",
            isSubtle=True,
        )
    )
    actions = [
        *device_links(alert.object_id, alert.device_id, alert.managed_device_id),
        technical_details(alert),
    ]
    on = f" on {', '.join(c for c, _, _ in codes)}" if codes else ""
    return adaptive_card(body, actions, f"{name} is flapping{on} ({len(flips)} changes)")


def _counted(counts: dict[str, int], labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LISTED]
    return [((labels or {}).get(k, clip(k, 60)), str(n)) for k, n in ordered]


def dominant_reason(summary: MassSummary) -> tuple[str, int] | None:
    """The reason most of the event's devices share (at least DOMINANT_SHARE of them)."""
    if not summary.reasons or not summary.total:
        return None
    code, count = min(summary.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    return (code, count) if count >= DOMINANT_SHARE * summary.total else None


def mass_hint(summary: MassSummary) -> str | None:
    """Where to look, following the dominant reason and the direction of the event."""
    found = dominant_reason(summary)
    if found is None:
        return None
    code, count = found
    direction = max(
        ("lost", summary.lost),
        ("restored", summary.restored),
        ("at_risk", summary.at_risk),
        ("cleared", summary.cleared),
        key=lambda kv: kv[1],
    )[0]
    causes = {
        "lost": MASS_CAUSES.get(code),
        "restored": MASS_RESTORED,
        "at_risk": MASS_RISK_CAUSES.get(code),
        "cleared": MASS_CLEARED,
    }
    cause = causes[direction]
    if cause is None:
        return None
    return f"{count} of {summary.total} share **{code}**: one common cause is likely. {cause}"


def policy_counts(summary: MassSummary) -> list[Card]:
    """The Conditional Access policies that block the event's devices, most devices first, and
    the one most of them share: a policy change is then the likely cause (issue 14 item 1).
    Names stand in full-width texts: a policy may be named like a code."""
    if not summary.policies:
        return []
    ordered = sorted(summary.policies.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LISTED]
    blocks = [heading("Blocking policies (devices)")]
    blocks += [text(f"{count}: **{clip(name, 120)}**") for name, count in ordered]
    name, count = ordered[0]
    if summary.total and count >= DOMINANT_SHARE * summary.total:
        blocks.append(
            text(
                f"{count} of {summary.total} are blocked by **{clip(name, 120)}**: a change to "
                "that policy (its state, platforms, device filter or grant) is the likely cause. "
                "Check the Entra audit log for Conditional Access changes.",
            )
        )
    return blocks


def _short(code: str) -> str:
    known = explain.REASONS.get(code) or explain.RISKS.get(code)
    return known.short if known else ""


def mass_card(summary: MassSummary, window_minutes: int) -> Card:
    """One summary card instead of one card per device."""
    n = summary.total
    changed = "changed eligibility"
    if not summary.changes:
        changed = "were put at risk" if not summary.cleared else "changed their risk"
    elif summary.changes < n:
        changed = "changed eligibility or risk"
    titles = {
        "start": f"{n} devices {changed} within {window_minutes} minutes",
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
                *(
                    [
                        ("At risk (still eligible)", str(summary.at_risk)),
                        ("No longer at risk", str(summary.cleared)),
                    ]
                    if summary.at_risk or summary.cleared
                    else []
                ),
                ("From", when(summary.first)),
                ("To", when(summary.last)),
            ]
        ),
    ]
    if summary.reasons:
        ordered = sorted(summary.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LISTED]
        body += [
            heading("Reasons (devices)"),
            *code_rows((str(count), code, _short(code)) for code, count in ordered),
        ]
        hint = mass_hint(summary)
        if hint:
            body.append(text(hint))
    body += policy_counts(summary)
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
    return adaptive_card(body, [], f"Mass event: {n} devices {changed}")
