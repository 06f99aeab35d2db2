"""``python -m local.broker --port PORT [--config FILE.json] [--journal FILE.sqlite]``."""

from __future__ import annotations

import argparse
import logging
import sys

from . import run
from .config import ConfigError, load_config
from .journal import JournalError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.broker", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--config", help="JSON entity config (default: built-in config)")
    parser.add_argument(
        "--journal",
        help="SQLite file (WAL) that acknowledged state is written to before it is "
        "acknowledged and replayed from on start (default: memory only)",
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="broker %(levelname)s %(message)s")
    try:
        config = load_config(args.config)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"invalid broker config: {exc}", file=sys.stderr)
        return 2
    try:
        run(args.port, config, host=args.host, journal=args.journal)
    except JournalError as exc:
        print(f"broker journal: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
