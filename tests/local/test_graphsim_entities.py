"""graphsim's devices, managed devices, `$batch` and throttling against the docs: a Pending hybrid
device and every documented profileType, the managedDevice properties and enums of the v1.0
reference, request ids that differ only by case (json-batching.md), and throttling.md's 429
with a fractional Retry-After. Devices go through the real msgraph-sdk where its models
must read them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.devices.item.device_item_request_builder import DeviceItemRequestBuilder

from local import stack as local_stack
from local.graphsim.admin import AsyncSimAdmin, SimAdminError, scratch_tenant
from local.graphsim.entities import MANAGED_DEVICE_PROPS, PENDING_HYBRID
from local.graphsim.fleet import generate_fleet
from local.graphsim.sdk import make_graph_client
from local.graphsim.vocabulary import MANAGEMENT_AGENTS, PROFILE_TYPES


@pytest.fixture
async def admin(stack: local_stack.Stack) -> AsyncIterator[AsyncSimAdmin]:
    async with scratch_tenant(stack.graph_root, "entities") as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers={"Authorization": "Bearer t"}, timeout=30) as client:
        yield client


def _select(*names: str) -> RequestConfiguration[Any]:
    params = DeviceItemRequestBuilder.DeviceItemRequestBuilderGetQueryParameters(select=list(names))
    return RequestConfiguration(query_parameters=params)


async def test_a_pending_hybrid_device_reads_as_graph_sends_it(admin: AsyncSimAdmin) -> None:
    pending = await admin.upsert_pending_hybrid_device(displayName="BRANCH-PC-7")
    registered = await admin.upsert_device(displayName="BRANCH-PC-8", trustType="ServerAd")
    graph: Any = make_graph_client(admin.graph_url, max_retries=0, retry_delay=0)
    names = ("id", "trustType", "profileType", "alternativeSecurityIds", "registrationDateTime")

    read = await graph.devices.by_device_id(pending["id"]).get(_select(*names))
    # SupportArticles-docs pending-devices.md: ServerAd, profileType not RegisteredDevice, no
    # alternativeSecurityIds.
    assert (read.trust_type, read.profile_type, read.alternative_security_ids) == (
        "ServerAd",
        None,
        [],
    )
    assert read.registration_date_time is None

    done = await graph.devices.by_device_id(registered["id"]).get(_select(*names))
    assert done.profile_type == "RegisteredDevice"
    (key,) = done.alternative_security_ids
    assert key.type == 2 and key.identity_provider is None and key.key  # device-delta.md


@pytest.mark.parametrize("profile_type", [p for p in PROFILE_TYPES if p is not None])
async def test_every_documented_profile_type_is_representable(
    admin: AsyncSimAdmin, http: httpx.AsyncClient, profile_type: str
) -> None:
    device = await admin.upsert_device(profileType=profile_type, operatingSystem="Linux")
    reply = await http.get(f"{admin.graph_url}/devices/{device['id']}?$select=profileType")
    assert reply.json()["profileType"] == profile_type


@pytest.mark.parametrize(
    ("props", "words"),
    [
        ({"profileType": "Laptop"}, "profileType"),
        ({"deviceOwnership": "corporate"}, "deviceOwnership"),
        ({"managementType": "sccm"}, "managementType"),
        ({"alternativeSecurityIds": None}, "alternativeSecurityIds"),
        ({"alternativeSecurityIds": [{"type": "2", "key": "a2V5"}]}, "alternativeSecurityId"),
        ({"registrationDateTime": "yesterday"}, "registrationDateTime"),
        ({"isManagementRestricted": "no"}, "isManagementRestricted"),
    ],
)
async def test_values_graph_does_not_document_are_refused(
    admin: AsyncSimAdmin, props: dict[str, Any], words: str
) -> None:
    with pytest.raises(SimAdminError) as refused:
        await admin.upsert_device(**props)
    assert refused.value.status == 400 and words in refused.value.body["error"]


async def test_documented_casing_and_ownership_are_accepted(
    admin: AsyncSimAdmin, http: httpx.AsyncClient
) -> None:
    # device.md lists lower-case values; tenants show them capitalised: both are accepted.
    for ownership, management in (("personal", "mdm"), ("Company", "MDM")):
        device = await admin.upsert_device(deviceOwnership=ownership, managementType=management)
        url = f"{admin.graph_url}/devices/{device['id']}?$select=deviceOwnership,managementType"
        assert (await http.get(url)).json() == {
            "@odata.context": f"{admin.graph_url}/$metadata#devices"
            "(deviceOwnership,managementType)/$entity",
            "deviceOwnership": ownership,
            "managementType": management,
        }


@pytest.mark.parametrize("agent", MANAGEMENT_AGENTS)
async def test_every_management_agent_reads_through_the_sdk(
    admin: AsyncSimAdmin, agent: str
) -> None:
    device = await admin.upsert_device()
    managed = await admin.upsert_managed_device(
        azureADDeviceId=device["deviceId"], managementAgent=agent
    )
    graph: Any = make_graph_client(admin.graph_url, max_retries=0, retry_delay=0)
    read = await graph.device_management.managed_devices.by_managed_device_id(managed["id"]).get()
    assert read.management_agent.value == agent
    co_managed = agent.startswith("configurationManager")
    features = read.configuration_manager_client_enabled_features
    assert (features is not None) == co_managed
    if co_managed:
        assert features.compliance_policy is True  # the compliance workload is on Intune


async def test_managed_devices_carry_every_documented_property(
    admin: AsyncSimAdmin, http: httpx.AsyncClient
) -> None:
    device = await admin.upsert_device()
    features = {
        "inventory": True,
        "modernApps": False,
        "resourceAccess": False,
        "deviceConfiguration": False,
        "compliancePolicy": False,
        "windowsUpdateForBusiness": False,
    }
    managed = await admin.upsert_managed_device(
        azureADDeviceId=device["deviceId"],
        managementAgent="configurationManagerClientMdm",
        configurationManagerClientEnabledFeatures=features,
        deviceEnrollmentType="windowsCoManagement",
        managementState="retirePending",
    )
    url = f"{admin.graph_url}/deviceManagement/managedDevices/{managed['id']}"
    body = (await http.get(url)).json()
    assert set(body) - {"@odata.context"} == set(MANAGED_DEVICE_PROPS)
    assert body["configurationManagerClientEnabledFeatures"] == features
    assert body["managementState"] == "retirePending"
    with pytest.raises(SimAdminError) as refused:
        await admin.patch_managed_device(managed["id"], deviceRegistrationState="joined")
    assert "deviceRegistrationState" in refused.value.body["error"]


def test_a_fleet_can_hold_pending_hybrid_devices() -> None:
    plain = generate_fleet(400, seed=3)
    mixed = generate_fleet(400, seed=3, pending_fraction=0.5)
    assert not any(d["profileType"] is None for d in plain.devices)
    assert all(d["alternativeSecurityIds"] for d in plain.devices)
    pending = [d for d in mixed.devices if d["profileType"] is None]
    assert pending and all({k: d[k] for k in PENDING_HYBRID} == PENDING_HYBRID for d in pending)
    linked = {m["azureADDeviceId"] for m in mixed.managed}
    assert not linked & {d["deviceId"] for d in pending}  # never enrolled in Intune


async def _batch(http: httpx.AsyncClient, admin: AsyncSimAdmin, requests: list[Any]) -> Any:
    return await http.post(f"{admin.graph_url}/$batch", json={"requests": requests})


async def test_batch_ids_that_differ_only_by_case_are_a_400(
    admin: AsyncSimAdmin, http: httpx.AsyncClient
) -> None:
    device = await admin.upsert_device(displayName="B")
    one = {"method": "GET", "url": f"/devices/{device['id']}?$select=displayName"}
    clash = await _batch(http, admin, [{"id": "a", **one}, {"id": "A", **one}])
    assert clash.status_code == 400
    assert clash.json()["error"]["code"] == "BadRequest"

    # dependsOn names an id without regard to case, like the ids themselves.
    chained = await _batch(
        http, admin, [{"id": "Step", **one}, {"id": "2", "dependsOn": ["step"], **one}]
    )
    assert [r["status"] for r in chained.json()["responses"]] == [200, 200]

    await admin.settings(batchResponseOrder="reversed")
    reversed_order = await _batch(http, admin, [{"id": "x", **one}, {"id": "y", **one}])
    assert [r["id"] for r in reversed_order.json()["responses"]] == ["y", "x"]


async def test_throttling_sends_the_documented_fractional_retry_after(
    admin: AsyncSimAdmin, http: httpx.AsyncClient
) -> None:
    device = await admin.upsert_device(displayName="T")
    await admin.throttle(count=2, route="/devices/{id}")
    reply = await http.get(f"{admin.graph_url}/devices/{device['id']}")
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "2.128"
    error = reply.json()["error"]
    assert (error["code"], error["message"]) == ("TooManyRequests", "Please retry again later.")
    inner = {k: error["innerError"][k] for k in ("code", "message", "status")}
    assert inner == {"code": "429", "message": "Please retry after", "status": "429"}

    # Inside a batch the item carries it.
    item = {"id": "1", "method": "GET", "url": f"/devices/{device['id']}"}
    (answer,) = (await _batch(http, admin, [item])).json()["responses"]
    assert (answer["status"], answer["headers"]["Retry-After"]) == (429, "2.128")
    await admin.throttle(count=1, retry_after=3, route="/devices/{id}")
    assert (await http.get(f"{admin.graph_url}/devices/{device['id']}")).headers[
        "Retry-After"
    ] == "3"
