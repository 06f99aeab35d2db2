"""The HTML report in a real browser: Debian's headless Chromium loads the file (no network),
renders it, and leaves screenshots in $DEVICEMON_ARTIFACTS/report/ for a person to look at.

Layout is measured by the browser itself: the report, which carries no script, is shown in an
`<iframe srcdoc>` of a given width by a wrapper page whose script writes the report's measured
size into the DOM that `--dump-dom` prints. (Chromium keeps a window at least 500 px wide, so a
phone's 390 px needs the iframe.)

Chromium is a test dependency like Node.js: .ci/run installs Debian's `chromium` package when it
is missing. Without it this test fails, it does not skip.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.views.report_html import render
from tests.conftest import ARTIFACTS
from tests.shared.views.fleet_data import ineligible, many_ineligible, sample_report, state

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
PHONE = 390  # CSS pixels across a current phone held upright
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
# Runs in the wrapper, never in the report: the report's size and what a reader sees of it.
PROBE = """
const frame = document.getElementById("report");
frame.onload = () => {
  const doc = frame.contentDocument, root = doc.documentElement;
  const shown = (sel) => [...doc.querySelectorAll(sel)].filter(
    (e) => e.getBoundingClientRect().height > 0).length;
  document.body.insertAdjacentHTML("beforeend", "<pre id='measure'></pre>");
  document.getElementById("measure").textContent = JSON.stringify({
    height: root.scrollHeight, scrollWidth: root.scrollWidth, width: root.clientWidth,
    devices: shown("#ineligible tr.device"), warned: shown("#warned tr.warned"),
    soon: [...doc.querySelectorAll("#warned .soon")].map((e) => e.textContent),
  });
};
"""


def chromium_binary() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found is None:
        pytest.fail(
            "Debian's chromium is not installed; install it with `apt-get install -y chromium` "
            "(.ci/run does this) to run the report's browser test"
        )
    return found


def browse(url: str, profile: Path, *extra: str) -> str:
    done = subprocess.run(
        [chromium_binary(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def framed(page: str, width: int, height: int = 800, probe: bool = True) -> str:
    script = f"<script>{PROBE}</script>" if probe else ""
    return (
        '<!DOCTYPE html><html><body style="margin:0">'
        f'<iframe id="report" style="border:0" width="{width}" height="{height}" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>{script}</body></html>'
    )


def measure(page: str, width: int, folder: Path) -> dict[str, Any]:
    """The report laid out `width` CSS pixels wide, as Chromium measured it."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / f"measure-{width}.html"
    wrapper.write_text(framed(page, width), "utf-8")
    dom = browse(
        wrapper.as_uri(), folder / "profile", f"--window-size={max(width, 500)},900", "--dump-dom"
    )
    found = re.search(r'<pre id="measure">([^<]*)</pre>', dom)
    assert found, "the probe did not run: " + dom[-500:]
    return dict(json.loads(html.unescape(found.group(1))))


def test_report_renders_in_chromium_with_its_numbers_chart_and_devices(tmp_path: Path) -> None:
    out = ARTIFACTS / "report"
    out.mkdir(parents=True, exist_ok=True)
    page = out / "fleet-report.html"
    page.write_text(render(sample_report(NOW)), "utf-8")
    screenshot = out / "fleet-report.png"
    screenshot.unlink(missing_ok=True)

    dom = browse(page.as_uri(), tmp_path / "dom", "--dump-dom")
    browse(
        page.as_uri(),
        tmp_path / "shot",
        f"--screenshot={screenshot}",
        "--window-size=1280,1600",
    )

    def number(ident: str) -> str:
        found = re.search(rf'id="{ident}">(\d+)<', dom)
        assert found, f"#{ident} is not in the rendered DOM"
        return found.group(1)

    assert (number("devices-total"), number("devices-eligible"), number("devices-ineligible")) == (
        "40",
        "36",
        "4",
    )
    assert number("devices-warned") == "2"
    assert '<svg id="eligibility-chart"' in dom
    assert dom.count('<g class="day">') == 30
    assert dom.count('<tr class="device">') == 4
    assert "<script" not in dom  # the hostile device name stayed text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert png_size(screenshot) == (1280, 1600)
    assert screenshot.stat().st_size > 30_000  # a rendered page, not a blank one


def test_warnings_are_listed_with_their_deadline_where_a_reader_sees_them(tmp_path: Path) -> None:
    seen = measure(render(sample_report(NOW)), 1280, tmp_path)
    assert seen["warned"] == 2  # the grace period ending in 20 hours, and a stale sign-in
    assert seen["soon"] == ["in 20 h"]


def test_33_ineligible_devices_make_a_short_page(tmp_path: Path) -> None:
    # Each device row used to repeat every reason's explanation: 33 devices made 7,200 px.
    with_33 = measure(render(many_ineligible(NOW, 33)), 1280, tmp_path / "33")
    with_66 = measure(render(many_ineligible(NOW, 66)), 1280, tmp_path / "66")

    assert with_33["devices"] == 33 and with_66["devices"] == 66
    assert with_33["height"] < 3000, with_33
    per_device = (with_66["height"] - with_33["height"]) / 33
    assert per_device < 60, f"{per_device:.0f} px per ineligible device"  # two lines of text


def test_the_report_reads_at_phone_width_without_scrolling_sideways(tmp_path: Path) -> None:
    data = sample_report(NOW, first_day=10)
    long_name = "LAPTOP-" + "X" * 80  # names and users from Graph can be long, unbroken words
    extra = state(
        ineligible(display_name=long_name, user_principal_name="a" * 60 + "@contoso.example")
    )
    data = replace(data, ineligible=[*data.ineligible, extra])
    page = render(data)

    seen = measure(page, PHONE, tmp_path)

    assert seen["width"] == PHONE
    assert seen["scrollWidth"] <= PHONE, seen  # nothing wider than the phone
    assert seen["devices"] == 5 and seen["warned"] == 2
    out = ARTIFACTS / "report"
    out.mkdir(parents=True, exist_ok=True)
    phone = out / "fleet-report-phone.html"
    phone.write_text(framed(page, PHONE, seen["height"], probe=False), "utf-8")
    screenshot = out / "fleet-report-phone.png"
    screenshot.unlink(missing_ok=True)
    browse(
        phone.as_uri(),
        tmp_path / "shot",
        f"--screenshot={screenshot}",
        f"--window-size=500,{seen['height']}",
    )
    assert png_size(screenshot) == (500, seen["height"])
