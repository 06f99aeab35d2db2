"""The fleet report: one self-contained HTML page. Pure: data in, a string out.

No script, no web font, no image or style sheet to fetch: inline CSS and an inline SVG chart, so
the file opens anywhere, offline, and can be mailed or archived as it is. Every value that came
from Graph is HTML-escaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

from shared.core import explain
from shared.core.records import StateRow
from shared.views.fleet import Counts, DayPoint, FleetSummary, display_name, record_os_label

MAX_LISTED = 2000  # ineligible devices in the table; the CSV export has them all

CSS = """
:root { --ok: #1b7f3b; --bad: #b3261e; --muted: #5f6368; --line: #dadce0; --bg: #f8f9fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #202124;
       margin: 0; padding: 24px 32px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
p.meta { color: var(--muted); margin: 0 0 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 150px;
        background: var(--bg); }
.card .n { font-size: 28px; font-weight: 600; display: block; }
.card.ok .n { color: var(--ok); } .card.bad .n { color: var(--bad); }
.card .l { color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px ui-monospace, SFMono-Regular, Consolas, monospace; background: var(--bg);
       padding: 1px 4px; border-radius: 3px; }
.reason { margin: 0 0 4px; } .reason small { color: var(--muted); display: block; }
.ok { color: var(--ok); } .bad { color: var(--bad); }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px -2px 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 0 24px; }
footer { color: var(--muted); margin-top: 32px; font-size: 12px; }
@media print { body { padding: 0; } h2 { break-after: avoid; } tr { break-inside: avoid; } }
"""


@dataclass(frozen=True, slots=True)
class ReportData:
    summary: FleetSummary
    ineligible: list[StateRow]
    series: list[DayPoint]
    generated_at: datetime
    title: str = "devicemon: device-based Conditional Access eligibility"
    source: str = field(default="")  # where the data came from (storage account, prefix)


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _card(ident: str, number: object, label: str, tone: str = "") -> str:
    return (
        f'<div class="card {tone}"><span class="n" id="{ident}">{_e(number)}</span>'
        f'<span class="l">{_e(label)}</span></div>'
    )


def summary_cards(summary: FleetSummary) -> str:
    o = summary.overall
    cards = [
        _card("devices-total", o.devices, "devices"),
        _card("devices-eligible", o.eligible, f"eligible ({o.eligible_percent:.1f}%)", "ok"),
        _card("devices-ineligible", o.ineligible, "ineligible", "bad" if o.ineligible else ""),
    ]
    if summary.deleted:
        cards.append(_card("devices-deleted", summary.deleted, "of them deleted"))
    warned = sum(summary.by_warning.values())
    cards.append(_card("devices-warnings", warned, "warnings (eligibility unchanged)"))
    return f'<div class="cards">{"".join(cards)}</div>'


def nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 6, 8, 10, 20, 40, … (even, so half of it is a whole number) that is
    at least `value`: round numbers on the chart's axis."""
    scale = 1
    while True:
        for step in (2, 4, 6, 8, 10):
            if step * scale >= value:
                return step * scale
        scale *= 10


def chart(series: list[DayPoint], width: int = 960, height: int = 260) -> str:
    """Stacked bars per day: eligible below, ineligible above, with a tooltip per bar."""
    if not series:
        return "<p>No history in the period.</p>"
    left, right, top, bottom = 48, 12, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = nice_ceiling(max((p.devices for p in series), default=0))
    step = plot_w / len(series)
    bar = max(1.0, step * 0.72)
    parts = [
        f'<svg id="eligibility-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} '
        f'{height}" width="100%" role="img" aria-label="Eligible and ineligible devices per day">'
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - fraction)
        value = int(peak * fraction)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dadce0"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#5f6368">{value}</text>'
        )
    label_every = max(1, round(len(series) / 8))
    for i, point in enumerate(series):
        x = left + i * step + (step - bar) / 2
        ok_h = plot_h * point.eligible / peak
        bad_h = plot_h * point.ineligible / peak
        tip = f"{point.day.isoformat()}: {point.eligible} eligible, {point.ineligible} ineligible"
        parts.append(
            f'<g class="day"><title>{_e(tip)}</title>'
            f'<rect x="{x:.1f}" y="{top + plot_h - ok_h:.1f}" width="{bar:.1f}" '
            f'height="{ok_h:.1f}" fill="#1b7f3b"/>'
            f'<rect x="{x:.1f}" y="{top + plot_h - ok_h - bad_h:.1f}" width="{bar:.1f}" '
            f'height="{bad_h:.1f}" fill="#b3261e"/></g>'
        )
        if (len(series) - 1 - i) % label_every == 0:  # counted back, so today is labelled
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 16}" font-size="11" '
                f'text-anchor="middle" fill="#5f6368">{point.day.strftime("%d %b")}</text>'
            )
    parts.append("</svg>")
    legend = (
        '<p class="legend"><span style="background:#1b7f3b"></span>eligible'
        '<span style="background:#b3261e"></span>ineligible (end of each UTC day)</p>'
    )
    return "".join(parts) + legend


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


def reasons_table(summary: FleetSummary) -> str:
    if not summary.by_reason:
        return "<h2>Reasons</h2><p>No device is ineligible.</p>"
    rows = "".join(
        f"<tr><td><code>{_e(code)}</code></td><td class=num>{n}</td>"
        f"<td>{_e(explain.reason(code).meaning)}</td><td>{_e(explain.reason(code).action)}</td></tr>"
        for code, n in sorted(summary.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return (
        "<h2>Why devices are ineligible</h2><table><tr><th>reason</th><th class=num>devices</th>"
        f"<th>meaning</th><th>what to do</th></tr>{rows}</table>"
    )


def device_rows(states: list[StateRow]) -> tuple[str, str]:
    rows = []
    for state in states[:MAX_LISTED]:
        r = state.record
        why = "".join(
            f'<p class="reason"><code>{_e(c)}</code> {_e(explain.reason(c).short)}'
            f"<small>{_e(explain.reason(c).meaning)}</small></p>"
            for c in r.reasons
        )
        rows.append(
            f'<tr class="device"><td><strong>{_e(display_name(r))}</strong><br>'
            f"<small><code>{_e(r.object_id)}</code></small></td>"
            f"<td>{_e(explain.join_type(r.join_type))}</td><td>{_e(record_os_label(r))}</td>"
            f"<td>{_e(explain.compliance(r.compliance))}</td>"
            f"<td>{_e(_when(state.last_transition_at))}</td><td>{why}</td>"
            f"<td>{_e(r.user_principal_name or '-')}</td></tr>"
        )
    more = len(states) - MAX_LISTED
    note = (
        f"<p>…and {more} more: <code>devicemon fleet --ineligible --csv</code> lists all.</p>"
        if more > 0
        else ""
    )
    return "".join(rows), note


def ineligible_table(states: list[StateRow]) -> str:
    if not states:
        return "<h2>Ineligible devices</h2><p>None.</p>"
    rows, note = device_rows(states)
    return (
        f"<h2>Ineligible devices ({len(states)})</h2><table id=ineligible><tr><th>device</th>"
        "<th>join type</th><th>OS</th><th>compliance</th><th>ineligible since</th>"
        f"<th>why</th><th>primary user</th></tr>{rows}</table>{note}"
    )


def render(data: ReportData) -> str:
    s = data.summary
    policies = ", ".join(f"{p} ({n})" for p, n in s.policies.most_common()) or "-"
    days = len(data.series)
    trend = ""
    if data.series:
        first, last = data.series[0], data.series[-1]
        trend = (
            f"<p>Ineligible devices: {first.ineligible} on {first.day.isoformat()}, "
            f"{last.ineligible} on {last.day.isoformat()}.</p>"
        )
    source = f" · {_e(data.source)}" if data.source else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(data.title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(data.title)}</h1>"
        f'<p class="meta">Generated {_e(_when(data.generated_at))} from DeviceState and '
        f"DeviceHistory{source} · evaluated under CA_POLICY {_e(policies)}</p>"
        f"{summary_cards(s)}"
        f"<h2>Eligibility over the last {days} days</h2>{chart(data.series)}{trend}"
        f'<div class="grid">'
        f"{counts_table('By join type', 'join type', s.by_join_type, explain.JOIN_TYPES)}"
        f"{counts_table('By operating system', 'OS', s.by_os, {})}</div>"
        f"{reasons_table(s)}{ineligible_table(data.ineligible)}"
        "<footer>devicemon · reason codes are explained in docs/reason-codes.md · "
        "a device counts as eligible when it passes the device controls of the configured "
        "policy.</footer></body></html>"
    )
