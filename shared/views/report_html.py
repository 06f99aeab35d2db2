"""The fleet report: one self-contained HTML page. Pure: data in, a string out.

No script, no web font, no image or style sheet to fetch: inline CSS and an inline SVG chart
(report_chart.py), so the file opens anywhere, offline, and can be mailed or archived as it is.
Every value that came from Graph is HTML-escaped.

Written for the people it is shared with: each reason and warning is explained once, in a
legend the device rows link to; the ineligible devices come most recently lost first; devices
with warnings are listed with their deadline; on a phone the lists become one card per device.
Where the data came from (storage endpoint, table prefix) is the operator's business, not the
readers': the page does not show it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape

from shared.core import explain
from shared.core.compliance_details import ComplianceDetails
from shared.core.models import JUDGED_BY_POLICIES, PolicyRef
from shared.core.policy_eligibility import conditions_phrase
from shared.core.records import StateRow
from shared.views.fleet import Counts, DayPoint, FleetSummary, display_name, record_os_label
from shared.views.report_chart import chart

MAX_LISTED = 2000  # devices in each list; the CSV export has them all
SOON = timedelta(hours=48)  # a deadline this close is highlighted

CSS = """
:root { --ok: #1b7f3b; --bad: #b3261e; --warn: #8a4b00; --muted: #5f6368; --line: #dadce0;
        --bg: #f8f9fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #202124;
       margin: 0; padding: 24px 32px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
p.meta { color: var(--muted); margin: 0 0 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 150px;
        background: var(--bg); color: inherit; text-decoration: none; }
.card .n { font-size: 28px; font-weight: 600; display: block; }
.card.ok .n { color: var(--ok); } .card.bad .n { color: var(--bad); }
.card.warn .n { color: var(--warn); }
.card .l { color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px ui-monospace, SFMono-Regular, Consolas, monospace; background: var(--bg);
       padding: 1px 4px; border-radius: 3px; white-space: nowrap; }
a.code { text-decoration: none; color: inherit; }
a.code:hover code { text-decoration: underline; }
td.codes a + a { margin-left: 4px; }
ul.settings, ul.policies { margin: 4px 0 0; padding-left: 16px; font-size: 0.9em; }
td, th { overflow-wrap: break-word; }
td.when { white-space: nowrap; }
.soon { color: var(--bad); font-weight: 600; }
.ok { color: var(--ok); } .bad { color: var(--bad); }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px -2px 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(320px, 100%), 1fr));
        gap: 0 24px; }
footer { color: var(--muted); margin-top: 32px; font-size: 12px; }
@media print { body { padding: 0; } h2 { break-after: avoid; } tr { break-inside: avoid; } }
@media (max-width: 640px) {
  body { padding: 12px; font-size: 13px; }
  .card { min-width: 0; flex: 1 1 40%; padding: 8px 10px; }
  .card .n { font-size: 22px; }
  th, td { padding: 4px 4px; }
  table.list, table.list tbody, table.list tr, table.list td { display: block; width: 100%; }
  table.list tr.head { display: none; }
  table.list tr { border-bottom: 1px solid var(--line); padding: 6px 0; }
  table.list td { border: 0; padding: 1px 0; white-space: normal; text-align: left; }
  code { white-space: normal; overflow-wrap: anywhere; }
  table.list td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); }
  table.list td.minor { display: inline; }
  table.list td.minor::before { content: none; }
  table.list td.minor + td.minor::before { content: " · "; color: var(--muted); }
}
"""


@dataclass(frozen=True, slots=True)
class ReportData:
    summary: FleetSummary
    ineligible: list[StateRow]
    series: list[DayPoint]
    generated_at: datetime
    warned: list[StateRow] = field(default_factory=list)  # devices carrying any warning
    title: str = "devicemon: device-based Conditional Access eligibility"


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _card(ident: str, number: object, label: str, tone: str = "", href: str = "") -> str:
    tag, link = ("a", f' href="{href}"') if href else ("div", "")
    return (
        f'<{tag} class="card {tone}"{link}><span class="n" id="{ident}">{_e(number)}</span>'
        f'<span class="l">{_e(label)}</span></{tag}>'
    )


def summary_cards(summary: FleetSummary, warned: int) -> str:
    o = summary.overall
    cards = [
        _card("devices-total", o.devices, "devices"),
        _card("devices-eligible", o.eligible, f"eligible ({o.eligible_percent:.1f}%)", "ok"),
        _card(
            "devices-ineligible",
            o.ineligible,
            "ineligible",
            "bad" if o.ineligible else "",
            "#ineligible-devices" if o.ineligible else "",
        ),
    ]
    if summary.deleted:
        cards.append(_card("devices-deleted", summary.deleted, "of them deleted"))
    cards.append(
        _card(
            "devices-warned",
            warned,
            "with warnings (eligibility unchanged)",
            "warn" if warned else "",
            "#warned-devices" if warned else "",
        )
    )
    return f'<div class="cards">{"".join(cards)}</div>'


def counts_table(
    caption: str, column: str, groups: dict[str, Counts], names: dict[str, str]
) -> str:
    rows = "".join(
        f"<tr><td>{_e(names.get(k, k))}</td><td class=num>{c.devices}</td>"
        f"<td class=num>{c.eligible}</td><td class=num>{c.ineligible}</td>"
        f"<td class=num>{c.eligible_percent:.1f}%</td></tr>"
        for k, c in groups.items()
    )
    return (
        f"<div><h2>{_e(caption)}</h2><table><tr><th>{_e(column)}</th>"
        "<th class=num>devices</th><th class=num>eligible</th><th class=num>ineligible</th>"
        f"<th class=num>eligible %</th></tr>{rows}</table></div>"
    )


def _anchor(kind: str, code: str) -> str:
    return f"{kind}-{''.join(ch if ch.isalnum() or ch == '_' else '-' for ch in code)}"


def _code_link(kind: str, code: str, words: str) -> str:
    """A code in a device row: short, linked to its one explanation in the legend."""
    return (
        f'<a class="code" href="#{_anchor(kind, code)}" title="{_e(words)}">'
        f"<code>{_e(code)}</code></a>"
    )


def most_first(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Most devices first, then by code or id: what matters most at the top."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def legend(kind: str, heading: str, counts: dict[str, int], empty: str) -> str:
    """One row per code: how many devices carry it, what it means, what to do."""
    if not counts:
        return f"<h2>{_e(heading)}</h2><p>{_e(empty)}</p>"
    words = explain.reason if kind == "r" else explain.warning
    rows = "".join(
        f'<tr id="{_anchor(kind, code)}"><td data-label="code"><code>{_e(code)}</code></td>'
        f'<td class=num data-label="devices">{n}</td>'
        f'<td data-label="meaning">{_e(words(code).meaning)}</td>'
        f'<td data-label="what to do">{_e(words(code).action)}</td></tr>'
        for code, n in most_first(counts)
    )
    return (
        f'<h2>{_e(heading)}</h2><table class="list legend-{kind}"><tr class="head"><th>code</th>'
        f"<th class=num>devices</th><th>meaning</th><th>what to do</th></tr>{rows}</table>"
    )


def _device_cell(state: StateRow) -> str:
    r = state.record
    return (
        f'<td data-label="device"><strong>{_e(display_name(r))}</strong><br>'
        f"<small><code>{_e(r.object_id)}</code></small></td>"
    )


def _more(total: int) -> str:
    more = total - MAX_LISTED
    if more <= 0:
        return ""
    return f"<p>…and {more} more: <code>devicemon fleet --ineligible --csv</code> lists all.</p>"


def most_recently_lost(states: list[StateRow]) -> list[StateRow]:
    """Newest loss first: what changed lately is what a reader acts on."""
    by_name = sorted(states, key=lambda s: (display_name(s.record).casefold(), s.record.object_id))
    return sorted(by_name, key=lambda s: _aware(s.last_transition_at), reverse=True)


MAX_SETTINGS_SHOWN = 3


def failing_settings_html(state: StateRow) -> str:
    """What the lost alert said failed in Intune (DeviceState.ComplianceDetails): the setting in
    words and its fix, so the reader need not open Intune; unknown settings as Intune names them."""
    if not state.compliance_details:
        return ""
    try:
        details = ComplianceDetails.from_json(json.loads(state.compliance_details))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""  # an unreadable cell must not cost the reader the whole report
    if details.unavailable is not None:
        return f'<div class="settings"><small>{_e(details.detail)}</small></div>'
    shown = details.failing_settings[:MAX_SETTINGS_SHOWN]
    if not shown:
        return ""
    items = "".join(f"<li>{_e(f.sentence)} <small>{_e(f.fix)}</small></li>" for f in shown)
    more = len(details.failing_settings) - len(shown)
    tail = f"<li><small>…and {more} more failing settings</small></li>" if more > 0 else ""
    return f'<ul class="settings">{items}{tail}</ul>'


def _policy_link(ref: PolicyRef) -> str:
    """A blocking policy in a device row: its name, linked to its row in the policies table,
    and for which sign-ins it blocks (the conditions devicemon does not judge)."""
    scope = conditions_phrase(ref.conditional_on)
    return (
        f'<li><a href="#{_anchor("p", ref.policy_id)}">{_e(ref.display_name or ref.policy_id)}</a>'
        + (f" <small>{_e(scope)}</small>" if scope else "")
        + "</li>"
    )


def blocking_html(state: StateRow) -> str:
    refs = state.record.blocking_policies
    if not refs:
        return ""
    return f'<ul class="policies">{"".join(_policy_link(ref) for ref in refs)}</ul>'


def policies_table(
    ident: str, heading: str, counts: dict[str, int], names: dict[str, str], empty: str
) -> str:
    """One row per Conditional Access policy: how many devices it blocks (or would fail in
    report-only), by name, with its id for the Entra admin center."""
    if not counts:
        return f'<h2 id="{ident}">{_e(heading)}</h2><p>{_e(empty)}</p>'
    rows = "".join(
        f'<tr id="{_anchor("p", policy_id)}" class="policy">'
        f'<td data-label="policy">{_e(names.get(policy_id) or policy_id)}</td>'
        f'<td class=num data-label="devices">{n}</td>'
        f'<td data-label="id"><code>{_e(policy_id)}</code></td></tr>'
        for policy_id, n in most_first(counts)
    )
    return (
        f'<h2 id="{ident}">{_e(heading)}</h2><table class="list"><tr class="head">'
        f"<th>policy</th><th class=num>devices</th><th>id</th></tr>{rows}</table>"
    )


def policy_sections(summary: FleetSummary) -> str:
    """The policies that block devices and the report-only ones they would fail; nothing when
    no device was judged by the tenant's policies."""
    if not summary.judged_by.get(JUDGED_BY_POLICIES):
        return ""
    names = summary.policy_names
    return policies_table(
        "blocking-policies",
        "Conditional Access policies blocking devices",
        dict(summary.by_blocking_policy),
        names,
        "No enforced policy blocks any device.",
    ) + policies_table(
        "report-only-policies",
        "Report-only policies devices would fail (not enforced: they block nobody)",
        dict(summary.by_report_only),
        names,
        "No device would fail a report-only policy.",
    )


def ineligible_table(states: list[StateRow]) -> str:
    if not states:
        return '<h2 id="ineligible-devices">Ineligible devices</h2><p>None.</p>'
    rows = []
    for state in most_recently_lost(states)[:MAX_LISTED]:
        r = state.record
        codes = "".join(_code_link("r", c, explain.reason(c).short) for c in r.reasons)
        rows.append(
            f'<tr class="device">{_device_cell(state)}'
            f'<td class="when" data-label="ineligible since">{_e(_when(state.last_transition_at))}</td>'
            f'<td class="codes" data-label="why">{codes}{blocking_html(state)}'
            f"{failing_settings_html(state)}</td>"
            f'<td class="minor" data-label="join type">{_e(explain.join_type(r.join_type))}</td>'
            f'<td class="minor" data-label="OS">{_e(record_os_label(r))}</td>'
            f'<td class="minor" data-label="compliance">{_e(explain.compliance(r.compliance))}</td>'
            f'<td data-label="primary user">{_e(r.user_principal_name or "-")}</td></tr>'
        )
    return (
        f'<h2 id="ineligible-devices">Ineligible devices ({len(states)}), most recently lost '
        'first</h2><table class="list" id="ineligible"><tr class="head"><th>device</th>'
        "<th>ineligible since</th><th>why</th><th>join type</th><th>OS</th><th>compliance</th>"
        f"<th>primary user</th></tr>{''.join(rows)}</table>{_more(len(states))}"
    )


def deadline(state: StateRow) -> datetime | None:
    (
        """When a warned device loses eligibility, when that is known (the evaluation's deadline;
    Intune's grace period on rows written before deadlines were kept)."""
        ""
    )
    expires = state.record.deadline or state.record.grace_period_expires
    return _aware(expires) if expires else None


def _in(moment: datetime, now: datetime) -> str:
    """'in 20 h', 'in 3 days', '2 h ago': how far a deadline is from when the page was made."""
    delta = moment - _aware(now)
    hours = abs(delta.total_seconds()) / 3600
    span = f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"
    return f"in {span}" if delta.total_seconds() >= 0 else f"{span} ago"


def warned_table(states: list[StateRow], now: datetime) -> str:
    """Devices with warnings, the nearest deadline first, then the rest by name."""
    if not states:
        return '<h2 id="warned-devices">Devices with warnings</h2><p>None.</p>'
    far = datetime.max.replace(tzinfo=UTC)
    ordered = sorted(
        states,
        key=lambda s: (deadline(s) or far, display_name(s.record).casefold(), s.record.object_id),
    )
    rows = []
    for state in ordered[:MAX_LISTED]:
        r = state.record
        codes = "".join(_code_link("w", c, explain.warning(c).short) for c in r.warnings)
        due = deadline(state)
        if due is None:
            when = "-"
        else:
            soon = ' class="soon"' if due - _aware(now) <= SOON else ""
            when = f"<span{soon}>{_e(_in(due, now))}</span><br><small>{_e(_when(due))}</small>"
        state_words = "eligible" if r.eligible else "ineligible"
        rows.append(
            f'<tr class="warned">{_device_cell(state)}'
            f'<td data-label="deadline">{when}</td>'
            f'<td class="codes" data-label="warnings">{codes}</td>'
            f'<td data-label="now">{state_words}</td>'
            f'<td class="minor" data-label="join type">{_e(explain.join_type(r.join_type))}</td>'
            f'<td class="minor" data-label="OS">{_e(record_os_label(r))}</td>'
            f'<td data-label="primary user">{_e(r.user_principal_name or "-")}</td></tr>'
        )
    return (
        f'<h2 id="warned-devices">Devices with warnings ({len(states)}), nearest deadline '
        'first</h2><table class="list" id="warned"><tr class="head"><th>device</th>'
        "<th>deadline</th><th>warnings</th><th>now</th><th>join type</th><th>OS</th>"
        f"<th>primary user</th></tr>{''.join(rows)}</table>{_more(len(states))}"
    )


def trend(series: list[DayPoint]) -> str:
    known = [p for p in series if p.known]
    if not known:
        return ""
    first, last = known[0], known[-1]
    began = (
        f" Monitoring began on {first.day.isoformat()}: earlier days have no data."
        if not series[0].known
        else ""
    )
    return (
        f"<p>Ineligible devices: {first.ineligible} on {first.day.isoformat()}, "
        f"{last.ineligible} on {last.day.isoformat()}.{began}</p>"
    )


def judged(summary: FleetSummary) -> str:
    """Who judged the devices, for the page's head line."""
    policies = ", ".join(f"{p} ({n})" for p, n in summary.policies.most_common()) or "-"
    by_policies = summary.judged_by.get(JUDGED_BY_POLICIES, 0)
    if not by_policies:
        return f"evaluated under CA_POLICY {policies}"
    words = f"judged by the tenant's Conditional Access policies ({by_policies} devices)"
    return words + (f", by CA_POLICY {policies}" if summary.policies else "")


def render(data: ReportData) -> str:
    s = data.summary
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(data.title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(data.title)}</h1>"
        f'<p class="meta">Generated {_e(_when(data.generated_at))} · {_e(judged(s))}</p>'
        f"{summary_cards(s, len(data.warned))}"
        f"<h2>Eligibility over the last {len(data.series)} days</h2>{chart(data.series)}"
        f"{trend(data.series)}"
        f"{legend('r', 'Why devices are ineligible', dict(s.by_reason), 'No device is ineligible.')}"
        f"{policy_sections(s)}"
        f"{ineligible_table(data.ineligible)}"
        f"{legend('w', 'What the warnings mean', dict(s.by_warning), 'No device has a warning.')}"
        f"{warned_table(data.warned, data.generated_at)}"
        f'<div class="grid">'
        f"{counts_table('By join type', 'join type', s.by_join_type, explain.JOIN_TYPES)}"
        f"{counts_table('By operating system', 'OS', s.by_os, {})}</div>"
        "<footer>devicemon · reason and warning codes are explained in docs/reason-codes.md · "
        "a device counts as eligible when it fails no enforced Conditional Access policy of the "
        "tenant, or, where devicemon judges by the CA_POLICY setting, when it passes that "
        "setting's device controls.</footer></body></html>"
    )
