"""`make stack`: devicemon running on the local stack, left up for trying the CLI by hand.

Starts Azurite, the AMQP broker, the Graph simulator and the dev host (function_app's HTTP and
Service Bus triggers), seeds a small tenant in the simulator, creates the Graph subscription,
takes a baseline delta sync and breaks one device so that a timeline has something to show.
Then it writes a local.settings.json that both `devicemon --settings FILE` and the dev host
read, prints what to type, prints each alert as it is published, and waits for Ctrl-C, which
stops everything it started and removes the settings file (its ports die with the stack).

One line on stdout starts with READY once everything is up, so scripts can wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shlex
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from local import stack as local_stack
from local.demo import TENANT, AlertWatcher, build_tenant, settings_env
from local.graphsim.admin import AsyncSimAdmin
from local.ports import free_port
from local.teams_sink import TeamsSink, demo_env

ROOT = local_stack.ROOT
READY = "devicemon stack ready"
# Written into the settings file so that a second run overwrites only a file of its own kind.
MARKER_KEY = "//devicemon"
MARKER = "written by `make stack` (local/up.py); removed when it stops"
PID_KEY = "//devicemonPid"
# Two devices that share a name, as a re-imaged machine leaves behind: `devicemon device
# SHARED-PC` lists both (exit 6) with what tells them apart. The old one has not signed in since
# spring 2025.
TWINS: list[dict[str, Any]] = [
    {
        "trustType": "AzureAd",
        "operatingSystem": "Windows",
        "operatingSystemVersion": "10.0.26100.2314",
        "registrationDateTime": "2026-10-01T14:03:00Z",
        "approximateLastSignInDateTime": "2026-11-24T08:00:00Z",
    },
    {
        "trustType": "Workplace",
        "operatingSystem": "Windows",
        "operatingSystemVersion": "10.0.19045.5131",
        "registrationDateTime": "2024-02-05T09:12:00Z",
        "approximateLastSignInDateTime": "2025-04-20T07:30:00Z",
    },
]
SETTLE_SECONDS = 60.0

log = logging.getLogger("devicemon.up")


class UpError(Exception):
    """A reason not to start, said in one line."""


def artifacts_dir() -> Path:
    return Path(os.environ.get("DEVICEMON_ARTIFACTS") or ROOT / ".artifacts") / "stack-up"


def _owner(path: Path) -> int | None:
    """The pid of the `make stack` that wrote the file; None when a person wrote it."""
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
        return int(values[PID_KEY]) if values.get(MARKER_KEY) == MARKER else None
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_writable(path: Path) -> None:
    """Never overwrite a local.settings.json that someone wrote by hand, nor one that another
    `make stack` still uses."""
    if not path.exists():
        return
    owner = _owner(path)
    if owner is None:
        raise UpError(
            f"{path} exists and was not written by `make stack`: move it away, or run "
            f"`{sys.executable} -m local.up --settings OTHER.json`"
        )
    if owner != os.getpid() and _alive(owner):
        raise UpError(f"another `make stack` (pid {owner}) is running with {path}")


def write_settings(path: Path, values: dict[str, str], port: int) -> None:
    document = {
        "IsEncrypted": False,
        "Values": {
            MARKER_KEY: MARKER,
            PID_KEY: str(os.getpid()),
            "FUNCTIONS_WORKER_RUNTIME": "python",
            **values,
        },
        "Host": {"LocalHttpPort": port},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    # It holds the webhook's secret (GRAPH_CLIENT_STATE): readable by its owner only.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
    os.replace(temporary, path)


def remove_settings(path: Path) -> None:
    if _owner(path) == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def notification_sample(client_state: str, device_id: str) -> dict[str, Any]:
    """A change notification as Graph POSTs it (Microsoft Graph docs, 'Receive change
    notifications through webhooks': a collection in `value`, each with the subscription's
    clientState, the resource path and resourceData's @odata.type and id)."""
    return {
        "value": [
            {
                "id": str(uuid.uuid4()),
                "subscriptionId": str(uuid.uuid4()),
                "clientState": client_state,
                "changeType": "updated",
                "resource": f"Devices/{device_id}",
                "tenantId": TENANT,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Device",
                    "@odata.id": f"Devices/{device_id}",
                    "id": device_id,
                },
            }
        ]
    }


async def subscribe_to_alerts(connection: str) -> None:
    """Create the topic subscription AlertWatcher reads (the broker makes one on first attach)
    before anything is published, so that no alert of the seeding goes unprinted."""
    from azure.servicebus.aio import ServiceBusClient

    client = ServiceBusClient.from_connection_string(connection)
    async with client, client.get_subscription_receiver("device-alerts", "audit"):
        pass


async def wait_until(check: Any, what: str, within: float = SETTLE_SECONDS) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise UpError(f"gave up after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


async def seed(sim: AsyncSimAdmin, api_url: str) -> dict[str, dict[str, Any]]:
    """The tenant, its subscription and baseline, and one device that lost its compliance."""
    from shared.runtime import current

    await sim.ensure()
    devices = await build_tenant(sim)
    for position, twin in enumerate(TWINS, start=1):
        device = {
            "id": str(uuid.uuid4()),
            "deviceId": str(uuid.uuid4()),
            "displayName": "SHARED-PC",
            "accountEnabled": True,
            "isCompliant": None,
            "isManaged": False,
            **twin,
        }
        await sim.upsert_device(notify=False, **device)
        devices[f"SHARED-PC#{position}"] = device
    store = await current().store()
    async with httpx.AsyncClient(timeout=30) as http:
        (await http.post(f"{api_url}/ops/subscription")).raise_for_status()

        async def subscribed() -> bool:
            health = (await http.get(f"{api_url}/health")).json()
            return bool(health["subscription"]["status"] == "active")

        await wait_until(subscribed, "the Graph subscription")
        (await http.post(f"{api_url}/ops/sync", params={"reason": "make stack"})).raise_for_status()

    async def evaluated() -> bool:
        return all([await store.get_state(d["id"]) for d in devices.values()])

    await wait_until(evaluated, "the baseline sync")
    laptop = devices["LAPTOP-0042"]
    await sim.patch_managed_device(laptop["managedId"], complianceState="noncompliant")
    await sim.flush_notifications()

    async def lost() -> bool:
        state = await store.get_state(laptop["id"])
        return state is not None and not state.record.eligible

    await wait_until(lost, "LAPTOP-0042's change notification")
    return devices


def usage(
    settings_path: Path, sample: Path, api_url: str, graph_root: str, surface: str
) -> list[str]:
    s = shlex.quote(str(settings_path))
    admin = f"{graph_root}/_sim/{TENANT}"
    return [
        f"  settings   {settings_path}  (the dev host's and the CLI's; removed on Ctrl-C)",
        f"  dev host   {api_url}  (GET /health, /devices, /devices/{{id}}; POST /ops/sync)",
        f"  Graph      {graph_root}/{TENANT}/v1.0  (tenant {TENANT}, admin API {admin})",
        f"  logs       {artifacts_dir()}",
        "",
        "Try (docs/cli.md walks through every command):",
        f"  devicemon --settings {s} fleet --ineligible",
        f"  devicemon --settings {s} device LAPTOP-0042",
        f"  devicemon --settings {s} device SHARED-PC        # two devices, one name: exit 6",
        f"  devicemon --settings {s} sync",
        f"  devicemon --settings {s} subscription show",
        f"  devicemon --settings {s} replay {shlex.quote(str(sample))}",
        f"  devicemon --settings {s} dlq show",
        f"  devicemon --settings {s} report --html fleet.html",
        "Break a device in the simulator, watch its alert arrive here, then see its timeline:",
        f"  curl -s -o /dev/null -X PATCH {admin}/devices/{surface} -H 'content-type: application/json' "
        """-d '{"accountEnabled": false}'""",
        f"  devicemon --settings {s} device SURFACE-SALES-3",
        "Ctrl-C stops everything.",
    ]


async def serve(settings_path: Path) -> int:
    check_writable(settings_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main_task is not None:
            main_task.cancel()  # a second Ctrl-C: stop waiting for in-flight work
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    logs = artifacts_dir()
    print("Starting Azurite, the AMQP broker, the Graph simulator and the dev host...", flush=True)
    with local_stack.start(log_dir=logs) as stack:
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        client_state = secrets.token_urlsafe(32)
        values = {
            **settings_env(stack, client_state),
            "NOTIFICATION_URL": f"{api}/graph/notifications",
            "LIFECYCLE_NOTIFICATION_URL": f"{api}/graph/lifecycle",
        }
        async with TeamsSink() as sink:
            values.update(demo_env(sink))
            # Before the app is imported: function_app's runtime reads its settings from here.
            os.environ.update(values)
            code = await _run(stack, settings_path, values, port, stop)
    print("Stopped: the stack, the dev host and the settings file are gone.", flush=True)
    return code


async def _run(
    stack: local_stack.Stack,
    settings_path: Path,
    values: dict[str, str],
    port: int,
    stop: asyncio.Event,
) -> int:
    from local.devhost import DevHost
    from shared.runtime import current

    watch: asyncio.Task[None] | None = None
    try:
        async with DevHost(
            "function_app:app",
            port=port,
            only={"http", "servicebus"},
            host_json=ROOT / "host.json",
            session_idle_timeout=0.2,
        ) as host:
            await host.wait_listening()
            await subscribe_to_alerts(stack.service_bus_connection)
            watch = asyncio.create_task(AlertWatcher(stack.service_bus_connection).run())
            async with AsyncSimAdmin(stack.graph_root, TENANT) as sim:
                seeding = asyncio.create_task(seed(sim, host.api_url))
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait({seeding, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not seeding.done():
                    seeding.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await seeding
                    stopped.cancel()
                    return 0
                stopped.cancel()
                devices = seeding.result()
            write_settings(settings_path, values, port)
            sample = artifacts_dir() / "notification.json"
            sample.write_text(
                json.dumps(
                    notification_sample(values["GRAPH_CLIENT_STATE"], devices["KIOSK-LOBBY"]["id"]),
                    indent=2,
                )
            )
            print(f"{READY}: {len(devices)} devices in tenant {TENANT}", flush=True)
            for line in usage(
                settings_path,
                sample,
                host.api_url,
                stack.graph_root,
                devices["SURFACE-SALES-3"]["id"],
            ):
                print(line, flush=True)
            print("Alerts as they are published:", flush=True)
            await stop.wait()
            print("Stopping...", flush=True)
    finally:
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch
        with contextlib.suppress(Exception):
            await current().close()
        remove_settings(settings_path)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local.up",
        description="Run devicemon on the local stack with a small seeded tenant until Ctrl-C.",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=ROOT / "local.settings.json",
        help="where to write the settings the CLI and the dev host read "
        "(default: local.settings.json at the repository root)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logs = artifacts_dir()
    logs.mkdir(parents=True, exist_ok=True)
    # The terminal is for the walkthrough; the app's and the SDKs' log lines go to a file.
    logging.basicConfig(
        level=logging.INFO,
        filename=logs / "app.log",
        filemode="w",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("azure", "uamqp", "httpx", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return asyncio.run(serve(args.settings.resolve()))
    except UpError as exc:
        print(f"make stack: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
