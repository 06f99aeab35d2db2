"""The HTML report is one self-contained page: pure rendering tests (the browser test renders it)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from html import escape
from html.parser import HTMLParser

import pytest

from shared.core import explain
from shared.views.fleet import DayPoint, summarize
from shared.views.report_chart import chart, nice_ceiling
from shared.views.report_html import MAX_LISTED, ReportData, render
from tests.shared.views.fleet_data import (
    ineligible,
    many_ineligible,
    record,
    sample_report,
    state,
)

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


def test_ineligible_devices_link_their_codes_to_one_explanation_each(page: str) -> None:
    tags = parse(page).tags
    assert sum(1 for tag, attrs in tags if tag == "tr" and attrs.get("class") == "device") == 4
    assert (
        '<a class="code" href="#r-DEVICE_DISABLED" title="'
        f'{explain.reason("DEVICE_DISABLED").short}"><code>DEVICE_DISABLED</code></a>'
    ) in page
    assert '<tr id="r-DEVICE_DISABLED">' in page
    for code in ("NOT_COMPLIANT", "DEVICE_DISABLED"):
        assert page.count(escape(explain.reason(code).meaning)) == 1
        assert page.count(escape(explain.reason(code).action)) == 1


def test_the_reason_words_appear_once_however_many_devices_carry_them() -> None:
    page = render(many_ineligible(NOW, 33))
    assert page.count('<tr class="device">') == 33
    for code in ("NOT_COMPLIANT", "NOT_HYBRID_JOINED"):
        assert page.count(escape(explain.reason(code).meaning)) == 1
        assert page.count(f'href="#r-{code}"') == 33


def test_ineligible_devices_come_most_recently_lost_first() -> None:
    page = render(many_ineligible(NOW, 5))
    names = re.findall(r'<tr class="device"><td data-label="device"><strong>([^<]+)<', page)
    assert names == ["WS-0000", "WS-0001", "WS-0002", "WS-0003", "WS-0004"]  # lost 0, 1, 2… h ago
    shuffled = many_ineligible(NOW, 5)
    shuffled.ineligible.reverse()
    assert (
        re.findall(r'<tr class="device"><td data-label="device"><strong>([^<]+)<', render(shuffled))
        == names
    )


def test_a_grace_period_ending_in_20_hours_is_listed_with_its_deadline(page: str) -> None:
    assert 'id="devices-warned">2<' in page
    rows = re.findall(r'<tr class="warned">.*?</tr>', page)
    assert len(rows) == 2
    first, second = rows
    assert "PC-007" in first and "COMPLIANCE_GRACE_PERIOD" in first
    assert '<span class="soon">in 20 h</span><br><small>2026-11-30 08:00 UTC</small>' in first
    assert "PC-013" in second and "STALE_SIGN_IN" in second and "soon" not in second
    assert '<tr id="w-COMPLIANCE_GRACE_PERIOD">' in page
    assert page.count(escape(explain.warning("COMPLIANCE_GRACE_PERIOD").meaning)) == 1


@pytest.mark.parametrize(
    ("hours", "shown", "soon"),
    [(20, "in 20 h", True), (47, "in 47 h", True), (72, "in 3 days", False), (-2, "2 h ago", True)],
)
def test_deadlines_read_as_how_far_away_they_are(hours: int, shown: str, soon: bool) -> None:
    from datetime import timedelta

    rec = record(
        warnings=("COMPLIANCE_GRACE_PERIOD",), grace_period_expires=NOW + timedelta(hours=hours)
    )
    page = render(ReportData(summarize([rec]), [], [], NOW, warned=[state(rec)]))
    assert f">{shown}</span>" in page
    assert ('<span class="soon">' in page) is soon


def test_days_before_monitoring_began_are_no_data_not_zero() -> None:
    page = render(sample_report(NOW, first_day=10))
    assert page.count('<g class="day no-data">') == 10
    assert page.count('<g class="day">') == 20
    assert "<title>2026-10-31: no data (before monitoring began)</title>" in page
    assert 'id="no-data-band"' in page and ">no data</text>" in page
    assert "Monitoring began on 2026-11-10: earlier days have no data." in page


def test_nothing_about_where_the_data_is_stored(page: str) -> None:
    text = " ".join(parse(page).text)
    assert "table.core.windows.net" not in page and "prefix" not in text


def test_the_page_fits_a_phone(page: str) -> None:
    tags = parse(page).tags
    assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in tags
    assert "@media (max-width: 640px)" in page
    lists = [
        attrs for tag, attrs in tags if tag == "table" and "list" in (attrs.get("class") or "")
    ]
    assert len(lists) == 4  # both legends and both device lists become cards on a phone
    cells = [attrs for tag, attrs in tags if tag == "td"]
    in_lists = [a for a in cells if "data-label" in a]
    assert in_lists and all(a["data-label"] for a in in_lists)


def test_values_from_graph_are_escaped() -> None:
    hostile = '<img src=x onerror="alert(1)">&'
    data = ReportData(
        summary=summarize([ineligible(display_name=hostile)]),
        ineligible=[state(ineligible(display_name=hostile, user_principal_name="<b>u</b>"))],
        series=[],
        generated_at=NOW,
        warned=[state(ineligible(display_name=hostile, warnings=("<i>W</i>",)))],
    )
    page = render(data)
    assert "<img" not in page and "<script" not in page and "<b>u" not in page and "<i>" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in page


def test_an_empty_fleet_still_renders() -> None:
    page = render(ReportData(summarize([]), [], [], NOW))
    text = " ".join(parse(page).text)
    assert "No history in the period." in text and "No device is ineligible." in text
    assert "No device has a warning." in text


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


def _with_details(compliance: dict[str, object]) -> ReportData:
    from dataclasses import replace
    from json import dumps

    failing = replace(
        state(ineligible(display_name="LAPTOP-0042")), compliance_details=dumps(compliance)
    )
    return ReportData(summarize([failing.record]), [failing], [], NOW)


def test_an_ineligible_device_shows_the_failing_settings_its_alert_named() -> None:
    # The alert's data.compliance as docs/alerts.md documents it, stored with the state row.
    setting = {
        "setting": "Windows10CompliancePolicy.BitLockerEnabled",
        "state": "nonCompliant",
        "policyId": "p1",
        "policyName": "Windows 11 security baseline",
        "sentence": "BitLocker drive encryption is off.",
        "fix": "Turn on BitLocker for the system drive.",
    }
    unknown = {**setting, "setting": "Contoso.NewCheck", "sentence": "Contoso.NewCheck fails."}
    page = render(
        _with_details(
            {
                "failingPolicies": [{"id": "p1", "displayName": "b", "state": "nonCompliant"}],
                "failingSettings": [setting, unknown, setting, setting, setting],
            }
        )
    )
    assert page.count("BitLocker drive encryption is off.") == 2  # three shown of five
    assert "Turn on BitLocker for the system drive." in page
    assert "Contoso.NewCheck fails." in page  # unknown to devicemon, shown as Intune names it
    assert "…and 2 more failing settings" in page


def test_when_intune_could_not_be_read_the_report_says_why() -> None:
    page = render(
        _with_details({"unavailable": {"reason": "permission_missing", "detail": "grant <X>"}})
    )
    assert "grant &lt;X&gt;" in page


def test_an_unreadable_details_cell_costs_nothing_but_the_details() -> None:
    from dataclasses import replace

    broken = replace(state(ineligible(display_name="LAPTOP-7")), compliance_details="{not json")
    page = render(ReportData(summarize([broken.record]), [broken], [], NOW))
    assert "LAPTOP-7" in page and 'class="settings"' not in page
