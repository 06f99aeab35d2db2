"""/api/health names an optional Graph permission that Graph refused, from what the reads that
needed it recorded (the compliance details read, the tenant settings read, the CA policies read),
and stays quiet about reads never tried."""

from __future__ import annotations

from datetime import UTC, datetime

from handlers.policies import refresh_policies
from handlers.tenant_settings import refresh_tenant_settings
from local.graphsim.admin import SimAdmin
from local.graphsim.ca_policies import set_ca_policies
from local.graphsim.tenant_settings import set_tenant_settings
from shared.runtime import Runtime
from tests.health_helpers import fresh_bookkeeping, health_report


async def test_a_refused_compliance_read_makes_health_name_the_permission(
    runtime: Runtime,
) -> None:
    await fresh_bookkeeping(runtime)
    status, report = await health_report(runtime)
    assert report["permissions"] == []  # nothing tried yet: nothing said

    books = await runtime.bookkeeping()
    await books.note_compliance_read(False, datetime.now(UTC), "Graph refused the read (403)")
    status, report = await health_report(runtime)

    assert status == 200 and report["status"] == "degraded"
    [check] = report["permissions"]
    assert (check["permission"], check["status"]) == (
        "DeviceManagementConfiguration.Read.All",
        "missing",
    )
    assert any("DeviceManagementConfiguration.Read.All is missing" in p for p in report["problems"])

    await books.note_compliance_read(True, datetime.now(UTC))
    status, report = await health_report(runtime)
    assert report["status"] == "healthy"
    assert [c["status"] for c in report["permissions"]] == ["granted"]


async def test_refused_policy_and_tenant_settings_reads_are_named_by_their_timers_records(
    runtime: Runtime, sim: SimAdmin
) -> None:
    # The timers as they run in Azure, against Graph answering 403 (the simulator plays an app
    # without Policy.Read.All and without DeviceManagementConfiguration.Read.All).
    await fresh_bookkeeping(runtime)
    set_ca_policies(sim, [], policy_read_granted=False)
    set_tenant_settings(sim, forbidden=True)
    await refresh_policies(runtime)
    await refresh_tenant_settings(runtime)

    status, report = await health_report(runtime)

    assert status == 200 and report["status"] == "degraded"
    missing = {c["permission"] for c in report["permissions"] if c["status"] == "missing"}
    assert missing == {"Policy.Read.All", "DeviceManagementConfiguration.Read.All"}
    assert any("Policy.Read.All is missing" in p and "CA_POLICY=" in p for p in report["problems"])

    set_ca_policies(sim, [], policy_read_granted=True)
    set_tenant_settings(sim, forbidden=False)
    await refresh_policies(runtime)
    await refresh_tenant_settings(runtime)
    status, report = await health_report(runtime)
    assert report["status"] == "healthy"
    assert {c["status"] for c in report["permissions"]} == {"granted"}
