"""`devicemon policies` on the stored read (CaPolicies in Azurite) and `--refresh` through the
Graph simulator: the last read, its time and status, and the policies of the last good read."""

from __future__ import annotations

import json

import pytest

from cli import errors
from local.graphsim.admin import SimAdmin
from local.graphsim.ca_policies import set_ca_policies
from shared.adapters.ca_policies import CaPolicyStore, table_name
from shared.adapters.store import make_service
from shared.settings import Settings
from tests.cli.conftest import devicemon
from tests.local.test_graphsim_ca_policies import tenant_policies


async def create_table(settings: Settings) -> None:
    """What the function app's policy timer does on its first run (the CLI creates no table)."""
    service = make_service(settings)
    store = CaPolicyStore(service, table_name(settings))
    await store.ensure_table()
    await store.close()
    await service.close()


async def test_no_table_and_no_read_are_not_found(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], settings: Settings
) -> None:
    missing = await devicemon(capsys, env, "policies")
    assert missing.code == errors.NOT_FOUND and "CaPolicies table" in missing.err
    await create_table(settings)
    never = await devicemon(capsys, env, "policies")
    assert never.code == errors.NOT_FOUND and "--refresh" in never.err


async def test_refresh_then_list_then_a_refused_read(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], settings: Settings, sim: SimAdmin
) -> None:
    await create_table(settings)
    policies = tenant_policies()
    set_ca_policies(sim, policies)

    fresh = await devicemon(capsys, env, "policies", "--refresh")
    assert fresh.code == errors.OK, fresh.err
    assert "(ok)" in fresh.out.splitlines()[0]
    assert fresh.out.splitlines()[-1].startswith("15 policies, ")

    stored = await devicemon(capsys, env, "policies", "--json")
    assert stored.code == errors.OK
    listing = json.loads(stored.out)
    assert listing["status"] == "ok" and listing["readAt"] == listing["lastSuccessAt"]
    assert [p["id"] for p in listing["policies"]] == [p["id"] for p in policies]
    risk = listing["policies"][-1]
    # read with Prefer: include-unknown-enum-members: riskRemediation by name, not a sentinel
    assert risk["otherControls"] == ["passwordChange", "riskRemediation"]
    assert risk["unknownControls"] == []

    set_ca_policies(sim, policies[:3], policy_read_granted=False)
    refused = await devicemon(capsys, env, "policies", "--refresh")
    assert refused.code == errors.FAILED
    lines = refused.out.splitlines()
    assert "(permissionMissing)" in lines[0]
    assert "Policy.Read.All" in lines[1]
    assert lines[-1].startswith("15 policies, ")  # the last good read, still shown
