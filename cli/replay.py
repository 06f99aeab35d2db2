"""`devicemon replay FILE`: push a saved notification payload through the webhook path.

The request goes to handlers.webhook.notifications itself, so the same size limit, validation,
clientState and tenant checks and enqueueing run as for Graph's POST.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func

from cli.context import Context
from cli.errors import FAILED, OK, UNREACHABLE, USAGE, CliError, classify
from cli.output import Console, clean, wrap
from shared.sources.notifications import MalformedNotification, parse_collection, triage

WEBHOOK_URL = "http://localhost/api/graph/notifications"
PROBE_SECONDS = 10.0


def request_for(body: bytes) -> func.HttpRequest:
    return func.HttpRequest(
        "POST",
        WEBHOOK_URL,
        headers={"content-type": "application/json", "content-length": str(len(body))},
        params={},
        body=body,
    )


def outcome(body: bytes, ctx: Context) -> tuple[int, Counter[str], list[str]]:
    """What the webhook's triage made of the payload: accepted count, drops, device ids."""
    try:
        items = parse_collection(body)
    except MalformedNotification:
        return 0, Counter(), []
    s = ctx.settings
    result = triage(
        items,
        client_state=s.client_state,
        allowed_tenants=s.allowed_tenant_ids,
        received_at=datetime.now(UTC).isoformat(),
    )
    return len(result.changes), result.dropped, [c.device_id for c in result.changes]


async def read_payload(path: str) -> bytes:
    """The saved POST body, which must at least be JSON (the table of exit codes: 2)."""
    try:
        body = await asyncio.to_thread(Path(path).read_bytes)
    except FileNotFoundError:
        raise CliError(f"{path} does not exist", USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc}", USAGE) from None
    try:
        json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise CliError(f"{path} is not JSON: {exc}", USAGE) from None
    return body


async def why_not_queued(ctx: Context) -> CliError:
    """The webhook answers 503 for any failure to queue, and logs only the exception's name:
    attach to the queue ourselves to tell an unreachable Service Bus (5) from the rest (1)."""
    queue = ctx.settings.device_changes_queue
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            async with ctx.runtime().service_bus().get_queue_sender(queue):
                pass
    except TimeoutError:
        return CliError(
            f"cannot reach Service Bus: no answer within {PROBE_SECONDS:.0f} s, so nothing was "
            "queued (HTTP 503)",
            UNREACHABLE,
        )
    except Exception as exc:
        known = classify(exc, "Service Bus")
        return CliError(f"{known}; nothing was queued (HTTP 503)", known.code)
    return CliError(
        f"the webhook could not queue the notifications (HTTP 503), although {queue} accepts "
        "a connection now: try again",
        FAILED,
    )


async def run(ctx: Context, console: Console, args: argparse.Namespace) -> int:
    from handlers import webhook

    body = await read_payload(args.file)
    response = await webhook.notifications(request_for(body), ctx.runtime())
    status = response.status_code
    text = response.get_body().decode("utf-8", errors="replace")
    if status == 503:
        raise await why_not_queued(ctx)
    console.say(f"HTTP {status}" + (f" {clean(text, 500)}" if text else ""))
    if not 200 <= status < 300:
        console.note(f"replay: the webhook refused the payload (HTTP {status})")
        return FAILED
    accepted, dropped, devices = outcome(body, ctx)
    for device in devices:
        console.say(f"queued a change for device {clean(device)}")
    for reason, count in sorted(dropped.items()):
        console.say(f"dropped {count}: {reason}")
    if not accepted:
        console.note("replay: nothing was queued: every notification was dropped")
        return FAILED
    return OK


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "replay",
        parents=[common],
        help="push a saved notification payload through the webhook path",
        description=wrap(
            'Send a saved Graph change-notification POST body ({"value": [...]}) through the '
            "webhook's handler in-process: the same validation, clientState and tenant checks, "
            "and queueing on device-changes. Prints the HTTP answer, what was queued and what "
            "was dropped and why. Exits 1 when the webhook answers non-2xx or drops everything, 2 "
            "when FILE is not JSON, 5 when Service Bus cannot be reached."
        ),
        epilog="example:\n  devicemon replay saved-notification.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="the notification POST body (JSON)")
    parser.set_defaults(handler=run, needs=("service_bus",), client_state_for={"*"})
