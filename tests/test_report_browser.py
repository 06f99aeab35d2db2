"""The HTML report in a real browser: Debian's headless Chromium loads the file (no network),
renders it, and leaves a screenshot in $DEVICEMON_ARTIFACTS/report/ for a person to look at.

Chromium is a test dependency like Node.js: .ci/run installs Debian's `chromium` package when it
is missing. Without it this test fails, it does not skip.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.views.report_html import render
from tests.conftest import ARTIFACTS
from tests.shared.views.fleet_data import sample_report

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


def test_report_renders_in_chromium_with_its_numbers_chart_and_devices(tmp_path: Path) -> None:
    out = ARTIFACTS / "report"
    out.mkdir(parents=True, exist_ok=True)
    page = out / "fleet-report.html"
    page.write_text(render(sample_report(datetime(2026, 11, 29, 12, tzinfo=UTC))), "utf-8")
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
    assert '<svg id="eligibility-chart"' in dom
    assert dom.count('<g class="day">') == 30
    assert dom.count('<tr class="device">') == 4
    assert "<script" not in dom  # the hostile device name stayed text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert png_size(screenshot) == (1280, 1600)
    assert screenshot.stat().st_size > 30_000  # a rendered page, not a blank one
