"""The simulator's deviceManagement/settings through the real msgraph-sdk pipeline: the documented
shape (intune-deviceconfig-devicemanagementsettings.md) that the SDK's own model reads, the admin
knob that changes it, and the 403 of a token without the permission."""

from __future__ import annotations

import json

import pytest
from kiota_abstractions.api_error import APIError
from kiota_serialization_json.json_parse_node import JsonParseNode
from msgraph.generated.models.device_management_settings import DeviceManagementSettings

from local.graphsim.admin import SimAdmin, SimAdminError
from local.graphsim.tenant_settings import set_tenant_settings
from shared.adapters.graph import GraphJson
from shared.runtime import Runtime


@pytest.fixture
def graph(runtime: Runtime) -> GraphJson:
    return runtime.graph_json()


async def test_the_admin_centers_defaults_in_the_documented_shape(
    sim: SimAdmin, graph: GraphJson
) -> None:
    body = await graph.get("/deviceManagement/settings")
    assert body["@odata.context"].endswith("/$metadata#deviceManagement/settings")
    assert {k: v for k, v in body.items() if k != "@odata.context"} == {
        "@odata.type": "#microsoft.graph.deviceManagementSettings",
        "deviceComplianceCheckinThresholdDays": 30,
        "isScheduledActionEnabled": True,
        "secureByDefault": False,
    }
    typed = JsonParseNode(json.loads(json.dumps(body))).get_object_value(DeviceManagementSettings)
    assert typed.device_compliance_checkin_threshold_days == 30
    assert typed.secure_by_default is False


async def test_the_admin_knob_changes_what_graph_serves(sim: SimAdmin, graph: GraphJson) -> None:
    answer = set_tenant_settings(sim, checkin_threshold_days=10, secure_by_default=True)
    assert answer["deviceComplianceCheckinThresholdDays"] == 10 and answer["forbidden"] is False
    body = await graph.get("/deviceManagement/settings")
    assert (body["deviceComplianceCheckinThresholdDays"], body["secureByDefault"]) == (10, True)
    # A partial change leaves the rest as it was.
    set_tenant_settings(sim, secure_by_default=False)
    body = await graph.get("/deviceManagement/settings")
    assert (body["deviceComplianceCheckinThresholdDays"], body["secureByDefault"]) == (10, False)


async def test_forbidden_answers_403_until_lifted(sim: SimAdmin, graph: GraphJson) -> None:
    set_tenant_settings(sim, forbidden=True)
    with pytest.raises(APIError) as refused:
        await graph.get("/deviceManagement/settings")
    assert refused.value.response_status_code == 403
    set_tenant_settings(sim, forbidden=False)
    assert (await graph.get("/deviceManagement/settings"))["secureByDefault"] is False


@pytest.mark.parametrize(
    "body",
    [{"deviceComplianceCheckinThresholdDays": "10"}, {"secureByDefault": "yes"}, [1]],
)
def test_the_admin_knob_refuses_wrong_types(sim: SimAdmin, body: object) -> None:
    with pytest.raises(SimAdminError):
        sim._call("PUT", "/deviceManagement/settings", body)
