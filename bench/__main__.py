"""`make bench`: every benchmark in one run; prints a report for docs/performance.md and writes
the raw figures to .artifacts/bench.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import alerts, deadlines, detection, intune_watch, processor, sync, webhook
from bench.common import machine
from local import stack as local_stack


def print_alerts(result: dict[str, Any]) -> None:
    mass = result["mass"]
    lat = mass["latency_ms"]
    print(f"alerts under a mass event, {mass['devices']} devices lost then restored:")
    print(
        f"  evaluations/s (first sightings) {mass['evaluations_per_s']:.1f},"
        f" alerts/s {mass['alerts_per_s']:.1f} ({mass['alerts']} alerts),"
        f" dev host peak RSS {mass['devhost_peak_rss_mb']:.0f} MB"
    )
    print(
        f"  change-to-alert ms: p50 {lat['p50']:.0f}  p95 {lat['p95']:.0f}"
        f"  p99 {lat['p99']:.0f}  max {lat['max']:.0f}  (n={lat['n']})"
    )
    print("sender pool (SERVICE_BUS_SENDERS):")
    for r in result["sender_pool"]:
        w = r["webhook_50_ms"]
        print(
            f"  {r['senders']}: alerts/s {r['alerts_per_s']:.1f},"
            f" change-to-alert p50 {r['latency_ms']['p50']:.0f} p99 {r['latency_ms']['p99']:.0f} ms;"
            f" 50 concurrent POSTs p50 {w['p50']:.1f} p99 {w['p99']:.1f} ms (n={w['n']});"
            f" peak RSS {r['devhost_peak_rss_mb']:.0f} MB"
        )


def baseline_child(devices: int) -> dict[str, Any]:
    """bench/baseline.py in a process of its own (with its own stack, in child processes), so
    the peak RSS it reports is that of the sync and the pipeline alone."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.baseline", "--devices", str(devices)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def print_baseline(r: dict[str, Any]) -> None:
    b = r["baseline"]
    print(
        f"baseline of {r['devices']} devices, every device evaluated and stored:"
        f" {b['requests']} Graph requests ({b['per_device']:.4f} per device), {b['seconds']:.1f} s,"
        f" peak RSS {r['peak_rss_mb']:.0f} MB ({b['routes']})"
    )
    idle = r["idle"]
    print(
        f"  idle round {idle['requests'] / idle['rounds']:.0f} request(s);"
        f" change by delta {r['change_by_delta']['requests']};"
        f" notified change {r['notified_change']['requests']},"
        f" next round {r['round_after_notification']['requests']}"
    )


def print_detection(result: dict[str, Any]) -> None:
    n, d = result["notification"], result["delta"]
    print(f"detection latency, change to alert, {n['changes']} changes each:")
    for label, s in (
        ("by notification", n["latency_s"]),
        (f"by delta alone, sync every {d['tick_s']} s", d["latency_s"]),
        ("  of which tick to alert", d["tick_to_alert_s"]),
        ("by delta alone at the default minute (derived)", d["at_default_cadence_s"]),
    ):
        print(
            f"  {label:<48} p50 {s['p50']:6.2f} s  p95 {s['p95']:6.2f} s"
            f"  max {s['max']:6.2f} s (n={s['n']})"
        )
    print(f"  Graph requests per notified change: {n['graph_requests_per_change']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--only",
        choices=[
            "webhook",
            "processor",
            "sync",
            "alerts",
            "baseline",
            "detection",
            "intune_watch",
            "deadlines",
        ],
        default=None,
    )
    parser.add_argument(
        "--baseline-devices",
        type=int,
        default=2000,
        help="baseline through the whole pipeline, in a process (and stack) of its own",
    )
    parser.add_argument("--detection-changes", type=int, default=200)
    parser.add_argument("--detection-spread", type=float, default=60.0)
    parser.add_argument("--detection-tick", type=int, default=10, help="shortened sync cadence (s)")
    parser.add_argument("--sync-devices", type=int, default=20_000, help="100000 for the figures")
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument(
        "--watch-devices", type=int, default=20_000, help="Intune watch; 100000 for the figures"
    )
    parser.add_argument(
        "--deadline-devices",
        type=int,
        default=20_000,
        help="deadline index; 100000 for the figures",
    )
    parser.add_argument("--naive-devices", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--alert-devices", type=int, default=600)
    parser.add_argument("--pool-devices", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    report: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    if args.only in (None, "baseline"):
        cost = baseline_child(args.baseline_devices)
        report["baseline"] = cost
        print_baseline(cost)
    if args.only == "baseline":
        write(report)
        return
    with local_stack.start() as stack:
        if args.only in (None, "webhook"):
            report["webhook_ms"] = webhook.run(stack)
            print("webhook latency (ms), POST answered after the queue send:")
            for size, s in report["webhook_ms"].items():  # type: ignore[attr-defined]
                print(
                    f"  {size:>5} notifications: p50 {s['p50']:.1f}  p99 {s['p99']:.1f}  max {s['max']:.1f}  (n={s['n']})"
                )
        if args.only in (None, "processor"):
            result = processor.run(stack, args.devices, args.naive_devices, args.latency_ms)
            report["processor"] = result
            rows = (
                ("queue → dev host → processor", result["pipeline"]),
                ("processor pipeline, 32 at a time", result["direct"]),
                ("naive baseline", result["naive"]),
            )
            print(f"processor, Graph latency {args.latency_ms} ms:")
            for label, r in rows:
                print(
                    f"  {label:<34} {r['devices']:>5} devices in {r['seconds']:6.1f}s"
                    f" = {r['per_second']:5.1f}/s ({r['graph_requests']} Graph requests)"
                )
            print(
                f"  speed-up over naive: {result['speedup']:.1f}x end to end,"
                f" {result['direct_speedup']:.1f}x pipeline alone"
            )
        if args.only in (None, "sync"):
            result = sync.run(stack, args.sync_devices)
            report["sync"] = result
            print(f"delta sync, {result['devices']} devices:")
            for label in ("baseline", "incremental"):
                r = result[label]
                print(
                    f"  {label:<12} {r['outcome']}: {r['seconds']:6.2f}s, peak RSS {r['peak_rss_mb']:.0f} MB, {r['pages']} pages, {r['graph_requests']} Graph requests, {r['messages']} messages"
                )
            print(
                f"  baseline: {result['baseline']['requests_per_device']:.4f} Graph requests per device"
                f" ({result['baseline']['routes']})"
            )
            idle = result["idle"]
            print(
                f"  idle tenant: {idle['idle_rounds']['requests']} requests in"
                f" {idle['idle_rounds']['rounds']} rounds, upkeep {idle['upkeep']['requests']} in"
                f" {idle['upkeep']['hours']:.0f} h: {idle['requests_per_hour']} Graph requests per hour"
            )
        if args.only in (None, "alerts"):
            result = alerts.run(stack, args.alert_devices, args.pool_devices)
            report["alerts"] = result
            print_alerts(result)
        if args.only in (None, "detection"):
            result = detection.run(
                stack, args.detection_changes, args.detection_spread, args.detection_tick
            )
            report["detection"] = result
            print_detection(result)
        if args.only in (None, "intune_watch"):
            result = asyncio.run(intune_watch.measure(stack, args.watch_devices, 100))
            report["intune_watch"] = result
            intune_watch.report(result)
        if args.only in (None, "deadlines"):
            # A day of minute runs; rows written for the next 6 days, 10% of the fleet moved.
            days = asyncio.run(
                deadlines.measure(
                    stack.tables_connection,
                    args.deadline_devices,
                    timedelta(days=27),
                    args.deadline_devices // 10,
                    timedelta(days=6),
                    args.deadline_devices // 5,
                )
            )
            report["deadlines"] = days
            deadlines.report(days)
    write(report)


def write(report: dict[str, object]) -> None:
    out = Path(os.environ.get("DEVICEMON_ARTIFACTS", ".artifacts")) / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"raw figures: {out}")


if __name__ == "__main__":
    main()
