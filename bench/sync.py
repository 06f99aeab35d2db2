"""Delta sync over a large simulated tenant: a full baseline, then an incremental run after a
handful of changes. Each run is a child process (bench/sync_child.py) so its peak RSS is its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from bench.common import bench_settings, settings_env
from local import stack as local_stack
from local.graphsim.admin import SimAdmin


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
        baseline["graph_requests"] = sim.reset_requests()["httpRequests"]
        sim.mutate(changes, seed=12, delete_fraction=0.1, patch=None, notify=False)
        incremental = _child(env, "bench incremental")
        incremental["graph_requests"] = sim.reset_requests()["httpRequests"]
    return {
        "devices": devices,
        "changes": changes,
        "baseline": baseline,
        "incremental": incremental,
    }
