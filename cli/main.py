"""The `devicemon` command: argument parsing, settings, and exit codes (docs/cli.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence

from cli import device, dlq, evaluate, fleet, policies, replay, report, subscription, sync, tenant
from cli.context import (
    Context,
    check_service_bus_connection,
    check_tables_connection,
    load_settings,
    merged_env,
    require_service_bus,
    require_tables,
)
from cli.errors import EXIT_CODES, OK, USAGE, CliError, classify
from cli.output import Console, OutputClosed

DESCRIPTION = """\
devicemon: what happened to a device's Conditional Access eligibility, and why.

Reads the same Table storage as the function app (DeviceState, DeviceHistory, DevicemonSync);
sync, subscription and replay also use Service Bus and Microsoft Graph. It is configured by the
function app's own settings: environment variables, or --settings local.settings.json (an
exported variable wins over the file). Against Azure it signs in like the Azure SDKs do
(az login, or a managed identity): no keys needed."""

SETTINGS_HELP = """\
settings (environment variables, or "Values" of --settings FILE):
  TablesConnection__tableServiceUri   Table storage endpoint (Azure, identity-based), or
  TablesConnection                    a connection string (local stack)
  TABLE_PREFIX                        table name prefix, if the function app uses one
  ServiceBusConnection__fullyQualifiedNamespace, or ServiceBusConnection   (sync, replay)
  GRAPH_BASE_URL, AZURE_CLIENT_ID     Graph endpoint and identity          (sync, subscription)
  GRAPH_CLIENT_STATE                  the webhook's secret       (replay, subscription ensure)
  NOTIFICATION_URL                    public webhook URL                (subscription ensure)
  CA_POLICY                           default policy for evaluate"""


def _epilog() -> str:
    codes = "\n".join(f"  {code:>2}  {text}" for code, text in EXIT_CODES.items())
    return (
        f"{SETTINGS_HELP}\n\nexit codes:\n{codes}\n\n"
        "examples:\n"
        "  devicemon device LAPTOP-0042          # why is it blocked, since when\n"
        "  devicemon fleet --ineligible --csv    # who is blocked, for a spreadsheet\n"
        "  devicemon evaluate laptop.json        # evaluate a Graph device JSON offline\n"
        "  devicemon report --html fleet.html    # a page to share\n\n"
        "`devicemon COMMAND --help` explains each command. Full guide: docs/cli.md"
    )


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors that also say where to find help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\nTry `{self.prog} --help`.\n")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--settings",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="read settings from a local.settings.json ('Values'); the environment wins",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also print devicemon's log events to stderr",
    )
    parser = Parser(
        prog="devicemon",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for module in (
        device,
        fleet,
        evaluate,
        policies,
        sync,
        subscription,
        replay,
        report,
        dlq,
        tenant,
    ):
        module.add_parser(commands, common)
    return parser


@contextlib.contextmanager
def logging_to_stderr(verbose: bool) -> Iterator[None]:
    """Log events stay off the terminal unless --verbose (a handler also keeps Python's
    last-resort handler from printing warnings between our lines)."""
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.NullHandler()
    names = ("devicemon", "azure", "uamqp", "httpx", "msgraph", "kiota_http")
    ours = logging.getLogger("devicemon")
    level = ours.level
    for name in names:
        logging.getLogger(name).addHandler(handler)
    if verbose:
        ours.setLevel(logging.INFO)
    try:
        yield
    finally:
        ours.setLevel(level)
        for name in names:
            logging.getLogger(name).removeHandler(handler)


def _needs_client_state(args: argparse.Namespace) -> bool:
    wanted: set[str] = getattr(args, "client_state_for", set())
    return "*" in wanted or getattr(args, "action", None) in wanted


def _service_named(args: argparse.Namespace) -> str:
    # Of the SDKs the CLI uses, only Tables raises azure-core's transport and HTTP errors
    # (Service Bus and Graph have exceptions of their own, which classify() names).
    needs = getattr(args, "needs", ())
    return "Table storage" if "tables" in needs else "a service (Service Bus, Graph)"


async def _dispatch(args: argparse.Namespace, env: Mapping[str, str], console: Console) -> int:
    full_env = merged_env(env, getattr(args, "settings", None))
    if getattr(args, "offline", None) is not None:
        return int(await args.offline(console, full_env, args))
    settings = load_settings(full_env, client_state=_needs_client_state(args))
    if "tables" in args.needs:
        require_tables(settings)
        check_tables_connection(settings)
    if "service_bus" in args.needs:
        require_service_bus(settings)
        check_service_bus_connection(settings)
    ctx = Context(settings)
    try:
        return int(await args.handler(ctx, console, args))
    except (CliError, OutputClosed):
        raise
    except Exception as exc:
        raise classify(exc, _service_named(args), key=ctx.tables_key) from exc
    finally:
        with contextlib.suppress(Exception):
            await ctx.close()


async def run(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """`devicemon` inside a running event loop; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE
    env = os.environ if env is None else env
    console = Console(env)
    with logging_to_stderr(bool(getattr(args, "verbose", False))):
        try:
            return await _dispatch(args, env, console)
        except OutputClosed:
            console.silence()
            return OK
        except CliError as exc:
            console.note(f"devicemon {args.command}: error: {exc}")
            return exc.code
        except Exception as exc:
            failure = classify(exc, _service_named(args))
            console.note(f"devicemon {args.command}: error: {failure}")
            return failure.code


def main(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None) -> int:
    """The console script: `devicemon ...`."""
    try:
        return asyncio.run(run(argv, env))
    except KeyboardInterrupt:
        print("devicemon: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
