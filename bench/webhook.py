"""Webhook latency: POSTs of 1, 100 and 1000 notifications, each answered only after the
notifications are on the `device-changes` queue. The dev host runs in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx

from bench.common import CLIENT_STATE, bench_settings, settings_env, summary
from local import stack as local_stack
from local.ports import free_port, wait_for_port

ROUNDS = {1: 200, 100: 100, 1000: 30}


def payload(count: int, tenant: str) -> bytes:
    items = []
    for _ in range(count):
        device = str(uuid.uuid4())
        items.append(
            {
                "id": str(uuid.uuid4()),
                "subscriptionId": "bench",
                "clientState": CLIENT_STATE,
                "changeType": "updated",
                "resource": f"Devices/{device}",
                "tenantId": tenant,
                "resourceData": {"@odata.type": "#Microsoft.Graph.Device", "id": device},
            }
        )
    return json.dumps({"value": items}).encode()


def run(stack: local_stack.Stack) -> dict[str, Any]:
    tenant = str(uuid.uuid4())
    settings = bench_settings(stack, tenant)
    port = free_port()
    env = {**os.environ, **settings_env(settings)}
    host = subprocess.Popen(
        [sys.executable, "-m", "local.devhost", "--only", "http", "--port", str(port), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60)
        url = f"http://127.0.0.1:{port}/api/graph/notifications"
        results: dict[str, Any] = {}
        with httpx.Client(timeout=30) as client:
            client.post(url, content=payload(1, tenant))  # warm: first send opens the AMQP link
            for size, rounds in ROUNDS.items():
                samples = []
                for _ in range(rounds):
                    body = payload(size, tenant)
                    started = time.perf_counter()
                    response = client.post(
                        url, content=body, headers={"content-type": "application/json"}
                    )
                    samples.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 202, response.text
                results[str(size)] = summary(samples)
        return results
    finally:
        host.terminate()
        host.wait(timeout=15)
