"""`devicemon report --html`: the page from the seeded fleet, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli import errors
from tests.cli.conftest import devicemon
from tests.cli.seed import ELIGIBLE, INELIGIBLE, Fleet


async def test_report_writes_one_self_contained_page(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "fleet.html"

    result = await devicemon(capsys, fleet_env, "report", "--html", str(target), "--days", "7")

    assert result.code == errors.OK, result.err
    assert result.out.startswith(
        f"Wrote {target}: {ELIGIBLE + INELIGIBLE} devices, {ELIGIBLE} eligible, "
        f"{INELIGIBLE} ineligible; 7 days of history (8 history rows)"
    )
    page = target.read_text("utf-8")
    assert f'id="devices-total">{ELIGIBLE + INELIGIBLE}<' in page
    assert f'id="devices-ineligible">{INELIGIBLE}<' in page
    assert page.count('<g class="day">') == 7
    assert page.count('<tr class="device">') == INELIGIBLE
    assert "LAPTOP-0042" in page and "not hybrid joined" in page
    assert fleet_env["TablesConnection"].split("AccountKey=")[1][:20] not in page  # no secrets
    assert os.listdir(tmp_path) == ["fleet.html"]  # no temporary file left behind


async def test_report_into_a_missing_folder_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str], tmp_path: Path
) -> None:
    result = await devicemon(capsys, fleet_env, "report", "--html", str(tmp_path / "no" / "r.html"))

    assert result.code == errors.USAGE
    assert "does not exist" in result.err
