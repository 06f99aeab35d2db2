"""/api/health says what judges devices (`eligibility.mode`): the tenant's Conditional Access
policies or the CA_POLICY setting, why, and how many policies devicemon understood; degraded when
ELIGIBILITY_SOURCE=ca_policies and the policies cannot be read.

The view's every combination is unit-tested (shared/views/health.py); the route through the
policy timer that stores what the Graph simulator answers (policies in the shapes of
conditionalaccessroot-list-policies.md, 403 without Policy.Read.All)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from handlers.policies import refresh_policies
from local.graphsim.admin import SimAdmin
from local.graphsim.ca_policies import set_ca_policies
from shared.adapters.ca_policies import ReadStatus, StoredPolicies
from shared.runtime import Runtime
from shared.views.health import EligibilityMode, assess
from tests.health_helpers import fresh_bookkeeping, health_report
from tests.shared.core.test_ca_policies_tenant import POLICIES
from tests.test_openapi import LIVE, NOW, SYNCED, validate

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
TENANT = cast(list[dict[str, Any]], POLICIES["value"])  # 14 policies, CA13's filter unreadable


def stored(status: ReadStatus, last_success: datetime | None, detail: str = "") -> StoredPolicies:
    return StoredPolicies(
        status=status,
        read_at=T1,
        detail=detail,
        last_success_at=last_success,
        policies=tuple(copy.deepcopy(TENANT)) if last_success else (),
    )


READ = stored(ReadStatus.OK, T1)
KEPT = stored(ReadStatus.FAILED, T0, "Graph did not answer within 60 s.")
REFUSED = stored(ReadStatus.PERMISSION_MISSING, T0, "Graph refused the read (403)")
NEVER_GOOD = stored(ReadStatus.FAILED, None, "Graph could not be reached")


@pytest.mark.parametrize(
    ("source", "found", "mode", "why", "degraded", "words"),
    [
        ("auto", None, "ca_policy_setting", "neverRead", False, "never been read"),
        ("auto", READ, "ca_policies", "read", False, "read at 2026-11-30T09:00:00Z judge"),
        ("auto", KEPT, "ca_policies", "read", False, "failed: Graph did not answer"),
        ("auto", REFUSED, "ca_policy_setting", "permissionMissing", False, "Policy.Read.All"),
        ("auto", NEVER_GOOD, "ca_policy_setting", "readFailed", False, "no read has succeeded"),
        ("ca_policies", None, "ca_policy_setting", "neverRead", True, "never been read"),
        ("ca_policies", READ, "ca_policies", "read", False, "judge devices"),
        ("ca_policies", KEPT, "ca_policies", "read", False, "they are kept"),
        ("ca_policies", REFUSED, "ca_policy_setting", "permissionMissing", True, "refused"),
        ("ca_policies", NEVER_GOOD, "ca_policy_setting", "readFailed", True, "reached"),
        ("ca_policy_setting", None, "ca_policy_setting", "setting", False, "ELIGIBILITY_SOURCE"),
        ("ca_policy_setting", READ, "ca_policy_setting", "setting", False, "(compliant)"),
        ("ca_policy_setting", REFUSED, "ca_policy_setting", "setting", False, "judges devices"),
    ],
)
def test_the_mode_in_force_and_why(
    source: str,
    found: StoredPolicies | None,
    mode: str,
    why: str,
    degraded: bool,
    words: str,
) -> None:
    view = EligibilityMode(source, "compliant", found)
    report = view.report()
    whole = assess(
        SYNCED,
        LIVE,
        now=NOW,
        stale_after=timedelta(minutes=30),
        devices=1,
        ineligible=0,
        eligibility=view,
    )
    validate("/health", "get", 200, whole)  # the documented shape (docs/openapi.yaml)
    assert whole["eligibility"] == report
    assert whole["status"] == ("degraded" if degraded else "healthy")
    assert (report["mode"], report["source"], report["why"]) == (mode, source, why)
    assert words in report["explanation"]
    assert (view.problem() is not None) is degraded
    if degraded:
        assert "ELIGIBILITY_SOURCE=ca_policies" in (view.problem() or "")
    if mode == "ca_policies":
        assert report["policies"]["total"] == 14
        assert (report["policies"]["understood"], report["policies"]["notUnderstood"]) == (13, 1)
        expected = {id(READ): "2026-11-30T09:00:00Z", id(KEPT): "2026-11-30T08:00:00Z"}
        assert (report["readAt"], report["lastAttemptAt"]) == (
            expected[id(found)],
            "2026-11-30T09:00:00Z",
        )
    else:
        assert report["policies"] is None
        assert "(compliant)" in report["explanation"]


def test_the_digest_follows_what_the_policies_ask_of_devices() -> None:
    changed = copy.deepcopy(TENANT)
    changed[0]["grantControls"]["builtInControls"] = ["compliantDevice"]
    renamed_only_created = copy.deepcopy(TENANT)
    renamed_only_created[0]["createdDateTime"] = "2020-01-01T00:00:00Z"

    def digest(policies: list[dict[str, Any]]) -> str:
        found = replace(READ, policies=tuple(policies))
        return cast(str, EligibilityMode("auto", "compliant", found).report()["policies"]["digest"])

    assert digest(TENANT) == digest(list(reversed(TENANT))) == digest(renamed_only_created)
    assert digest(changed) != digest(TENANT)


async def test_health_names_the_mode_through_the_timer_that_reads_the_policies(
    runtime: Runtime, sim: SimAdmin
) -> None:
    await fresh_bookkeeping(runtime)
    status, report = await health_report(runtime)
    assert (status, report["status"]) == (200, "healthy")
    assert (report["eligibility"]["mode"], report["eligibility"]["why"]) == (
        "ca_policy_setting",
        "neverRead",
    )

    set_ca_policies(sim, copy.deepcopy(TENANT))
    await refresh_policies(runtime)
    status, report = await health_report(runtime)
    eligibility = report["eligibility"]
    assert (report["status"], eligibility["mode"], eligibility["why"]) == (
        "healthy",
        "ca_policies",
        "read",
    )
    assert eligibility["policies"]["understood"] == 13
    assert eligibility["policies"]["notUnderstood"] == 1
    assert eligibility["readAt"] == eligibility["lastAttemptAt"]

    set_ca_policies(sim, copy.deepcopy(TENANT), policy_read_granted=False)
    await refresh_policies(runtime)
    status, report = await health_report(runtime)
    assert (report["eligibility"]["mode"], report["eligibility"]["why"]) == (
        "ca_policy_setting",
        "permissionMissing",
    )
    assert report["status"] == "degraded"  # the permission check names the refusal


async def test_policies_asked_for_but_never_read_make_health_degraded(runtime: Runtime) -> None:
    asked = Runtime(replace(runtime.settings, eligibility_source="ca_policies"))
    try:
        await fresh_bookkeeping(asked)
        status, report = await health_report(asked)
    finally:
        await asked.close()
    assert (status, report["status"]) == (200, "degraded")
    assert report["eligibility"]["mode"] == "ca_policy_setting"
    assert any(p.startswith("ELIGIBILITY_SOURCE=ca_policies, but") for p in report["problems"])
