"""One delta sync run in a process of its own, so its peak RSS is the sync's alone.

Reads the settings from the environment (like the function app) and prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

from shared.runtime import Runtime
from shared.settings import Settings


async def main() -> None:
    runtime = Runtime(Settings.from_env())
    sync = await runtime.delta_sync()
    started = time.perf_counter()
    result = await sync.run(sys.argv[1] if len(sys.argv) > 1 else "bench")
    seconds = time.perf_counter() - started
    await runtime.close()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "outcome": result.outcome,
                "phase": result.phase,
                "pages": result.pages,
                "messages": result.changes,
                "seconds": seconds,
                "peak_rss_mb": peak_kib / 1024,
                "error": result.error,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
