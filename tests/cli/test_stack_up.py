"""`make stack` (local/up.py): the stack comes up seeded, the CLI works from the settings file it
writes, and Ctrl-C takes everything down again."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest

from cli import errors
from cli.main import main
from local.demo import FLEET
from local.up import READY, TWINS

ROOT = Path(__file__).resolve().parents[2]
START_WITHIN = 90.0  # seconds; it takes about 12 on a quiet machine
STOP_WITHIN = 30.0


def lines_of(stream: IO[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """A background reader, so that waiting for a line can time out."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return lines, reader


def wait_for(lines: queue.Queue[str], start: str, seen: list[str]) -> str:
    while True:
        try:
            line = lines.get(timeout=START_WITHIN)
        except queue.Empty:
            raise AssertionError(f"no line starting {start!r}; saw {seen}") from None
        seen.append(line)
        if line.startswith(start):
            return line


def accepts(url: str) -> bool:
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def test_make_stack_serves_the_cli_until_ctrl_c(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "local.settings.json"
    env = {**os.environ, "DEVICEMON_ARTIFACTS": str(tmp_path / "artifacts"), "NO_COLOR": "1"}
    up = subprocess.Popen(
        [sys.executable, "-m", "local.up", "--settings", str(settings)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        assert up.stdout is not None
        lines, reader = lines_of(up.stdout)
        wait_for(lines, READY, seen)
        values = json.loads(settings.read_text())["Values"]
        read_by_cli = ["--settings", str(settings)]

        fleet = main([*read_by_cli, "fleet", "--json"], env={})
        summary = json.loads(capsys.readouterr().out)["summary"]
        laptop = main([*read_by_cli, "device", "LAPTOP-0042"], env={})
        shown = capsys.readouterr().out
        twins = main([*read_by_cli, "device", "shared-pc"], env={})
        capsys.readouterr()

        assert fleet == errors.OK
        assert summary["devices"] == len(FLEET) + len(TWINS)
        assert laptop == errors.OK
        assert shown.startswith("LAPTOP-0042: INELIGIBLE since ")
        assert "lost: INELIGIBLE  (change notification)" in shown
        assert twins == errors.AMBIGUOUS
        assert settings.stat().st_mode & 0o077 == 0  # it holds the webhook's secret
        assert accepts(values["GRAPH_BASE_URL"])

        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=STOP_WITHIN)
        reader.join(timeout=STOP_WITHIN)
        while not lines.empty():
            seen.append(lines.get())
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()

    assert code == 0, "".join(seen)
    assert seen[-1].startswith("Stopped"), "".join(seen)
    assert not settings.exists()
    assert not accepts(values["GRAPH_BASE_URL"])
    assert not accepts(values["NOTIFICATION_URL"])
