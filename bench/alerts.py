"""Alerts under a mass event, and the cost of the Service Bus sender pool.

Every change is a transition that publishes an alert: N devices lose eligibility at once (Graph
change notifications posted to the webhook, 50 per POST, all at once), then all regain it. The
dev host is a child process (bench/devhost_child.py) running function_app's HTTP, Service Bus and
timer triggers with host.json's concurrency (32 sessions, 16 calls; sessions released after
0.2 s idle, as in tests/test_mass_event.py), so its peak RSS is its own.

Figures: evaluations/s of the baseline (first sightings: evaluated and stored, no alert),
alerts/s of each phase, per-device change-to-alert latency (notification POSTed → alert
enqueued on the topic, the broker's enqueued time) over 2 x N samples, and the latency of 50
concurrent single-notification webhook POSTs (each answered after its queue send), for
SERVICE_BUS_SENDERS = 1, 4 and 8.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from bench.common import percentile
from bench.massevent import LOST, RESTORED, Mass, alert_key, enqueued_at, notification
from local import stack as local_stack

WEBHOOK_ROUNDS = 10
WEBHOOK_CONCURRENCY = 50


def latency_summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
        "max": max(samples),
    }


async def alert_phase(m: Mass, kind: str, props: dict[str, Any]) -> dict[str, Any]:
    await m.patch(props)
    started = time.perf_counter()
    await m.post((notification(m.tenant, i) for i in m.ids), kind)
    if not await m.until(lambda: m.settled(kind == "restored"), within=600):
        raise RuntimeError(f"{kind} phase did not converge")
    seconds = time.perf_counter() - started
    return {"alerts": len(m.ids), "seconds": seconds, "alerts_per_s": len(m.ids) / seconds}


async def webhook_burst(m: Mass) -> dict[str, float]:
    """WEBHOOK_ROUNDS rounds of WEBHOOK_CONCURRENCY concurrent one-notification POSTs."""
    samples: list[float] = []
    url = f"{m.host.api_url}/graph/notifications"
    rng = random.Random(5)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as http:

        async def one(device: str) -> None:
            started = time.perf_counter()
            answer = await http.post(url, json={"value": [notification(m.tenant, device)]})
            samples.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 202:
                raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text}")

        for _ in range(WEBHOOK_ROUNDS):
            # Known devices: the processor re-reads them and finds nothing new (no alerts).
            await asyncio.gather(*(one(rng.choice(m.ids)) for _ in range(WEBHOOK_CONCURRENCY)))
    return latency_summary(samples)


async def one_run(stack: local_stack.Stack, devices: int, senders: int) -> dict[str, Any]:
    async with Mass(stack, devices, senders=senders) as m:
        baseline_s = await m.baseline()
        lost = await alert_phase(m, "lost", LOST)
        restored = await alert_phase(m, "restored", RESTORED)
        messages = await m.take_alerts()
        latencies = [
            (enqueued_at(msg) - m.sent_at[alert_key(msg)]) * 1000
            for msg in messages
            if alert_key(msg) in m.sent_at
        ]
        webhook = await webhook_burst(m)
    peak = m.host_peak_rss_mb
    return {
        "devices": devices,
        "senders": senders,
        "evaluations_per_s": devices / baseline_s,
        "lost": lost,
        "restored": restored,
        "alerts": len(messages),
        "alerts_per_s": 2 * devices / (lost["seconds"] + restored["seconds"]),
        "latency_ms": latency_summary(latencies),
        "webhook_50_ms": webhook,
        "devhost_peak_rss_mb": peak,
    }


async def run_async(
    stack: local_stack.Stack, devices: int, pool_devices: int, pool_sizes: tuple[int, ...]
) -> dict[str, Any]:
    main = await one_run(stack, devices, 4)
    pool = [await one_run(stack, pool_devices, size) for size in pool_sizes]
    return {"mass": main, "sender_pool": pool}


def run(
    stack: local_stack.Stack,
    devices: int = 600,
    pool_devices: int = 300,
    pool_sizes: tuple[int, ...] = (1, 4, 8),
) -> dict[str, Any]:
    return asyncio.run(run_async(stack, devices, pool_devices, pool_sizes))
