"""`devicemon dlq show|redrive`: what sits in devicemon's dead-letter queues, and sending it back.

Rights (docs/cli.md): `show` peeks, which needs Azure Service Bus Data Receiver on the queue and
the topic's subscriptions; `redrive` also sends, which needs Data Sender on the queue or topic.
"""

from __future__ import annotations

import argparse

from cli.context import Context
from cli.errors import FAILED, OK, USAGE, CliError
from cli.output import Console, clean, plural, when, wrap


async def show(ctx: Context, console: Console, args: argparse.Namespace) -> int:
    from shared.adapters.dead_letters import entities, find_entity, peek

    settings = ctx.settings
    try:
        chosen = [find_entity(settings, args.entity)] if args.entity else entities(settings)
    except ValueError as exc:
        raise CliError(str(exc), USAGE) from None
    client = ctx.runtime().service_bus()
    report: list[dict[str, object]] = []
    total = 0
    for entity in chosen:
        letters = await peek(client, entity, args.limit)
        total += len(letters)
        report += [letter.summary() for letter in letters]
        if not args.json:
            more = "+" if len(letters) >= args.limit else ""
            console.say(console.bold(f"{entity.name}: {len(letters)}{more} dead-lettered"))
            for letter in letters:
                enqueued = when(letter.enqueued_at) if letter.enqueued_at else "?"
                console.say(
                    f"  {clean(letter.message_id or '?', 80)}  {enqueued}"
                    f"  deliveries {letter.delivery_count}"
                    f"  session {clean(letter.session_id or '-', 40)}"
                )
                console.say(
                    f"    {clean(letter.reason or 'no reason', 80)}"
                    + (f": {clean(letter.description, 200)}" if letter.description else "")
                )
    if args.json:
        console.json(report)
    return OK if total == 0 or not args.exit_code else FAILED


async def redrive(ctx: Context, console: Console, args: argparse.Namespace) -> int:
    from shared.adapters.dead_letters import find_entity
    from shared.adapters.dead_letters import redrive as move

    try:
        entity = find_entity(ctx.settings, args.entity)
    except ValueError as exc:
        raise CliError(str(exc), USAGE) from None
    wanted = frozenset(args.message_id) if args.message_id else None
    moved = await move(ctx.runtime().service_bus(), entity, limit=args.limit, message_ids=wanted)
    for letter in moved:
        console.say(f"redriven {clean(letter.message_id or '?', 80)} to {entity.send_to}")
    console.note(f"dlq redrive: {plural(len(moved), 'message')} sent back to {entity.send_to}")
    if wanted is not None and len(moved) < len(wanted):
        found = {letter.message_id for letter in moved}
        missing = ", ".join(sorted(m for m in wanted if m not in found))
        console.note(f"dlq redrive: not found in {entity.name}'s dead letters: {clean(missing)}")
        return FAILED
    return OK


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "dlq",
        parents=[common],
        help="list or redrive dead-lettered messages",
        description=wrap(
            "Messages that failed on every delivery end in a dead-letter queue, where nothing "
            "retries them and /api/health turns unhealthy. `show` lists them (peeking: nothing "
            "is removed); `redrive` sends them back to their queue or topic with a new message "
            "id and removes them from the dead-letter queue. Fix the cause first (the reason "
            "is in each message and in the logs)."
        ),
        epilog=(
            "entities: the device-changes queue, and the alert topic's subscriptions 'teams' "
            "and 'remediation'\n"
            "examples:\n  devicemon dlq show\n  devicemon dlq redrive device-changes\n"
            "  devicemon dlq redrive teams --message-id 3f2a..."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show_parser = actions.add_parser(
        "show", parents=[common], help="list dead-lettered messages (nothing is removed)"
    )
    show_parser.add_argument(
        "entity", nargs="?", help="one queue or subscription name (default: all)"
    )
    show_parser.add_argument("--limit", type=int, default=100, help="per entity (default 100)")
    show_parser.add_argument("--json", action="store_true", help="JSON instead of text")
    show_parser.add_argument(
        "--exit-code", action="store_true", help="exit 1 when anything is dead-lettered"
    )
    show_parser.set_defaults(handler=show, needs=("service_bus",))
    redrive_parser = actions.add_parser(
        "redrive", parents=[common], help="send dead-lettered messages back"
    )
    redrive_parser.add_argument(
        "entity", help="the queue (device-changes) or a subscription (teams, remediation)"
    )
    redrive_parser.add_argument(
        "--message-id", action="append", help="only this message (repeatable)"
    )
    redrive_parser.add_argument("--limit", type=int, default=1000, help="at most (default 1000)")
    redrive_parser.set_defaults(handler=redrive, needs=("service_bus",))
