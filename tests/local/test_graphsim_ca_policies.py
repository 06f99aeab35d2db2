"""The simulator's Conditional Access policies through the real msgraph-sdk: the documented list
and get shapes (conditionalaccessroot-list-policies.md, conditionalaccesspolicy-get.md), paging,
evolvable enum members hidden without `Prefer: include-unknown-enum-members`
(best-practices-concept.md), and 403 without Policy.Read.All."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest
from msgraph.generated.models.conditional_access_policy_state import (
    ConditionalAccessPolicyState,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from local.graphsim.admin import SimAdmin, SimAdminError
from local.graphsim.ca_policies import set_ca_policies
from shared.adapters.graph import GraphJson
from shared.runtime import Runtime
from tests.shared.core.test_ca_policies_tenant import POLICIES

LIST = "GET /identity/conditionalAccess/policies"
DOCUMENTED = cast(list[dict[str, Any]], POLICIES["value"])
PREFER = {"Prefer": "include-unknown-enum-members"}
# conditionalaccessgrantcontrols.md: riskRemediation comes after unknownFutureValue
RISK_POLICY: dict[str, Any] = {
    "id": "7c3a1e52-6f0b-4d8e-9a4f-5b2c3d4e5f60",
    "displayName": "CA15 High user risk: password change or risk remediation",
    "state": "enabled",
    "conditions": {
        "userRiskLevels": ["high"],
        "clientAppTypes": ["all"],
        "applications": {"includeApplications": ["All"]},
        "users": {"includeUsers": ["All"]},
    },
    "grantControls": {
        "operator": "OR",
        "builtInControls": ["passwordChange", "riskRemediation"],
        "customAuthenticationFactors": [],
        "termsOfUse": [],
    },
}


def tenant_policies() -> list[dict[str, Any]]:
    return [*copy.deepcopy(DOCUMENTED), copy.deepcopy(RISK_POLICY)]


@pytest.fixture
def graph(runtime: Runtime) -> GraphJson:
    return runtime.graph_json()


def by_name(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["displayName"]: p for p in listing["value"]}


async def test_the_typed_sdk_reads_every_policy(sim: SimAdmin, graph: GraphJson) -> None:
    set_ca_policies(sim, tenant_policies())
    answer = await graph.client.identity.conditional_access.policies.get()
    assert answer is not None and answer.value is not None
    assert [p.display_name for p in answer.value] == [p["displayName"] for p in tenant_policies()]
    report_only = answer.value[3]
    assert report_only.state == ConditionalAccessPolicyState.EnabledForReportingButNotEnforced
    kiosk = answer.value[6]
    assert kiosk.conditions is not None and kiosk.conditions.devices is not None
    assert kiosk.conditions.devices.device_filter is not None
    assert kiosk.conditions.devices.device_filter.rule == 'device.extensionAttribute1 -eq "Kiosk"'
    assert kiosk.grant_controls is not None and kiosk.grant_controls.operator == "AND"


async def test_members_after_the_sentinel_need_the_prefer_header(
    sim: SimAdmin, graph: GraphJson
) -> None:
    set_ca_policies(sim, tenant_policies())
    plain = by_name(await graph.get("/identity/conditionalAccess/policies"))
    opted = by_name(await graph.get("/identity/conditionalAccess/policies", headers=PREFER))

    risk = RISK_POLICY["displayName"]
    assert plain[risk]["grantControls"]["builtInControls"] == [
        "passwordChange",
        "unknownFutureValue",
    ]
    assert opted[risk]["grantControls"]["builtInControls"] == ["passwordChange", "riskRemediation"]
    unsupported = "CA05 Block unsupported platforms"
    assert plain[unsupported]["conditions"]["platforms"]["excludePlatforms"] == [
        "android",
        "iOS",
        "windows",
        "macOS",
        "unknownFutureValue",
    ]
    assert "linux" in opted[unsupported]["conditions"]["platforms"]["excludePlatforms"]
    # everything else is served as stored
    kiosk = "CA07 Kiosks compliant"
    assert plain[kiosk] == opted[kiosk]
    assert opted[kiosk] == DOCUMENTED[6]


async def test_server_paging_and_top_skip(sim: SimAdmin, graph: GraphJson) -> None:
    set_ca_policies(sim, tenant_policies(), page_size=4)
    sim.reset_requests()
    names: list[str] = []
    url: str | None = "/identity/conditionalAccess/policies"
    while url:
        page = await graph.get(url)
        names += [p["displayName"] for p in page["value"]]
        url = page.get("@odata.nextLink")
    assert names == [p["displayName"] for p in tenant_policies()]
    assert sim.requests()["routes"] == {LIST: 4}

    page = await graph.get("/identity/conditionalAccess/policies?$top=2&$skip=3")
    assert [p["displayName"][:4] for p in page["value"]] == ["CA04", "CA05"]
    assert "@odata.nextLink" not in page


async def test_one_policy_by_id_and_an_unknown_id(sim: SimAdmin, graph: GraphJson) -> None:
    set_ca_policies(sim, tenant_policies())
    wanted = DOCUMENTED[1]["id"]
    found = await graph.get(f"/identity/conditionalAccess/policies/{wanted.upper()}")
    assert found["displayName"] == "CA02 Mobile devices compliant"
    assert found["@odata.context"].endswith("#conditionalAccess/policies/$entity")
    with pytest.raises(ODataError) as missing:
        await graph.get("/identity/conditionalAccess/policies/6c7b9a2e-0000-4000-8000-000000000000")
    assert missing.value.response_status_code == 404


async def test_without_policy_read_all_the_reads_are_forbidden(
    sim: SimAdmin, graph: GraphJson
) -> None:
    set_ca_policies(sim, tenant_policies(), policy_read_granted=False)
    for path in ("", f"/{RISK_POLICY['id']}"):
        with pytest.raises(ODataError) as refused:
            await graph.get(f"/identity/conditionalAccess/policies{path}")
        assert refused.value.response_status_code == 403
        assert refused.value.error is not None and refused.value.error.code == "AccessDenied"


def test_the_admin_refuses_an_undocumented_state_and_reads_back(sim: SimAdmin) -> None:
    with pytest.raises(SimAdminError) as bad:
        set_ca_policies(sim, [{**RISK_POLICY, "state": "on"}])
    assert bad.value.status == 400
    stored = set_ca_policies(sim, [RISK_POLICY], page_size=2)
    assert stored["policies"] == [RISK_POLICY] and stored["pageSize"] == 2


async def test_a_sentinel_is_sent_once_for_an_evolved_member_beside_it(
    sim: SimAdmin, graph: GraphJson
) -> None:
    both = copy.deepcopy(RISK_POLICY)
    both["grantControls"]["builtInControls"] = ["riskRemediation", "unknownFutureValue", "mfa"]
    set_ca_policies(sim, [both])
    [plain] = (await graph.get("/identity/conditionalAccess/policies"))["value"]
    [opted] = (await graph.get("/identity/conditionalAccess/policies", headers=PREFER))["value"]
    assert plain["grantControls"]["builtInControls"] == ["unknownFutureValue", "mfa"]
    assert opted["grantControls"]["builtInControls"] == both["grantControls"]["builtInControls"]
