"""`devicemon sync`: run the delta sync now, from this machine, with a progress display."""

from __future__ import annotations

import argparse
import time

from cli.context import Context
from cli.errors import FAILED, OK
from cli.output import Console, clean, when, wrap


class Progress:
    """One line rewritten in place on a terminal; one line per page in a pipe or a log."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._started = time.monotonic()
        self.pages = 0

    def __call__(self, pages: int, changes: int) -> None:
        self.pages = pages
        seconds = time.monotonic() - self._started
        text = f"sync: page {pages}, {changes} changes queued ({seconds:.1f} s)"
        if self._console.err_is_tty:
            print(f"\r{text}", end="", file=self._console.err, flush=True)
        else:
            self._console.note(text)

    def done(self) -> None:
        if self._console.err_is_tty and self.pages:
            print(file=self._console.err, flush=True)


async def run(ctx: Context, console: Console, args: argparse.Namespace) -> int:
    from shared.sources.sync import DeltaSync

    runtime = ctx.runtime()
    books = await ctx.books(create=True)
    progress = Progress(console)
    console.note(
        f"sync: reading {ctx.settings.graph_base_url}/devices/delta, queueing changes on "
        f"{ctx.settings.device_changes_queue}"
    )
    runner = DeltaSync(
        graph=runtime.graph_json(),
        books=books,
        sink=runtime.change_queue().with_timeout(None),
        page_size=ctx.settings.sync_page_size,
        on_page=progress,
    )
    result = await runner.run(args.reason)
    progress.done()
    if args.json:
        console.json(
            {
                "outcome": result.outcome,
                "phase": result.phase,
                "pages": result.pages,
                "changes": result.changes,
                "seconds": round(result.seconds, 3),
                "fullResync": result.full_resync,
                "error": result.error or None,
            }
        )
    if result.outcome == "completed":
        if not args.json:
            console.say(
                f"Delta sync completed ({result.phase}): {result.pages} pages, {result.changes} "
                f"changes queued on {ctx.settings.device_changes_queue} in {result.seconds:.1f} s"
                + (" (the delta token had expired: full resync)" if result.full_resync else "")
            )
            console.note(
                "The function app's processor evaluates the queued changes; "
                "`devicemon fleet` shows the result."
            )
        return OK
    if result.outcome == "busy":
        state = await books.sync_state()
        console.note(
            "sync: another run holds the lease"
            f" ({clean(state.lease_owner)} until {when(state.lease_until)}); try again later"
        )
        return FAILED
    console.note(f"sync: failed after {result.pages} pages: {clean(result.error, 500)}")
    return FAILED


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "sync",
        parents=[common],
        help="run the delta sync now, with progress",
        description=wrap(
            "Run the delta sync of /devices now, from this machine, exactly as the timer does: "
            "read Graph's delta pages, queue each changed device on the device-changes queue, "
            "save the cursor. The function app's processor then evaluates the changes. Needs "
            "Graph (Device.Read.All), Table storage and Service Bus. To have the function app "
            "run it instead, POST /api/ops/sync."
        ),
        epilog="examples:\n  devicemon sync\n  devicemon sync --reason 'after GPO change' --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reason", default="cli", help="recorded in the logs (default: cli)")
    parser.add_argument("--json", action="store_true", help="the outcome as JSON")
    parser.set_defaults(handler=run, needs=("tables", "service_bus"))
