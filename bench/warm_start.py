"""The first webhook POST after a worker starts: function_app in a fresh dev host process, given a
few seconds after it listens (an instance started ahead of traffic), then one notification POST
answered after the queue send, then a second. Without a warm-up the first POST opens the Service
Bus sender itself. Run: `.venv/bin/python -m bench.warm_start --rounds 5`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx

from bench.common import bench_settings, settings_env
from bench.webhook import payload
from local import stack as local_stack
from local.ports import free_port, wait_for_port


def one_start(settings_environ: dict[str, str], tenant: str, idle_seconds: float) -> list[float]:
    port = free_port()
    host = subprocess.Popen(
        [sys.executable, "-m", "local.devhost", "--only", "http", "--port", str(port), "--quiet"],
        env={**os.environ, **settings_environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60)
        time.sleep(idle_seconds)
        url = f"http://127.0.0.1:{port}/api/graph/notifications"
        samples = []
        with httpx.Client(timeout=30) as client:
            for _ in range(2):
                started = time.perf_counter()
                response = client.post(
                    url,
                    content=payload(1, tenant),
                    headers={"content-type": "application/json"},
                )
                samples.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 202, response.text
        return samples
    finally:
        host.terminate()
        host.wait(timeout=15)


def run(stack: local_stack.Stack, rounds: int, idle_seconds: float) -> dict[str, Any]:
    tenant = str(uuid.uuid4())
    environ = settings_env(bench_settings(stack, tenant))
    starts = [one_start(environ, tenant, idle_seconds) for _ in range(rounds)]
    first = [s[0] for s in starts]
    second = [s[1] for s in starts]
    return {
        "rounds": rounds,
        "idle_seconds": idle_seconds,
        "first_post_ms": {"median": statistics.median(first), "all": [round(x, 1) for x in first]},
        "second_post_ms": {
            "median": statistics.median(second),
            "all": [round(x, 1) for x in second],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.warm_start")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    args = parser.parse_args()
    with local_stack.start() as stack:
        print(json.dumps(run(stack, args.rounds, args.idle_seconds), indent=2))


if __name__ == "__main__":
    main()
