"""`devicemon subscription show|ensure|delete`: the Graph change-notification subscription."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from cli.context import Context
from cli.errors import CONFIG, FAILED, OK, CliError
from cli.output import Console, clean, pairs, when, wrap
from shared.adapters.bookkeeping import SubscriptionRecord
from shared.views.device_json import iso


def record_json(record: SubscriptionRecord) -> dict[str, Any]:
    return {
        "status": record.status,
        "id": record.subscription_id or None,
        "expiresAt": iso(record.expires_at),
        "createdAt": iso(record.created_at),
        "lastRenewedAt": iso(record.last_renewed_at),
        "lastCheckedAt": iso(record.last_checked_at),
        "lastError": record.last_error or None,
        "lastErrorAt": iso(record.last_error_at),
        "notificationUrl": record.notification_url or None,
    }


def expiry(record: SubscriptionRecord, now: datetime) -> str:
    if record.expires_at is None:
        return "-"
    left = record.expires_at - now
    if left.total_seconds() <= 0:
        return f"{when(record.expires_at)} (EXPIRED)"
    hours = int(left.total_seconds() // 3600)
    return f"{when(record.expires_at)} (in {hours // 24} d {hours % 24} h)"


def render(record: SubscriptionRecord, console: Console, now: datetime) -> list[str]:
    status = record.status
    shown = console.good(status) if status == "active" else console.bad(status)
    lines = [console.bold("Graph subscription to /devices: ") + shown]
    lines.append(
        pairs(
            [
                ("id", record.subscription_id or "-"),
                ("expires", expiry(record, now)),
                ("created", when(record.created_at)),
                ("last renewed", when(record.last_renewed_at)),
                ("last checked", when(record.last_checked_at)),
                ("notification URL", record.notification_url or "-"),
                ("last error", clean(record.last_error, 300) or "-"),
            ]
        )
    )
    if status != "active":
        lines.append(
            "Change notifications are off; the delta sync still sees every change, every "
            "SYNC_SCHEDULE (docs/architecture.md)."
        )
    return lines


async def run(ctx: Context, console: Console, args: argparse.Namespace) -> int:
    action = args.action
    if action == "show":
        record = await (await ctx.books()).subscription()
        ok = True
    else:
        from shared.sources.subscription import SubscriptionKeeper

        if action == "ensure" and not ctx.settings.notification_url:
            raise CliError(
                "NOTIFICATION_URL is not set: Graph needs the public URL of "
                "/api/graph/notifications to create a subscription",
                CONFIG,
            )
        keeper = SubscriptionKeeper(
            graph=ctx.runtime().graph_json(),
            books=await ctx.books(),
            settings=ctx.settings,
        )
        if action == "ensure":
            record = await keeper.ensure()
            ok = record.status == "active"
        else:
            record = await keeper.delete()
            ok = record.status == "absent"
    if args.json:
        console.json(record_json(record))
    else:
        for line in render(record, console, datetime.now(UTC)):
            console.say(line)
    return OK if ok else FAILED


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "subscription",
        parents=[common],
        help="show, ensure (create/renew) or delete the Graph subscription",
        description=wrap(
            "show: the subscription's record in DevicemonSync (status, expiry, Graph's last "
            "error). ensure: create it, or renew it when it expires soon, like the upkeep timer "
            "(needs NOTIFICATION_URL and GRAPH_CLIENT_STATE; Graph runs the validation handshake "
            "against the function app). delete: remove it from Graph. ensure exits 1 unless the "
            "subscription ends up active, delete unless it ends up absent."
        ),
        epilog="examples:\n  devicemon subscription show\n  devicemon subscription ensure --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["show", "ensure", "delete"])
    parser.add_argument("--json", action="store_true", help="the record as JSON")
    parser.set_defaults(handler=run, needs=("tables",), client_state_for={"ensure"})
