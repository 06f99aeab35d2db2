"""The HTML report is one self-contained page: pure rendering tests (the browser test renders it)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from html.parser import HTMLParser

import pytest

from shared.views.fleet import DayPoint, summarize
from shared.views.report_html import MAX_LISTED, ReportData, chart, nice_ceiling, render
from tests.shared.views.fleet_data import ineligible, sample_report, state

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class Collector(HTMLParser):
    """Tags, attributes and text of a page, and whether every tag was closed properly."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Collector:
    collector = Collector()
    collector.feed(page)
    collector.close()
    return collector


@pytest.fixture(scope="module")
def page() -> str:
    return render(sample_report(NOW))


def test_nothing_is_fetched_when_the_page_opens(page: str) -> None:
    tags = parse(page).tags
    names = {tag for tag, _ in tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed"}
    assert not any("src" in attrs or "srcset" in attrs for _, attrs in tags)
    assert "url(" not in page and "@import" not in page


def test_summary_numbers_and_policy(page: str) -> None:
    text = " ".join(parse(page).text)
    assert re.search(r"\b40 devices\b", text)
    assert "36 eligible (90.0%)" in text
    assert "4 ineligible" in text
    assert "evaluated under CA_POLICY compliant_or_hybrid (40)" in text


def test_chart_has_a_bar_with_a_tooltip_per_day(page: str) -> None:
    tags = parse(page).tags
    assert sum(1 for tag, _ in tags if tag == "svg") == 1
    assert sum(1 for tag, attrs in tags if tag == "g" and attrs.get("class") == "day") == 30
    assert "<title>2026-11-29: 36 eligible, 4 ineligible</title>" in page


def test_ineligible_devices_with_reasons_in_words(page: str) -> None:
    tags = parse(page).tags
    assert sum(1 for tag, attrs in tags if tag == "tr" and attrs.get("class") == "device") == 4
    assert "<code>DEVICE_DISABLED</code> disabled in Entra ID" in page
    assert "Check the Entra audit log for who disabled it" in page


def test_values_from_graph_are_escaped() -> None:
    hostile = '<img src=x onerror="alert(1)">&'
    data = ReportData(
        summary=summarize([ineligible(display_name=hostile)]),
        ineligible=[state(ineligible(display_name=hostile, user_principal_name="<b>u</b>"))],
        series=[],
        generated_at=NOW,
        source='"><script>',
    )
    page = render(data)
    assert "<img" not in page and "<script" not in page and "<b>u" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in page


def test_an_empty_fleet_still_renders() -> None:
    page = render(ReportData(summarize([]), [], [], NOW))
    text = " ".join(parse(page).text)
    assert "No history in the period." in text and "No device is ineligible." in text


def test_a_huge_list_is_cut_with_a_pointer_to_the_csv() -> None:
    rows = [
        state(ineligible(object_id=f"00000000-0000-4000-8000-{n:012d}", display_name=f"PC-{n}"))
        for n in range(MAX_LISTED + 5)
    ]
    page = render(ReportData(summarize(r.record for r in rows), rows, [], NOW))
    assert page.count('<tr class="device">') == MAX_LISTED
    assert "…and 5 more: <code>devicemon fleet --ineligible --csv</code>" in page


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [
        (0, 2),
        (1, 2),
        (3, 4),
        (5, 6),
        (7, 8),
        (11, 20),
        (40, 40),
        (41, 60),
        (99, 100),
        (12345, 20000),
    ],
)
def test_axis_ends_on_a_round_even_number(value: int, ceiling: int) -> None:
    assert nice_ceiling(value) == ceiling


def test_chart_labels_today_and_scales_to_the_axis() -> None:
    series = [DayPoint(date(2026, 11, d), 3, 2) for d in range(1, 30)]
    svg = chart(series)
    assert svg.count(">29 Nov<") == 1
    assert ">6</text>" in svg and ">3</text>" in svg  # 5 devices a day: axis to 6
