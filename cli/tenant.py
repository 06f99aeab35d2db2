"""`devicemon tenant`: the tenant's Intune compliance settings devicemon evaluates with."""

from __future__ import annotations

import argparse
from typing import Any

from cli.context import Context
from cli.errors import OK
from cli.output import Console, clean, pairs, when, wrap
from shared.adapters.tenant_settings import StoredSettings, TenantSettingsBook
from shared.core.tenant_settings import (
    DEFAULT,
    KEPT,
    TenantSettings,
    checkin_warning_lead,
    to_json,
)


def _days(delta_days: float) -> str:
    whole = int(delta_days)
    if whole == delta_days:
        return f"{whole} day" + ("" if whole == 1 else "s")
    return f"{delta_days * 24:g} hours"


def source_words(settings: TenantSettings) -> str:
    if settings.status == DEFAULT:
        return "Intune's defaults (never read from Graph)"
    if settings.status == KEPT:
        return f"kept from the read of {when(settings.read_at)} (the last read failed)"
    return f"read from Graph {when(settings.read_at)}"


def describe(stored: StoredSettings, warning_days: int) -> list[tuple[str, object]]:
    s = stored.settings
    warn_after = s.checkin_threshold_days - (
        checkin_warning_lead(s.checkin_threshold_days, warning_days).total_seconds() / 86_400
    )
    rows: list[tuple[str, object]] = [
        ("compliance status validity period", _days(s.checkin_threshold_days)),
        (
            "devices with no compliance policy",
            "marked not compliant (secureByDefault true)"
            if s.secure_by_default
            else "marked compliant (secureByDefault false, Intune's default)",
        ),
        ("INTUNE_CHECKIN_STALE warns after", f"{_days(warn_after)} without a check-in"),
        ("values", source_words(s)),
        ("last attempt", when(stored.checked_at) if stored.checked_at else "never"),
    ]
    if s.note:
        rows.append(("why", clean(s.note, 500)))
    return rows


async def run(ctx: Context, console: Console, args: argparse.Namespace) -> int:
    await ctx.books()  # names a missing table (exit 4) before the row is read
    book = TenantSettingsBook(ctx.tables(), ctx.settings.sync_table)
    if args.refresh:
        from datetime import UTC, datetime

        from shared.adapters.tenant_settings import refresh

        await refresh(ctx.runtime().graph_json(), book, datetime.now(UTC))
    stored = await book.load()
    if args.json:
        body: dict[str, Any] = to_json(stored.settings)
        body["checkedAt"] = stored.checked_at.isoformat() if stored.checked_at else None
        console.json(body)
        return OK
    console.say(pairs(describe(stored, ctx.settings.intune_checkin_warn_days), indent=""))
    return OK


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "tenant",
        parents=[common],
        help="the tenant's Intune compliance settings devicemon uses",
        description=wrap(
            "Show the tenant's Intune compliance settings as devicemon last read them "
            "(GET deviceManagement/settings, daily by the refresh_tenant_settings timer): the "
            "compliance status validity period, which INTUNE_CHECKIN_STALE warns against, and "
            "how devices with no compliance policy are marked. Says when they were read, and "
            "why they are Intune's defaults or kept values when Graph could not be read. "
            "--refresh reads Graph now (DeviceManagementConfiguration.Read.All)."
        ),
        epilog="examples:\n  devicemon tenant\n  devicemon tenant --refresh --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--refresh", action="store_true", help="read Graph now and store it")
    parser.add_argument("--json", action="store_true", help="the settings as JSON")
    parser.set_defaults(handler=run, needs=("tables",))
