"""`python -m local.devhost` that writes its own peak RSS when it exits.

Usage: `python -m bench.devhost_child RSS_FILE [devhost options]`. The peak is read by the
process itself (`getrusage(RUSAGE_SELF)`, KiB on Linux), so it is the dev host's alone, not that
of the runner or of the stack; a SIGKILLed host writes nothing.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

from local.devhost.cli import main as devhost_main


def main() -> int:
    rss_file = Path(sys.argv[1])
    try:
        return devhost_main(sys.argv[2:])
    finally:
        rss_file.write_text(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


if __name__ == "__main__":
    sys.exit(main())
