"""Reading a device's failing compliance policies and settings through the real msgraph-sdk
pipeline (GraphJson), against the Graph simulator serving the documented shapes.

The request counts are the Graph cost per alert that docs/compliance-details.md quotes.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kiota_abstractions.api_error import APIError

from local.graphsim.admin import SimAdmin, SimAdminError
from local.graphsim.compliance_states import set_policy_states
from shared.adapters.compliance_details import PERMISSION, read_compliance_details
from shared.adapters.graph import GraphJson
from shared.core.compliance_details import (
    GRAPH_ERROR,
    NOT_FOUND,
    PERMISSION_MISSING,
    THROTTLED,
    TIMEOUT,
    ComplianceDetails,
    FailingPolicy,
)
from shared.runtime import Runtime
from tests.graph_helpers import add_device

LIST_ROUTE = "GET /deviceManagement/managedDevices/{id}/deviceCompliancePolicyStates"
SETTINGS_ROUTE = (
    "GET /deviceManagement/managedDevices/{id}/deviceCompliancePolicyStates/{stateId}/settingStates"
)
BASELINE = "b1f4a1a2-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
DEFENDER = "c2e5b2b3-4d5e-4f60-9bac-1d2e3f4a5b6c"
PASSWORDS = "d3f6c3c4-5e6f-4071-8cbd-2e3f4a5b6c7d"


def setting(name: str, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "setting": name,
        "settingName": name.rsplit(".", 1)[-1],
        "state": state,
        "userPrincipalName": "adele.vance@contoso.example",
        "sources": [{"id": BASELINE, "displayName": "Windows 11 baseline"}],
        **extra,
    }


def policy(policy_id: str, name: str, state: str, settings: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": policy_id,
        "displayName": name,
        "state": state,
        "platformType": "windows10AndLater",
        "version": 3,
        "settingStates": settings,
    }


BITLOCKER_OFF = [
    policy(
        BASELINE,
        "Windows 11 baseline",
        "nonCompliant",
        [
            setting("Windows10CompliancePolicy.BitLockerEnabled", "nonCompliant"),
            setting("Windows10CompliancePolicy.SecureBootEnabled", "compliant"),
            setting("Windows10CompliancePolicy.OsMaximumVersion", "notApplicable"),
        ],
    ),
    policy(
        DEFENDER,
        "Defender",
        "compliant",
        [setting("Windows10CompliancePolicy.RtpEnabled", "compliant")],
    ),
]
MIXED = [
    policy(
        BASELINE,
        "Windows 11 baseline",
        "error",
        [
            setting(
                "Windows10CompliancePolicy.ActiveFirewallRequired",
                "error",
                errorCode=-2016281112,
                errorDescription="Remediation failed",
            ),
            setting("Windows10CompliancePolicy.SomethingNew", "nonCompliant"),
            setting("Windows10CompliancePolicy.TpmRequired", "notApplicable"),
        ],
    ),
    policy(
        PASSWORDS,
        "Passwords",
        "conflict",
        [setting("Windows10CompliancePolicy.PasswordMinimumLength", "conflict")],
    ),
    policy(DEFENDER, "Defender", "notApplicable", []),
]


@pytest.fixture
def graph(runtime: Runtime) -> GraphJson:
    return runtime.graph_json()


def managed_device(sim: SimAdmin) -> str:
    return str(add_device(sim, compliant=False)["managedId"])


def routes(sim: SimAdmin) -> dict[str, int]:
    return dict(sim.requests()["routes"])


async def test_bitlocker_off_is_named_with_its_policy_in_one_request(
    sim: SimAdmin, graph: GraphJson
) -> None:
    managed_id = managed_device(sim)
    set_policy_states(sim, managed_id, BITLOCKER_OFF)
    sim.reset_requests()

    details = await read_compliance_details(graph, managed_id)

    assert details.unavailable is None
    assert details.failing_policies == (
        FailingPolicy(BASELINE, "Windows 11 baseline", "nonCompliant"),
    )
    [bitlocker] = details.failing_settings
    assert bitlocker.setting == "Windows10CompliancePolicy.BitLockerEnabled"
    assert (bitlocker.state, bitlocker.policy_name) == ("nonCompliant", "Windows 11 baseline")
    assert "BitLocker" in bitlocker.sentence and "BitLocker" in bitlocker.fix
    counts = sim.requests()
    assert counts["routes"] == {LIST_ROUTE: 1}
    assert counts["httpRequests"] == 1


async def test_error_conflict_and_an_unknown_setting_are_reported_not_applicable_is_not(
    sim: SimAdmin, graph: GraphJson
) -> None:
    managed_id = managed_device(sim)
    set_policy_states(sim, managed_id, MIXED)

    details = await read_compliance_details(graph, managed_id)

    assert [(p.display_name, p.state) for p in details.failing_policies] == [
        ("Windows 11 baseline", "error"),
        ("Passwords", "conflict"),
    ]
    assert [(s.setting, s.state, s.policy_id) for s in details.failing_settings] == [
        ("Windows10CompliancePolicy.ActiveFirewallRequired", "error", BASELINE),
        ("Windows10CompliancePolicy.SomethingNew", "nonCompliant", BASELINE),
        ("Windows10CompliancePolicy.PasswordMinimumLength", "conflict", PASSWORDS),
    ]
    firewall, unknown, _ = details.failing_settings
    assert firewall.sentence.endswith("Intune says: Remediation failed")
    assert "Windows10CompliancePolicy.SomethingNew" in unknown.sentence


async def test_settings_that_do_not_come_inline_cost_one_read_per_failing_policy(
    sim: SimAdmin, graph: GraphJson
) -> None:
    managed_id = managed_device(sim)
    set_policy_states(sim, managed_id, MIXED, inline_setting_states=False)
    sim.reset_requests()

    details = await read_compliance_details(graph, managed_id)

    assert [s.setting.rsplit(".", 1)[1] for s in details.failing_settings] == [
        "ActiveFirewallRequired",
        "SomethingNew",
        "PasswordMinimumLength",
    ]
    # The notApplicable policy has no settings to read and is not failing: no read.
    assert routes(sim) == {LIST_ROUTE: 1, SETTINGS_ROUTE: 2}


async def test_pages_of_policy_states_are_followed(sim: SimAdmin, graph: GraphJson) -> None:
    managed_id = managed_device(sim)
    set_policy_states(sim, managed_id, MIXED, page_size=2)
    sim.reset_requests()

    details = await read_compliance_details(graph, managed_id)

    assert len(details.failing_settings) == 3
    assert routes(sim) == {LIST_ROUTE: 2}


async def test_a_device_without_policy_states_has_empty_details_not_unavailable(
    sim: SimAdmin, graph: GraphJson
) -> None:
    details = await read_compliance_details(graph, managed_device(sim))
    assert details == ComplianceDetails()


async def test_a_missing_permission_is_reported_not_raised(sim: SimAdmin, graph: GraphJson) -> None:
    managed_id = managed_device(sim)
    set_policy_states(sim, managed_id, BITLOCKER_OFF)
    sim.add_fault(status=403, count=1, route=LIST_ROUTE.split(" ", 1)[1], code="Forbidden")

    details = await read_compliance_details(graph, managed_id)

    assert details.unavailable == PERMISSION_MISSING
    assert "403" in details.detail and PERMISSION in details.detail
    assert details.to_json() == {
        "unavailable": {"reason": PERMISSION_MISSING, "detail": details.detail}
    }
    # Not retried: a permission does not appear by asking again.
    assert sim.requests()["statuses"].get("403") == 1


async def test_an_unknown_managed_device_is_not_found(sim: SimAdmin, graph: GraphJson) -> None:
    details = await read_compliance_details(graph, str(uuid.uuid4()))
    assert details.unavailable == NOT_FOUND
    assert "404" in details.detail


async def test_throttling_that_outlives_the_retries_is_reported(
    sim: SimAdmin, graph: GraphJson
) -> None:
    managed_id = managed_device(sim)
    set_policy_states(sim, managed_id, BITLOCKER_OFF)
    sim.add_fault(status=429, count=50, retry_after=0, route=LIST_ROUTE.split(" ", 1)[1])
    sim.reset_requests()

    details = await read_compliance_details(graph, managed_id)

    assert details.unavailable == THROTTLED
    # The shared retry policy (graph_max_retries = 3): four tries, then the alert goes on.
    assert routes(sim) == {LIST_ROUTE: 4}


async def test_throttling_that_passes_is_retried_to_an_answer(
    sim: SimAdmin, graph: GraphJson
) -> None:
    managed_id = managed_device(sim)
    set_policy_states(sim, managed_id, BITLOCKER_OFF)
    sim.add_fault(status=429, count=1, retry_after=0, route=LIST_ROUTE.split(" ", 1)[1])

    details = await read_compliance_details(graph, managed_id)

    assert [s.setting for s in details.failing_settings] == [
        "Windows10CompliancePolicy.BitLockerEnabled"
    ]


async def test_a_failing_setting_states_read_makes_the_details_unavailable(
    sim: SimAdmin, graph: GraphJson
) -> None:
    managed_id = managed_device(sim)
    set_policy_states(sim, managed_id, MIXED, inline_setting_states=False)
    sim.add_fault(status=400, count=1, route=SETTINGS_ROUTE.split(" ", 1)[1], code="BadRequest")

    details = await read_compliance_details(graph, managed_id)

    assert details.unavailable == GRAPH_ERROR
    assert "400" in details.detail


async def test_a_slow_intune_is_cut_at_the_bound(sim: SimAdmin, graph: GraphJson) -> None:
    managed_id = managed_device(sim)
    sim.set_latency(ms=5000)

    details = await read_compliance_details(graph, managed_id, within=0.2)

    assert details.unavailable == TIMEOUT
    assert "0.2 s" in details.detail


async def test_the_documented_shapes_parse_into_the_sdks_typed_models(
    sim: SimAdmin, runtime: Runtime
) -> None:
    managed_id = managed_device(sim)
    set_policy_states(sim, managed_id, MIXED)
    client = runtime.graph_json().client
    item = client.device_management.managed_devices.by_managed_device_id(managed_id)

    listed = await item.device_compliance_policy_states.get()
    one = await item.device_compliance_policy_states.by_device_compliance_policy_state_id(
        PASSWORDS
    ).get()

    assert listed is not None and listed.value is not None
    assert [(p.display_name, p.state) for p in listed.value] == [
        ("Windows 11 baseline", "error"),
        ("Passwords", "conflict"),
        ("Defender", "notApplicable"),
    ]
    first = (listed.value[0].setting_states or [])[0]
    assert (first.setting, first.state, first.error_code) == (
        "Windows10CompliancePolicy.ActiveFirewallRequired",
        "error",
        -2016281112,
    )
    assert one is not None and one.setting_count == 1


async def test_one_policy_state_and_its_settings_answer_404_when_unknown(
    sim: SimAdmin, graph: GraphJson
) -> None:
    managed_id = managed_device(sim)
    set_policy_states(sim, managed_id, BITLOCKER_OFF)
    base = f"/deviceManagement/managedDevices/{managed_id}/deviceCompliancePolicyStates"

    settings = await graph.get(f"{base}/{BASELINE}/settingStates")
    one = await graph.get(f"{base}/{DEFENDER}")

    assert [s["state"] for s in settings["value"]] == ["nonCompliant", "compliant", "notApplicable"]
    assert one["displayName"] == "Defender" and one["settingCount"] == 1
    for tail in (str(uuid.uuid4()), f"{uuid.uuid4()}/settingStates"):
        with pytest.raises(APIError) as raised:
            await graph.get(f"{base}/{tail}")
        assert raised.value.response_status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([policy(BASELINE, "B", "failing", [])], 400),
        ([policy(BASELINE, "B", "compliant", [setting("X.Y", "bad")])], 400),
        ([policy(BASELINE, "B", "compliant", [{"state": "compliant"}])], 400),
        ([{**policy(BASELINE, "B", "compliant", []), "platformType": "amiga"}], 400),
    ],
)
def test_the_simulator_refuses_states_the_docs_do_not_have(
    sim: SimAdmin, body: list[dict[str, Any]], status: int
) -> None:
    managed_id = managed_device(sim)
    with pytest.raises(SimAdminError) as raised:
        set_policy_states(sim, managed_id, body)
    assert raised.value.status == status


def test_the_simulator_keeps_states_only_for_existing_managed_devices(sim: SimAdmin) -> None:
    with pytest.raises(SimAdminError) as raised:
        set_policy_states(sim, str(uuid.uuid4()), BITLOCKER_OFF)
    assert raised.value.status == 404
