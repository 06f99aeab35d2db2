"""`devicemon tenant` against the local stack (the timer's row in Azurite, the simulator's
deviceManagement/settings), and `devicemon fleet --stale` on the seeded fleet."""

from __future__ import annotations

import json

import pytest

from cli import errors
from handlers.tenant_settings import refresh_tenant_settings
from local.graphsim.admin import SimAdmin
from local.graphsim.tenant_settings import set_tenant_settings
from shared.adapters.tenant_settings import PERMISSION
from shared.runtime import Runtime
from tests.cli.conftest import devicemon
from tests.cli.seed import Fleet


async def test_before_any_read_it_shows_intunes_defaults_and_says_so(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], app_tables: None
) -> None:
    result = await devicemon(capsys, env, "tenant")

    assert result.code == errors.OK, result.err
    assert "30 days" in result.out
    assert "marked compliant (secureByDefault false" in result.out
    assert "23 days without a check-in" in result.out
    assert "Intune's defaults (never read from Graph)" in result.out


async def test_it_shows_what_the_timer_read(
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    runtime: Runtime,
    sim: SimAdmin,
) -> None:
    set_tenant_settings(sim, checkin_threshold_days=10, secure_by_default=True)
    read = await refresh_tenant_settings(runtime)

    text = await devicemon(capsys, env, "tenant")
    as_json = await devicemon(capsys, env, "tenant", "--json")

    assert text.code == errors.OK, text.err
    assert "10 days" in text.out and "5 days without a check-in" in text.out
    assert "marked not compliant (secureByDefault true)" in text.out
    assert "read from Graph" in text.out
    body = json.loads(as_json.out)
    assert body["deviceComplianceCheckinThresholdDays"] == 10
    assert body["secureByDefault"] is True and body["status"] == "read"
    assert read.read_at is not None and body["readAt"] == read.read_at.isoformat()


async def test_refresh_refused_keeps_the_values_and_says_why(
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    runtime: Runtime,
    sim: SimAdmin,
) -> None:
    set_tenant_settings(sim, checkin_threshold_days=45)
    await refresh_tenant_settings(runtime)
    set_tenant_settings(sim, checkin_threshold_days=5, forbidden=True)

    result = await devicemon(capsys, env, "tenant", "--refresh")

    assert result.code == errors.OK, result.err
    assert "45 days" in result.out and "the last read failed" in result.out
    assert "403" in result.out and PERMISSION in result.out


async def test_fleet_stale_lists_the_device_not_seen_for_months_and_it_stays_eligible(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str]
) -> None:
    text = await devicemon(capsys, fleet_env, "fleet", "--stale")
    as_json = await devicemon(capsys, fleet_env, "fleet", "--stale", "--json")

    assert text.code == errors.OK, text.err
    listed = text.out[text.out.index("Stale devices") :]
    assert "(1)" in listed.splitlines()[0]
    assert fleet.ids["SHARED-PC#1"] in listed and fleet.ids["SHARED-PC#2"] not in listed
    assert "eligible" in listed and "INELIGIBLE" not in listed
    [device] = json.loads(as_json.out)["devices"]
    assert device["objectId"] == fleet.ids["SHARED-PC#1"]
    assert device["eligible"] is True and device["warnings"] == ["STALE_SIGN_IN"]


async def test_fleet_stale_with_ineligible_lists_a_device_once(
    capsys: pytest.CaptureFixture[str], fleet: Fleet, fleet_env: dict[str, str]
) -> None:
    both = await devicemon(capsys, fleet_env, "fleet", "--stale", "--ineligible", "--json")
    ids = [d["objectId"] for d in json.loads(both.out)["devices"]]
    assert len(ids) == len(set(ids)) == 4  # three ineligible devices and the stale one
