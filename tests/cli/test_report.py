"""`devicemon report --html`: the page from the seeded fleet, written atomically, with the
permissions of any new file, and a one-line usage error for a path it cannot write."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import errors
from tests.cli.conftest import devicemon
from tests.cli.seed import ELIGIBLE, INELIGIBLE, Fleet


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_report_writes_one_self_contained_page(
    capsys: pytest.CaptureFixture[str],
    fleet: Fleet,
    fleet_env: dict[str, str],
    tmp_path: Path,
    umask_022: None,
) -> None:
    target = tmp_path / "fleet.html"

    result = await devicemon(capsys, fleet_env, "report", "--html", str(target), "--days", "7")

    assert result.code == errors.OK, result.err
    written = re.fullmatch(
        rf"Wrote {re.escape(str(target))}: {ELIGIBLE + INELIGIBLE} devices, {ELIGIBLE} eligible, "
        rf"{INELIGIBLE} ineligible, (\d+) with warnings; 7 days of history \(8 history rows\)\n",
        result.out,
    )
    assert written, result.out
    page = target.read_text("utf-8")
    assert f'id="devices-total">{ELIGIBLE + INELIGIBLE}<' in page
    assert f'id="devices-ineligible">{INELIGIBLE}<' in page
    # The fleet was first evaluated today: the six days before are no data, not zero devices.
    assert page.count('<g class="day">') == 1
    assert page.count('<g class="day no-data">') == 6
    assert page.count('<tr class="device">') == INELIGIBLE
    warned = re.findall(r'<tr class="warned">.*?</tr>', page)
    assert len(warned) == int(written.group(1))
    assert any("KIOSK-LOBBY" in row and "UNSUPPORTED_OS" in row for row in warned)  # Windows 8.1
    assert "LAPTOP-0042" in page and 'href="#r-NOT_HYBRID_JOINED"' in page
    # Where the data lives is the operator's business: no endpoint, account, prefix or key.
    connection = dict(
        part.split("=", 1) for part in fleet_env["TablesConnection"].split(";") if "=" in part
    )
    for secret_or_place in (
        connection["AccountKey"][:20],
        connection["AccountName"],
        connection.get("TableEndpoint", "127.0.0.1"),
        fleet_env["TABLE_PREFIX"],
    ):
        assert secret_or_place not in page
    assert os.listdir(tmp_path) == ["fleet.html"]  # no temporary file left behind
    assert mode(target) == 0o644  # like any new file under the umask, not the temporary's 0600


async def test_a_report_replacing_a_file_keeps_its_permissions(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "fleet.html"
    target.write_text("yesterday's report")
    target.chmod(0o640)

    result = await devicemon(capsys, fleet_env, "report", "--html", str(target))

    assert result.code == errors.OK, result.err
    assert mode(target) == 0o640
    assert target.read_text("utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("where", "said"),
    [
        (lambda tmp: tmp / "no" / "r.html", "does not exist"),
        (lambda tmp: tmp, "is a folder: give a file name, e.g."),
        (lambda tmp: tmp / "sub", "is a folder: give a file name, e.g."),
    ],
)
async def test_a_path_the_report_cannot_be_written_to_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str],
    fleet: Fleet,
    fleet_env: dict[str, str],
    tmp_path: Path,
    where: object,
    said: str,
) -> None:
    (tmp_path / "sub").mkdir()
    path = where(tmp_path)  # type: ignore[operator]

    result = await devicemon(capsys, fleet_env, "report", "--html", str(path))

    assert result.code == errors.USAGE
    assert result.err.count("\n") == 1 and result.err.startswith("devicemon report: error: --html")
    assert said in result.err and "Traceback" not in result.err and result.out == ""


async def test_a_file_name_the_system_refuses_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str], tmp_path: Path
) -> None:
    too_long = tmp_path / ("r" * 300 + ".html")  # over the 255 bytes a file name may have

    result = await devicemon(capsys, fleet_env, "report", "--html", str(too_long))

    assert result.code == errors.USAGE
    assert result.err.count("\n") == 1 and "File name too long" in result.err
    assert os.listdir(tmp_path) == []
