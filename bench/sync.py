"""Delta sync over a large simulated tenant: a full baseline (the delta pages and the Intune list,
every device queued on `device-changes` with its observation), then an incremental run after a
handful of changes, then the tenant left idle (bench/idle_cost.py). The baseline and incremental
runs are child processes (bench/sync_child.py) so their peak RSS is their own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

from bench import idle_cost
from bench.common import bench_settings, settings_env
from local import stack as local_stack
from local.graphsim.admin import SimAdmin
from shared.runtime import Runtime
from shared.settings import Settings


def _child(env: dict[str, str], reason: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.sync_child", reason],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(stack: local_stack.Stack, devices: int = 100_000, changes: int = 100) -> dict[str, Any]:
    tenant = str(uuid.uuid4())
    settings = bench_settings(stack, tenant)
    env = settings_env(settings)
    with SimAdmin(stack.graph_root, tenant) as sim:
        sim.ensure()
        sim.generate(devices, seed=11)
        sim.reset_requests()
        baseline = _child(env, "bench baseline")
        counts = sim.reset_requests()
        baseline["graph_requests"] = counts["httpRequests"]
        baseline["routes"] = counts["routes"]
        baseline["requests_per_device"] = counts["httpRequests"] / devices
        sim.mutate(changes, seed=12, delete_fraction=0.1, patch=None, notify=False)
        incremental = _child(env, "bench incremental")
        incremental["graph_requests"] = sim.reset_requests()["httpRequests"]
        idle = asyncio.run(_idle(settings, sim))
    return {
        "devices": devices,
        "changes": changes,
        "baseline": baseline,
        "incremental": incremental,
        "idle": idle,
    }


async def _idle(settings: Settings, sim: SimAdmin) -> dict[str, Any]:
    runtime = Runtime(settings)
    try:
        return await idle_cost.measure(runtime, sim)
    finally:
        await runtime.close()
