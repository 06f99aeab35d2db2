"""The blocking Conditional Access policies, end to end (issue 14 item 4): the simulator serves
the tenant's policies, the policy timer's read stores them, the real pipeline judges devices with
them, and `devicemon device`, `devicemon fleet`, `devicemon report` and the read API name the
policies that block each device (checked against docs/openapi.yaml).

Policies in the shape of conditionalaccessroot-list-policies.md, from the tenant table of
tests/shared/core/test_ca_policies_tenant.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from cli import errors
from handlers import read_api
from handlers.policies import refresh_policies
from local import stack as local_stack
from local.graphsim.admin import SimAdmin
from local.graphsim.ca_policies import set_ca_policies
from shared.runtime import Runtime
from tests.cli.conftest import devicemon
from tests.cli.seed import change, isolated_settings, settings_env
from tests.graph_helpers import add_device
from tests.handlers.test_read_api import check, get
from tests.shared.core.test_ca_policies_tenant import POLICIES

BY_NUMBER = {int(p["id"][-2:]): p for p in cast(list[dict[str, Any]], POLICIES["value"])}
# CA01 compliant or hybrid (all users but the break-glass group), CA02 mobile devices compliant,
# CA12 Windows compliant and hybrid in report-only.
TENANT_POLICIES = [BY_NUMBER[1], BY_NUMBER[2], BY_NUMBER[12]]
CA01, CA02, CA12 = (p["displayName"] for p in TENANT_POLICIES)


@dataclass(frozen=True)
class Judged:
    env: dict[str, str]
    runtime: Runtime
    ids: dict[str, str]


@pytest.fixture(scope="module")
def policy_tenant() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="module")
def policy_sim(stack: local_stack.Stack, policy_tenant: str) -> Iterator[SimAdmin]:
    with SimAdmin(stack.graph_root, policy_tenant) as admin:
        admin.ensure()
        yield admin


@pytest.fixture(scope="module")
async def judged(
    stack: local_stack.Stack, policy_tenant: str, policy_sim: SimAdmin
) -> AsyncIterator[Judged]:
    settings = isolated_settings(stack, policy_tenant)
    runtime = Runtime(settings)
    set_ca_policies(policy_sim, TENANT_POLICIES)
    try:
        await refresh_policies(runtime)
        made = {
            "LAPTOP-0042": add_device(policy_sim, name="LAPTOP-0042", compliant=False),
            "PIXEL-BYOD-19": add_device(
                policy_sim, name="PIXEL-BYOD-19", trust_type="Workplace", compliant=False
            ),
            "DESKTOP-HR-07": add_device(
                policy_sim,
                name="DESKTOP-HR-07",
                trust_type="ServerAd",
                compliant=None,
                intune=False,
            ),
        }
        policy_sim.patch_device(
            made["PIXEL-BYOD-19"]["id"],
            notify=False,
            operatingSystem="Android",
            operatingSystemVersion="14",
        )
        pipeline = await runtime.pipeline()
        for device in made.values():
            await pipeline.process(change(device["id"]))
        yield Judged(settings_env(settings), runtime, {n: d["id"] for n, d in made.items()})
    finally:
        await runtime.close()


def named(policies: list[dict[str, Any]]) -> list[tuple[str, list[str], list[str]]]:
    return [(p["displayName"], p["reasons"], p["conditionalOn"]) for p in policies]


async def every_page(runtime: Runtime, **params: str) -> list[dict[str, Any]]:
    """The devices of every page (a page filtered row by row may hold none and still go on)."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        query = {**params, **({"continuationToken": token} if token else {})}
        page = check("/devices", await read_api.list_devices(get(**query), runtime))
        found += page["devices"]
        token = page["continuationToken"]
        if token is None:
            return found


async def test_the_read_api_names_the_blocking_policies(judged: Judged) -> None:
    laptop = judged.ids["LAPTOP-0042"]
    body = check("/devices/{id}", await read_api.get_device(get(laptop), judged.runtime))
    device = body["device"]
    assert (device["eligible"], device["judgedBy"]) == (False, "ca_policies")
    assert device["reasons"] == ["NOT_COMPLIANT", "NOT_HYBRID_JOINED"]
    assert named(device["blockingPolicies"]) == [
        (CA01, ["NOT_COMPLIANT", "NOT_HYBRID_JOINED"], ["users"])
    ]
    assert named(device["reportOnlyFailures"]) == [
        (CA12, ["NOT_COMPLIANT", "NOT_HYBRID_JOINED"], ["users"])
    ]

    found = await every_page(judged.runtime, blockedBy=CA02.upper())
    assert [d["displayName"] for d in found] == ["PIXEL-BYOD-19"]
    assert named(found[0]["blockingPolicies"]) == [
        (CA01, ["NOT_COMPLIANT", "NOT_JOINED"], ["users"]),
        (CA02, ["NOT_COMPLIANT"], ["users"]),
    ]


async def test_device_and_fleet_name_the_policies(
    capsys: pytest.CaptureFixture[str], judged: Judged
) -> None:
    shown = await devicemon(capsys, judged.env, "device", "LAPTOP-0042")
    blocked = await devicemon(capsys, judged.env, "fleet", "--blocked-by", CA02, "--json")
    summary = await devicemon(capsys, judged.env, "fleet", "--json")

    assert shown.code == errors.OK, shown.err
    assert f"  {CA01} (NOT_COMPLIANT, NOT_HYBRID_JOINED), for the users it selects" in shown.out
    assert "the tenant's Conditional Access policies" in shown.out
    assert blocked.code == errors.OK, blocked.err
    assert json.loads(blocked.out)["summary"]["devices"] == 1
    counts = json.loads(summary.out)["summary"]
    assert [(p["displayName"], p["devices"]) for p in counts["byBlockingPolicy"]] == [
        (CA01, 2),
        (CA02, 1),
    ]
    # the hybrid joined desktop passes CA01 by its join but would fail the report-only CA12
    assert [(p["displayName"], p["devices"]) for p in counts["byReportOnlyFailure"]] == [(CA12, 2)]
    assert counts["judgedBy"] == {"ca_policies": 3}


async def test_the_report_lists_the_blocking_policies(
    capsys: pytest.CaptureFixture[str], judged: Judged, tmp_path: Path
) -> None:
    target = tmp_path / "fleet.html"
    result = await devicemon(capsys, judged.env, "report", "--html", str(target))

    assert result.code == errors.OK, result.err
    page = target.read_text("utf-8")
    assert page.count('class="policy"') == 3  # CA01 and CA02 blocking, CA12 report-only
    assert f">{CA02}</a>" in page and "for the users it selects" in page
