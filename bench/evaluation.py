"""The CPU cost of judging one device: under the CA_POLICY setting, and against a tenant's
Conditional Access policies (the ten-policy tenant of tests/shared/core/test_ca_policies_tenant.py,
built from Microsoft's documented policy shapes), over the simulator's mixed fleet with its Intune
records. Pure: no I/O, one core.

    .venv/bin/python -m bench.evaluation --devices 20000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local.graphsim.fleet import generate_fleet
from shared.core.ca_policies import compile_policies
from shared.core.evaluation import EvaluationOptions, evaluate
from shared.core.models import DeviceSnapshot, ManagedDeviceSnapshot
from shared.core.policy_eligibility import CompiledPolicySet
from shared.core.snapshots import device_from_json, managed_device_from_json
from tests.shared.core.test_ca_policies_tenant import POLICIES

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
Judged = tuple[DeviceSnapshot, ManagedDeviceSnapshot | None, dict[str, Any]]


def fleet(count: int) -> list[Judged]:
    generated = generate_fleet(count, seed=12, now=NOW)
    records = {m["azureADDeviceId"]: m for m in generated.managed}
    judged = []
    for raw in generated.devices:
        record = records.get(raw.get("deviceId"))
        managed = managed_device_from_json(record) if record else None
        judged.append((device_from_json(raw), managed, raw))
    return judged


def per_device_us(devices: list[Judged], judge: Callable[[Judged], object]) -> float:
    started = time.perf_counter()
    for item in devices:
        judge(item)
    return (time.perf_counter() - started) / len(devices) * 1e6


def measure(count: int) -> dict[str, Any]:
    devices = fleet(count)
    options = EvaluationOptions()
    policies = CompiledPolicySet(tuple(compile_policies(POLICIES)))
    at_risk = sum(1 for d, m, _ in devices if evaluate(d, m, options, NOW).risk_reasons)
    setting = per_device_us(devices, lambda j: evaluate(j[0], j[1], options, NOW))
    tenant = per_device_us(
        devices,
        lambda j: evaluate(j[0], j[1], options, NOW, device_json=j[2], policies=policies),
    )
    return {
        "devices": count,
        "at_risk": at_risk,
        "policies": len(policies.policies),
        "setting_us_per_device": round(setting, 1),
        "policies_us_per_device": round(tenant, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000)
    result = measure(parser.parse_args().devices)
    print(
        f"evaluation of {result['devices']} devices ({result['at_risk']} at risk):"
        f" {result['setting_us_per_device']} µs a device under CA_POLICY,"
        f" {result['policies_us_per_device']} µs against {result['policies']} CA policies"
    )


if __name__ == "__main__":
    main()
