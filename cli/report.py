"""`devicemon report --html FILE`: the fleet on one self-contained page (shared/views/report_html.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError

from cli.context import Context
from cli.errors import OK, USAGE, CliError
from cli.fleet import ineligible_rows, read_states
from cli.output import Console, wrap
from shared.core.records import HistoryRow
from shared.settings import Settings
from shared.views.fleet import daily_series, summarize, window_start
from shared.views.report_html import ReportData, render


def write_atomically(path: Path, text: str) -> None:
    """A half-written report never replaces a good one."""
    folder = path.resolve().parent
    if not folder.is_dir():
        raise CliError(f"folder {folder} does not exist", USAGE)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def source_of(settings: Settings) -> str:
    """Where the data came from, without secrets: the table endpoint's host and the prefix."""
    where = settings.tables_endpoint or ""
    if not where and settings.tables_connection_string:
        parts = dict(
            p.split("=", 1) for p in settings.tables_connection_string.split(";") if "=" in p
        )
        where = parts.get("TableEndpoint") or parts.get("AccountName", "")
    prefix = f", table prefix {settings.table_prefix}" if settings.table_prefix else ""
    return f"{where}{prefix}" if where else prefix.lstrip(", ")


async def run(ctx: Context, console: Console, args: argparse.Namespace) -> int:
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
        ineligible=ineligible_rows(states),
        series=daily_series(records, window, args.days, now.date()),
        generated_at=now,
        source=source_of(ctx.settings),
    )
    await asyncio.to_thread(write_atomically, Path(args.html), render(data))
    o = data.summary.overall
    console.say(
        f"Wrote {args.html}: {o.devices} devices, {o.eligible} eligible, {o.ineligible} "
        f"ineligible; {args.days} days of history ({len(window)} history rows)"
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
            "per day from DeviceHistory, and the ineligible devices with their reasons in words."
        ),
        epilog="example:\n  devicemon report --html fleet.html --days 30",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--html", metavar="FILE", required=True, help="where to write the page")
    parser.add_argument(
        "--days", type=_days, default=30, help="days of history in the chart (default 30)"
    )
    parser.set_defaults(handler=run, needs=("tables",))
