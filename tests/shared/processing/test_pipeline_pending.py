"""Issue 13 item 1 through the real path (Graph simulator, Azurite, the AMQP broker): a hybrid
device deleted in Entra ID comes back from Entra Connect as a new, Pending object with the same
deviceId, and that first sighting raises `lost`.

SupportArticles-docs `pending-devices.md`: "Microsoft Entra Connect Sync recognizes this change as
the device object being deleted in the on-premises Active Directory. Therefore, it deletes the
device in Microsoft Entra ID. ... Microsoft Entra Connect Sync creates a pending device object for
this device in Microsoft Entra ID. The device fails to complete the device registration process
because it was registered previously." entra-docs `concept-soft-delete-devices.md`: hybrid joined
devices "are hard deleted immediately"; Entra Connect recreates a device "matching on the same
DeviceId". Pending = ServerAd, profileType not RegisteredDevice, no alternativeSecurityIds
(entra-docs `how-to-hybrid-join-verify.yml`)."""

from __future__ import annotations

import uuid
from typing import Any

from local.graphsim.admin import SimAdmin
from shared.core.changes import DeviceChange
from shared.core.models import Source, Transition
from shared.runtime import Runtime
from tests.alert_helpers import ALERT_VALIDATOR
from tests.servicebus_helpers import body_json, drain_subscription


def change(object_id: str, change_type: str = "updated") -> DeviceChange:
    message_id = uuid.uuid4().hex
    return DeviceChange(
        device_id=object_id,
        change_type=change_type,
        source=Source.SYNC,
        message_id=message_id,
        correlation_id=message_id,
        received_at="2026-11-30T12:00:00Z",
    )


def registered_hybrid(sim: SimAdmin, **props: Any) -> dict[str, Any]:
    """A registered hybrid joined Windows device, eligible under compliant_or_hybrid by its join."""
    device = {
        "id": str(uuid.uuid4()),
        "deviceId": str(uuid.uuid4()),
        "displayName": "DESKTOP-FIN-02",
        "trustType": "ServerAd",
        "profileType": "RegisteredDevice",
        "onPremisesSyncEnabled": True,
        "isCompliant": None,
        "isManaged": False,
        "operatingSystem": "Windows",
        "operatingSystemVersion": "10.0.22631.4460",
        **props,
    }
    sim.upsert_device(notify=False, **device)
    return device


def synced_back_pending(sim: SimAdmin, old: dict[str, Any]) -> str:
    """What Entra Connect creates after the deletion: a new object, same deviceId, Pending."""
    new_id = str(uuid.uuid4())
    sim.upsert_pending_hybrid_device(
        notify=False,
        id=new_id,
        deviceId=old["deviceId"],
        displayName=old["displayName"],
        operatingSystem="Windows",
        operatingSystemVersion=old["operatingSystemVersion"],
    )
    return new_id


def alerts(runtime: Runtime, stack: Any) -> list[dict[str, Any]]:
    found = []
    for message in drain_subscription(
        stack.service_bus_connection, runtime.settings.device_alerts_topic, "audit"
    ):
        alert = body_json(message)
        ALERT_VALIDATOR.validate(alert)
        found.append(alert)
    return found


async def test_a_deleted_hybrid_device_synced_back_pending_alerts_on_both_objects(
    runtime: Runtime, sim: SimAdmin, stack: Any
) -> None:
    pipeline = await runtime.pipeline()
    old = registered_hybrid(sim)
    assert (await pipeline.process(change(old["id"]))).eligible is True

    sim.delete_device(old["id"], notify=False)
    deleted = await pipeline.process(change(old["id"], "deleted"))
    new_id = synced_back_pending(sim, old)
    pending = await pipeline.process(change(new_id))

    assert deleted.transition is Transition.LOST
    assert (pending.transition, pending.version, pending.reasons) == (
        Transition.LOST,
        1,
        ("HYBRID_JOIN_PENDING",),
    )
    gone, back = alerts(runtime, stack)
    assert gone["data"]["current"]["reasons"] == ["DEVICE_DELETED"]
    assert "Pending" in gone["data"]["current"]["advice"][0]["action"]
    assert back["subject"] == f"devices/{new_id}"
    assert back["id"] == pending.alert_id
    assert back["data"]["previous"] == {
        **back["data"]["previous"],
        "eligible": True,
        "reasons": [],
        "objectId": old["id"],
    }
    assert back["data"]["device"]["deviceId"] == old["deviceId"]
    assert "dsregcmd /leave" in back["data"]["current"]["advice"][0]["action"]
    assert back["data"]["current"]["summary"].startswith("Its hybrid join is pending")
    # A redelivery of the same change is the same state: no second alert.
    assert (await pipeline.process(change(new_id))).transition is Transition.UNCHANGED
    assert alerts(runtime, stack) == []


async def test_the_new_object_processed_before_the_old_ones_deletion_still_alerts(
    runtime: Runtime, sim: SimAdmin, stack: Any
) -> None:
    """Both changes arrive in one delta round and run in their own sessions: the new object can
    be evaluated while devicemon still holds the old one as eligible."""
    pipeline = await runtime.pipeline()
    old = registered_hybrid(sim)
    await pipeline.process(change(old["id"]))
    sim.delete_device(old["id"], notify=False)
    new_id = synced_back_pending(sim, old)

    outcome = await pipeline.process(change(new_id))
    await pipeline.process(change(old["id"], "deleted"))

    assert outcome.transition is Transition.LOST
    back, gone = alerts(runtime, stack)
    assert back["data"]["previous"]["objectId"] == old["id"]
    assert gone["data"]["current"]["reasons"] == ["DEVICE_DELETED"]


async def test_a_pending_device_devicemon_never_knew_eligible_is_recorded_quietly(
    runtime: Runtime, sim: SimAdmin, stack: Any
) -> None:
    """A new computer registering, or one Pending since before devicemon started: no access
    was lost that devicemon knew of."""
    pipeline = await runtime.pipeline()
    never_known = synced_back_pending(sim, {"deviceId": str(uuid.uuid4()), **_names()})
    was_blocked = registered_hybrid(sim, accountEnabled=False)
    await pipeline.process(change(was_blocked["id"]))
    sim.delete_device(was_blocked["id"], notify=False)
    await pipeline.process(change(was_blocked["id"], "deleted"))
    back = synced_back_pending(sim, was_blocked)

    first = await pipeline.process(change(never_known))
    second = await pipeline.process(change(back))

    assert [first.transition, second.transition] == [Transition.FIRST_SEEN] * 2
    assert [first.eligible, second.eligible] == [False, False]
    assert alerts(runtime, stack) == []


def _names() -> dict[str, str]:
    return {"displayName": "DESKTOP-NEW-01", "operatingSystemVersion": "10.0.22631.4460"}
