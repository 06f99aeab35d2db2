"""`make run`: the whole of devicemon on the local stack, with a story.

Starts Azurite, the AMQP broker, the Graph simulator and the dev host (running function_app's
triggers), creates a Graph subscription (the validation handshake hits our webhook), takes a
baseline of a small tenant, then breaks and repairs devices. Every change travels the real path:
simulator → change notification → webhook → queue → processor → Table storage → alert topic.
Each alert is printed as it is published; the demo ends with every device's timeline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from local import demo_deadlines, demo_modes
from local import stack as local_stack
from local.graphsim.admin import AsyncSimAdmin
from local.graphsim.compliance_states import set_policy_states
from local.ports import free_port
from local.teams_sink import TeamsSink, demo_env, print_new_cards, print_remediation, wait_for_cards

TENANT = "c0ffee00-0000-4000-8000-000000000042"
COLOR = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if COLOR else text


def bold(text: str) -> str:
    return paint(text, "1")


def dim(text: str) -> str:
    return paint(text, "2")


def say(text: str = "") -> None:
    print(text, flush=True)


FLEET: list[dict[str, Any]] = [
    {
        "name": "LAPTOP-0042",
        "trust": "AzureAd",
        "compliant": True,
        "upn": "adele.vance",
        "os": "10.0.22631.4460",
    },
    {
        "name": "DESKTOP-HR-07",
        "trust": "ServerAd",
        "compliant": None,
        "upn": None,
        "os": "10.0.19045.5131",
        "intune": False,
    },
    {
        "name": "SURFACE-SALES-3",
        "trust": "AzureAd",
        "compliant": True,
        "upn": "lynne.robbins",
        "os": "10.0.26100.2314",
    },
    {
        "name": "KIOSK-LOBBY",
        "trust": "ServerAd",
        "compliant": None,
        "upn": None,
        "os": "6.3.9600",
        "intune": False,
    },
    {
        "name": "CAD-WS-11",
        "trust": "ServerAd",
        "compliant": True,
        "upn": "megan.bowen",
        "os": "10.0.22631.4460",
        "agent": "configurationManagerClientMdm",
    },
    {
        "name": "PIXEL-BYOD-19",
        "trust": "Workplace",
        "compliant": False,
        "upn": "diego.siciliani",
        "os": "14",
        "osname": "Android",
        "ownership": "Personal",
    },
    {
        "name": "DESKTOP-FIN-02",
        "trust": "ServerAd",
        "compliant": None,
        "upn": None,
        "os": "10.0.22631.4460",
        "intune": False,
    },
]


def settings_env(stack: local_stack.Stack, client_state: str) -> dict[str, str]:
    return {
        "GRAPH_CLIENT_STATE": client_state,
        "ALLOWED_TENANT_IDS": TENANT,
        "ServiceBusConnection": stack.service_bus_connection,
        "TablesConnection": stack.tables_connection,
        "DEVICE_CHANGES_QUEUE": "device-changes",
        "DEVICE_ALERTS_TOPIC": "device-alerts",
        "GRAPH_BASE_URL": stack.graph_url(TENANT),
        "GRAPH_CREDENTIAL": "simulator",
        "CA_POLICY": "compliant_or_hybrid",
        "SYNC_SCHEDULE": "0 */1 * * * *",
        "SUBSCRIPTION_SCHEDULE": "0 0 */6 * * *",
        "SWEEP_SCHEDULE": "15 */1 * * * *",
        "POLICY_SCHEDULE": "0 5 * * * *",
        "TENANT_SETTINGS_SCHEDULE": "0 30 3 * * *",
        "DEADLINE_SCHEDULE": "0 */1 * * * *",
        # The policy step queues the re-evaluation at once (workers read the policies each time).
        "POLICY_CACHE_SECONDS": "0",
        "INTUNE_WATCH_SCHEDULE": "20 */15 * * * *",
    }


async def build_tenant(sim: AsyncSimAdmin) -> dict[str, dict[str, Any]]:
    devices: dict[str, dict[str, Any]] = {}
    for spec in FLEET:
        intune = spec.get("intune", True)
        device = {
            "id": str(uuid.uuid4()),
            "deviceId": str(uuid.uuid4()),
            "displayName": spec["name"],
            "trustType": spec["trust"],
            "isCompliant": spec["compliant"],
            "isManaged": intune,
            "accountEnabled": True,
            "operatingSystem": spec.get("osname", "Windows"),
            "operatingSystemVersion": spec["os"],
            "mdmAppId": "0000000a-0000-0000-c000-000000000000" if intune else None,
            "deviceOwnership": spec.get("ownership", "Company"),
            "onPremisesSyncEnabled": True if spec["trust"] == "ServerAd" else None,
        }
        await sim.upsert_device(notify=False, **device)
        if intune:
            managed = await sim.upsert_managed_device(
                azureADDeviceId=device["deviceId"],
                deviceName=spec["name"],
                complianceState="compliant" if spec["compliant"] else "noncompliant",
                managementAgent=spec.get("agent", "mdm"),
                userPrincipalName=f"{spec['upn']}@contoso.example" if spec["upn"] else "",
            )
            device["managedId"] = managed["id"]
        devices[spec["name"]] = device
    return devices


# LAPTOP-0042's compliance policy states once BitLocker is off, in the documented shape of
# deviceCompliancePolicyState and deviceCompliancePolicySettingState (microsoft-graph-docs-contrib,
# intune-deviceconfig-devicecompliancepolicysettingstate.md): the Windows policy fails on
# BitLockerEnabled (device health attestation) and the rest of it is met.
WINDOWS_POLICY_ID = "9c1f0d2e-4b3a-4c5d-8e7f-0a1b2c3d4e5f"


def windows_policy(bitlocker: str) -> list[dict[str, Any]]:
    state = "compliant" if bitlocker == "compliant" else "nonCompliant"
    return [
        {
            "id": WINDOWS_POLICY_ID,
            "displayName": "Windows 11 - company devices",
            "state": state,
            "platformType": "windows10AndLater",
            "version": 4,
            "settingStates": [
                {
                    "setting": "Windows10CompliancePolicy.BitLockerEnabled",
                    "settingName": "BitLockerEnabled",
                    "state": bitlocker,
                    "currentValue": "false" if bitlocker != "compliant" else "true",
                    "userPrincipalName": "adele.vance@contoso.example",
                    "sources": [
                        {"id": WINDOWS_POLICY_ID, "displayName": "Windows 11 - company devices"}
                    ],
                },
                {"setting": "Windows10CompliancePolicy.SecureBootEnabled", "state": "compliant"},
                {"setting": "Windows10CompliancePolicy.OsMinimumVersion", "state": "compliant"},
            ],
        }
    ]


def describe_compliance(data: dict[str, Any]) -> str:
    """The failing settings an alert carries (or why Intune could not be read), one line each."""
    compliance = data.get("compliance")
    if not compliance:
        return ""
    gone = compliance.get("unavailable")
    if gone:
        return f"    {dim('compliance details not read: ' + gone['reason'])}\n"
    return "".join(
        f"    failing: {s['sentence']} {dim('Fix: ' + s['fix'])}\n"
        for s in compliance.get("failingSettings", [])
    )


def describe_alert(alert: dict[str, Any]) -> str:
    data = alert["data"]
    device = data["device"]
    lost = alert["type"].endswith(".lost")
    if alert["type"].endswith((".at_risk", ".at_risk_cleared")):
        return describe_risk(alert)
    head = paint("✖ LOST", "1;31") if lost else paint("✔ RESTORED", "1;32")
    reasons = data["current"]["reasons"] if lost else data["previous"]["reasons"]
    why = ("because " if lost else "resolved: ") + ", ".join(reasons)
    where = f"{device['joinType'].replace('_', ' ')}, {device['operatingSystem']} {device['operatingSystemVersion']}"
    summary = data["current"].get("summary")
    before = data["previous"].get("objectId")
    return (
        f"  {head} {bold(device['displayName'] or device['objectId'])} ({where}) {why}\n"
        + (f"    {summary}\n" if lost and summary else "")
        + describe_compliance(data)
        + (f"    {dim('previous object ' + before + ' was eligible')}\n" if before else "")
        + f"    {dim('alert ' + alert['id'] + ' · detected by ' + data['detection']['source'] + ' · severity ' + data['severity'])}"
    )


def describe_risk(alert: dict[str, Any]) -> str:
    data = alert["data"]
    device, risk = data["device"], data["risk"]
    cleared = alert["type"].endswith("_cleared")
    head = paint("✔ RISK CLEARED", "1;32") if cleared else paint("⚠ AT RISK", "1;33")
    ends = f", access ends {risk['deadline']}" if risk.get("deadline") and not cleared else ""
    return (
        f"  {head} {bold(device['displayName'] or device['objectId'])}: {', '.join(risk['reasons'])}{ends}\n"
        + "".join(f"    {a['action']}\n" for a in risk.get("advice", [])[:1] if not cleared)
        + f"    {dim('alert ' + alert['id'] + ' · detected by ' + data['detection']['source'] + ' · severity ' + data['severity'])}"
    )


class AlertWatcher:
    """Receives from the topic through a subscription of its own, as any subscriber would."""

    def __init__(self, connection: str) -> None:
        self._connection = connection
        self.seen: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    async def run(self) -> None:
        from azure.servicebus.aio import ServiceBusClient

        async with ServiceBusClient.from_connection_string(self._connection) as client:
            receiver = client.get_subscription_receiver("device-alerts", "audit")
            async with receiver:
                while True:
                    for message in await receiver.receive_messages(
                        max_message_count=50, max_wait_time=1
                    ):
                        alert = json.loads(b"".join(message.body))
                        say(describe_alert(alert))
                        self.seen.append(alert)
                        await receiver.complete_message(message)
                        self._arrived.set()

    async def expect(self, count: int, within: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        target = len(self.seen) + count
        while len(self.seen) < target:
            self._arrived.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(
                    f"expected {count} more alert(s), saw {len(self.seen) - target + count}"
                )
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue


async def wait_until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the demo waited too long for the pipeline")
        await asyncio.sleep(0.1)


async def show_timelines(devices: dict[str, dict[str, Any]]) -> None:
    from shared.runtime import current

    store = await current().store()
    say(bold("\nTimelines (DeviceHistory, newest first)"))
    for name, device in devices.items():
        state = await store.get_state(device["id"])
        verdict = "unknown"
        if state:
            verdict = (
                paint("eligible", "32") if state.record.eligible else paint("INELIGIBLE", "31")
            )
        say(f"\n  {bold(name)} — now {verdict}")
        async for row in store.history(device["id"]):
            record = row.record
            when = record.evaluated_at.strftime("%H:%M:%S")
            mark = {"lost": paint("lost", "31"), "restored": paint("restored", "32")}.get(
                row.transition, row.transition
            )
            reasons = ",".join(record.reasons) or "-"
            warnings = f"  warnings: {','.join(record.warnings)}" if record.warnings else ""
            say(
                f"    v{record.version}  {when}  {mark:<20} {record.join_type:<14} {record.compliance:<16} reasons: {reasons}{warnings}"
            )


async def show_cli() -> None:
    """What an operator types next: the same Table storage through the devicemon CLI."""
    from cli.main import run as devicemon

    for argv in (["fleet"], ["device", "LAPTOP-0042"]):
        say(bold(f"\n$ devicemon {' '.join(argv)}"))
        await devicemon(argv)


async def scenario(
    stack: local_stack.Stack, client_state: str, api_url: str, sink: TeamsSink
) -> None:
    from shared.runtime import current

    async with AsyncSimAdmin(stack.graph_root, TENANT) as sim:
        await sim.ensure()
        devices = await build_tenant(sim)
        say(
            f"{bold('Tenant')} {TENANT}: {len(devices)} devices, policy {bold('compliant_or_hybrid')} "
            "(CA needs a compliant OR a hybrid joined device)"
        )

        async with httpx.AsyncClient(timeout=30) as http:
            (await http.post(f"{api_url}/ops/subscription")).raise_for_status()

            async def subscribed() -> bool:
                health = (await http.get(f"{api_url}/health")).json()
                return bool(health["subscription"]["status"] == "active")

            await wait_until(subscribed)
        say(
            f"{bold('Subscription')} created by devicemon's upkeep on /devices (changeType updated,deleted); "
            f"Graph's validation handshake answered by {api_url}/graph/notifications and /graph/lifecycle"
        )

        watcher = AlertWatcher(stack.service_bus_connection)
        watch = asyncio.create_task(watcher.run())
        store = await current().store()

        async def all_seen() -> bool:
            states = [await store.get_state(d["id"]) for d in devices.values()]
            return all(s is not None for s in states)

        async with httpx.AsyncClient() as http:
            response = await http.post(f"{api_url}/ops/sync", params={"reason": "demo"})
            response.raise_for_status()
        await wait_until(all_seen)
        say(
            f"{bold('Baseline')}: a delta sync over /devices queued every device once; each was evaluated "
            "(first sightings are recorded, not alerted, unless the device's previous object had "
            "access)\n"
        )

        async def step(title: str, action: Awaitable[Any], alerts: int) -> None:
            say(bold(f"▶ {title}"))
            await action
            await sim.flush_notifications()
            await watcher.expect(alerts)
            await wait_for_cards(sink, len(watcher.seen))
            print_new_cards(sink, say=say)
            if alerts == 0:
                await asyncio.sleep(1.5)  # give a wrong alert the chance to show up
                say(dim("  (no alert, as it should be)"))
            say()

        laptop, hr, surface, kiosk = (
            devices[n] for n in ("LAPTOP-0042", "DESKTOP-HR-07", "SURFACE-SALES-3", "KIOSK-LOBBY")
        )

        async def bitlocker_off() -> None:
            await set_policy_states(sim, laptop["managedId"], windows_policy("nonCompliant"))
            await sim.patch_managed_device(laptop["managedId"], complianceState="noncompliant")

        await step(
            "Intune marks LAPTOP-0042 noncompliant (BitLocker turned off)", bitlocker_off(), 1
        )
        await step(
            "DESKTOP-HR-07 loses its hybrid join (re-registered as an Entra registered device)",
            sim.patch_device(hr["id"], trustType="Workplace"),
            1,
        )
        await step(
            "An admin disables SURFACE-SALES-3 in Entra ID",
            sim.patch_device(surface["id"], accountEnabled=False),
            1,
        )
        await step("KIOSK-LOBBY is deleted from the directory", sim.delete_device(kiosk["id"]), 1)

        fin = devices["DESKTOP-FIN-02"]

        async def deleted_and_synced_back() -> None:
            await sim.delete_device(fin["id"])
            back = {"id": str(uuid.uuid4()), "deviceId": fin["deviceId"]}
            # Entra Connect's new object: the same deviceId, Pending (the simulator's documented
            # shape: SupportArticles-docs pending-devices.md, entra-docs how-to-hybrid-join-verify).
            await sim.upsert_pending_hybrid_device(
                **back,
                displayName=fin["displayName"],
                operatingSystem="Windows",
                operatingSystemVersion=fin["operatingSystemVersion"],
            )
            devices["DESKTOP-FIN-02 (synced back)"] = {**back, "displayName": fin["displayName"]}

        await step(
            "DESKTOP-FIN-02 is deleted in Entra ID; Entra Connect syncs it back as a new, Pending "
            "object (same deviceId): its user is blocked until it registers again",
            deleted_and_synced_back(),
            2,
        )

        async def replay_storm() -> None:
            for _ in range(5):
                await sim.patch_device(laptop["id"], displayName="LAPTOP-0042")

        await step(
            "Graph sends five more notifications for LAPTOP-0042 with nothing new",
            replay_storm(),
            0,
        )

        async def bitlocker_on() -> None:
            await set_policy_states(sim, laptop["managedId"], windows_policy("compliant"))
            await sim.patch_managed_device(laptop["managedId"], complianceState="compliant")

        await step(
            "LAPTOP-0042 is fixed (BitLocker on): Intune reports it compliant again",
            bitlocker_on(),
            1,
        )
        await step(
            "SURFACE-SALES-3 is enabled again",
            sim.patch_device(surface["id"], accountEnabled=True),
            1,
        )
        await demo_modes.both_modes(sim, api_url, watcher, devices)
        from local.demo_policies import policies_decide

        await policies_decide(sim, api_url, watcher)

        async with httpx.AsyncClient() as http:
            health = (await http.get(f"{api_url}/health")).json()
        say(
            f"{bold('Health')} (GET /api/health): {health['status']} — last sync {health['sync']['lagSeconds']}s ago, "
            f"{health['devices']['total']} devices, {health['devices']['ineligible']} ineligible"
            + (dim(f" · {'; '.join(health['problems'])}") if health["problems"] else "")
        )
        say()
        await demo_deadlines.deadline_story(sim, watcher)
        watch.cancel()
        say(
            bold(f"{len(watcher.seen)} alerts published")
            + dim(
                " (CloudEvents on topic device-alerts, validated schema in docs/alert.schema.json)"
            )
        )
        await print_remediation(
            current(), {name: d["id"] for name, d in devices.items()}, sim, say=say
        )
        await show_timelines(devices)
        await show_cli()


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    say(
        bold("devicemon demo")
        + dim(" — local stack: Azurite, AMQP broker, Graph simulator, dev host")
    )
    with local_stack.start() as stack:
        client_state = secrets.token_urlsafe(32)
        os.environ.update(settings_env(stack, client_state))
        from local.devhost import DevHost
        from shared.runtime import Runtime, current, use_runtime
        from shared.settings import Settings

        stack_sink = TeamsSink()
        sink = await stack_sink.__aenter__()
        os.environ.update(demo_env(sink))
        port = free_port()
        os.environ["NOTIFICATION_URL"] = f"http://127.0.0.1:{port}/api/graph/notifications"
        os.environ["LIFECYCLE_NOTIFICATION_URL"] = f"http://127.0.0.1:{port}/api/graph/lifecycle"
        # The runtime judges by the demo tenant's clock, which the deadline story moves ahead.
        use_runtime(Runtime(Settings.from_env(), clock=demo_deadlines.CLOCK))
        async with DevHost(
            "function_app:app",
            port=port,
            only={"http", "servicebus"},
            host_json="host.json",
            session_idle_timeout=0.2,
        ) as host:
            say(
                dim(
                    f"dev host on {host.base_url}; Tables :{stack.tables_port}, broker :{stack.broker_port}, Graph :{stack.graph_port}\n"
                )
            )
            try:
                await scenario(stack, client_state, host.api_url, sink)
            finally:
                await current().close()
                await stack_sink.__aexit__(None, None, None)
    say(dim("\nEverything the demo started has been stopped."))


if __name__ == "__main__":
    asyncio.run(main())
