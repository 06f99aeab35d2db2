"""The HTML report's chart: eligible and ineligible devices per UTC day, as inline SVG. Pure.

A day that ended before monitoring began has no data: it is drawn as a grey band labelled "no
data", never as a day with zero devices.
"""

from __future__ import annotations

from html import escape

from shared.views.fleet import DayPoint

OK_COLOUR = "#1b7f3b"
BAD_COLOUR = "#b3261e"
NO_DATA_FILL = "#eceff1"


def nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 6, 8, 10, 20, 40, … (even, so half of it is a whole number) that is
    at least `value`: round numbers on the chart's axis."""
    scale = 1
    while True:
        for step in (2, 4, 6, 8, 10):
            if step * scale >= value:
                return step * scale
        scale *= 10


def _no_data_band(series: list[DayPoint], left: float, step: float, top: int, plot_h: int) -> str:
    """One grey band over the leading days without data (they come before the first known
    day: monitoring begins once and never stops)."""
    unknown = next((i for i, p in enumerate(series) if p.known), len(series))
    if unknown == 0:
        return ""
    width = unknown * step
    label = (
        f'<text x="{left + width / 2:.1f}" y="{top + plot_h / 2:.1f}" font-size="11" '
        f'text-anchor="middle" fill="#5f6368">no data</text>'
        if width >= 48
        else ""
    )
    return (
        f'<rect id="no-data-band" x="{left:.1f}" y="{top}" width="{width:.1f}" height="{plot_h}" '
        f'fill="{NO_DATA_FILL}"/>{label}'
    )


def chart(series: list[DayPoint], width: int = 960, height: int = 260) -> str:
    """Stacked bars per day: eligible below, ineligible above, with a tooltip per bar."""
    if not any(p.known for p in series):
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
    parts.append(_no_data_band(series, left, step, top, plot_h))
    label_every = max(1, round(len(series) / 8))
    for i, point in enumerate(series):
        x = left + i * step + (step - bar) / 2
        if point.known:
            ok_h = plot_h * point.eligible / peak
            bad_h = plot_h * point.ineligible / peak
            tip = (
                f"{point.day.isoformat()}: {point.eligible} eligible, {point.ineligible} ineligible"
            )
            parts.append(
                f'<g class="day"><title>{escape(tip)}</title>'
                f'<rect x="{x:.1f}" y="{top + plot_h - ok_h:.1f}" width="{bar:.1f}" '
                f'height="{ok_h:.1f}" fill="{OK_COLOUR}"/>'
                f'<rect x="{x:.1f}" y="{top + plot_h - ok_h - bad_h:.1f}" width="{bar:.1f}" '
                f'height="{bad_h:.1f}" fill="{BAD_COLOUR}"/></g>'
            )
        else:  # a transparent bar for the tooltip: no data is not zero
            tip = f"{point.day.isoformat()}: no data (before monitoring began)"
            parts.append(
                f'<g class="day no-data"><title>{escape(tip)}</title>'
                f'<rect x="{x:.1f}" y="{top}" width="{bar:.1f}" height="{plot_h}" '
                'fill="transparent"/></g>'
            )
        if (len(series) - 1 - i) % label_every == 0:  # counted back, so today is labelled
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 16}" font-size="11" '
                f'text-anchor="middle" fill="#5f6368">{point.day.strftime("%d %b")}</text>'
            )
    parts.append("</svg>")
    no_data = (
        f'<span style="background:{NO_DATA_FILL}"></span>no data (before monitoring began)'
        if not series[0].known
        else ""
    )
    legend = (
        f'<p class="legend"><span style="background:{OK_COLOUR}"></span>eligible'
        f'<span style="background:{BAD_COLOUR}"></span>ineligible (end of each UTC day)'
        f"{no_data}</p>"
    )
    return "".join(parts) + legend
