"""`devicemon sync`: run the delta sync now, from this machine, with a progress display."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from cli.context import Context
from cli.errors import FAILED, OK, CliError, classify
from cli.output import Console, clean, plural, when, wrap
from shared.adapters.bookkeeping import SyncState
from shared.adapters.graph import GraphJson
from shared.core.changes import DeviceChange
from shared.sources.sync import ChangeSink


class Progress:
    """One line rewritten in place on a terminal; one line per page in a pipe or a log."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._started = time.monotonic()
        self.pages = 0

    def __call__(self, pages: int, changes: int) -> None:
        self.pages = pages
        seconds = time.monotonic() - self._started
        text = f"sync: page {pages}, {plural(changes, 'change')} queued ({seconds:.1f} s)"
        if self._console.err_is_tty:
            print(f"\r{text}", end="", file=self._console.err, flush=True)
        else:
            self._console.note(text)

    def done(self) -> None:
        if self._console.err_is_tty and self.pages:
            print(file=self._console.err, flush=True)


# The delta sync keeps only the text of what failed it; these remember the exception itself, so
# that an unreachable Graph or Service Bus gets its exit code (5) rather than "failed" (1).
class WatchedGraph(GraphJson):
    failure: BaseException | None = None

    async def get(self, path_or_url: str, headers: dict[str, str] | None = None) -> Any:
        try:
            return await super().get(path_or_url, headers=headers)
        except Exception as exc:
            self.failure = exc
            raise


class WatchedSink:
    def __init__(self, inner: ChangeSink) -> None:
        self._inner = inner
        self.failure: BaseException | None = None

    async def send(self, changes: Iterable[DeviceChange]) -> int:
        try:
            return await self._inner.send(changes)
        except Exception as exc:
            self.failure = exc
            raise


def reading(state: SyncState, graph_base_url: str) -> str:
    """Where the run starts: the saved link when there is one (GRAPH_BASE_URL is not read for
    it), else a new baseline. The link's query (the delta token) is left out."""
    if not state.link:
        return f"baseline of every device from {graph_base_url}/devices/delta"
    parts = urlsplit(state.link)
    where = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else state.link
    what = "the interrupted baseline" if state.phase == "baseline" else "the saved delta link"
    since = f", last completed {when(state.last_success_at)}" if state.last_success_at else ""
    return f"resuming from {what} at {where}{since}"


async def run(ctx: Context, console: Console, args: argparse.Namespace) -> int:
    from shared.retry import RetryPolicy
    from shared.sources.sync import DeltaSync

    settings = ctx.settings
    runtime = ctx.runtime()
    books = await ctx.books()
    progress = Progress(console)
    console.note(
        f"sync: {reading(await books.sync_state(), settings.graph_base_url)}; queueing "
        f"changes on {settings.device_changes_queue}"
    )
    graph = WatchedGraph(
        runtime.graph_json().client, RetryPolicy(attempts=settings.graph_max_retries + 1)
    )
    sink = WatchedSink(runtime.change_queue().with_timeout(None))
    runner = DeltaSync(
        graph=graph,
        books=books,
        sink=sink,
        page_size=settings.sync_page_size,
        on_page=progress,
        intune_enabled=settings.intune_enabled,
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
                f"Delta sync completed ({result.phase}): {plural(result.pages, 'page')}, "
                f"{plural(result.changes, 'change')} queued on {settings.device_changes_queue} "
                f"in {result.seconds:.1f} s"
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
    after = f"after {plural(result.pages, 'page')}; the next run resumes from the saved cursor"
    for failure, what in ((graph.failure, "Microsoft Graph"), (sink.failure, "Service Bus")):
        if failure is not None:
            known = classify(failure, what)
            if known.code != FAILED:
                raise CliError(f"{known} ({after})", known.code)
    console.note(f"sync: failed {after}: {clean(result.error, 500)}")
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
