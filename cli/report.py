"""`devicemon report --html FILE`: the fleet on one self-contained page (shared/views/report_html.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError

from cli.context import Context
from cli.errors import OK, USAGE, CliError
from cli.fleet import read_states
from cli.output import Console, wrap
from shared.core.records import HistoryRow
from shared.views.fleet import daily_series, summarize, window_start
from shared.views.report_html import ReportData, render


def target(text: str) -> Path:
    """The page's path, checked before any storage is read: a folder or a missing folder is a
    usage error in one line, not a traceback after the work is done."""
    path = Path(text)
    try:
        if path.is_dir():
            raise CliError(
                f"--html {text} is a folder: give a file name, e.g. {path / 'fleet.html'}", USAGE
            )
        folder = path.resolve().parent
        if not folder.is_dir():
            raise CliError(f"--html {text}: folder {folder} does not exist", USAGE)
    except OSError as exc:
        raise CliError(f"--html {text}: {exc.strerror or exc}", USAGE) from None
    return path


def _new_file_mode(path: Path) -> int:
    """What the page's permissions would be had it been written in place: an existing file's,
    or a new file's under the umask. A temporary file is created 0600, which is not what a
    page meant to be shared should end up with."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mask = os.umask(0o077)
        os.umask(mask)
        return 0o666 & ~mask


def write_atomically(path: Path, text: str) -> None:
    """A half-written report never replaces a good one."""
    folder = path.resolve().parent
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}", USAGE) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, _new_file_mode(path))
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise CliError(f"cannot write {path}: {exc.strerror or exc}", USAGE) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


async def run(ctx: Context, console: Console, args: argparse.Namespace) -> int:
    path = target(args.html)
    store = ctx.store()
    now = datetime.now(UTC)
    states = await read_states(store, ctx.settings.state_table)
    since = window_start(args.days, now.date())
    try:
        window: list[HistoryRow] = [row async for row in store.history_since(since)]
    except ResourceNotFoundError:
        window = []  # no history table yet: the chart shows today's states only
    records = [s.record for s in states]
    data = ReportData(
        summary=summarize(records),
        ineligible=[s for s in states if not s.record.eligible],
        series=daily_series(records, window, args.days, now.date()),
        generated_at=now,
        warned=[s for s in states if s.record.warnings],
    )
    await asyncio.to_thread(write_atomically, path, render(data))
    o = data.summary.overall
    console.say(
        f"Wrote {args.html}: {o.devices} devices, {o.eligible} eligible, {o.ineligible} "
        f"ineligible, {len(data.warned)} with warnings; {args.days} days of history "
        f"({len(window)} history rows)"
    )
    return OK


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 366:
        raise argparse.ArgumentTypeError("must be from 1 to 366")
    return value


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "report",
        parents=[common],
        help="write the fleet report as one self-contained HTML page",
        description=wrap(
            "Write a single HTML page (no network needed to open it: inline CSS and SVG, no "
            "script) with the fleet's eligibility, a chart of eligible and ineligible devices "
            "per day from DeviceHistory, the ineligible devices (most recently lost first) and "
            "the devices with warnings (nearest deadline first), each reason and warning "
            "explained once. Readable on a phone; written with the permissions of any new file "
            "(the umask), or those of the file it replaces."
        ),
        epilog="example:\n  devicemon report --html fleet.html --days 30",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--html", metavar="FILE", required=True, help="where to write the page")
    parser.add_argument(
        "--days", type=_days, default=30, help="days of history in the chart (default 30)"
    )
    parser.set_defaults(handler=run, needs=("tables",))
