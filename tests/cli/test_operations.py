"""`devicemon sync`, `subscription` and `replay` against the Graph simulator, Azurite and the
broker: the same code paths as the function app's timer, upkeep and webhook."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from cli import errors
from local.graphsim.admin import SimAdmin
from shared.settings import Settings
from tests.cli.conftest import devicemon
from tests.conftest import CLIENT_STATE
from tests.graph_helpers import add_device
from tests.servicebus_helpers import body_json, drain_sessions


async def test_sync_shows_progress_and_queues_every_device(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], sim: SimAdmin, stack, app_tables: None
) -> None:
    devices = [add_device(sim, name=f"PC-{i}") for i in range(5)]
    env["SYNC_PAGE_SIZE"] = "2"

    result = await devicemon(capsys, env, "sync")

    assert result.code == errors.OK, result.err
    progress = [line for line in result.err.splitlines() if line.startswith("sync: page")]
    assert progress[0].startswith("sync: page 1, 2 changes queued")
    assert progress[-1].startswith("sync: page 3, 5 changes queued")
    assert result.out.startswith("Delta sync completed (baseline): 3 pages, 5 changes queued")
    queued = drain_sessions(stack.service_bus_connection, env["DEVICE_CHANGES_QUEUE"], wait=0.5)
    assert sorted(body_json(m)["device_id"] for m in queued) == sorted(d["id"] for d in devices)


async def test_sync_that_fails_exits_1_with_graphs_words(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], sim: SimAdmin, app_tables: None
) -> None:
    sim.add_fault(status=403, count=1, route="/devices/delta", code="Authorization_RequestDenied")

    result = await devicemon(capsys, env, "sync", "--json")

    assert result.code == errors.FAILED
    assert json.loads(result.out)["outcome"] == "failed"
    assert "sync: failed after 0 pages" in result.err
    assert "Authorization_RequestDenied" in result.err


async def test_subscription_show_ensure_refused_and_missing_url(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], sim: SimAdmin, app_tables: None
) -> None:
    shown = await devicemon(capsys, env, "subscription", "show", "--json")
    unset = await devicemon(capsys, env, "subscription", "ensure")
    sim.settings(refuseDeviceSubscriptions=400)
    env["NOTIFICATION_URL"] = "https://devicemon.example/api/graph/notifications"
    refused = await devicemon(capsys, env, "subscription", "ensure")
    after = await devicemon(capsys, env, "subscription", "show")

    assert (shown.code, json.loads(shown.out)["status"]) == (errors.OK, "absent")
    assert unset.code == errors.CONFIG and "NOTIFICATION_URL is not set" in unset.err
    assert refused.code == errors.FAILED
    assert refused.out.startswith("Graph subscription to /devices: refused")
    assert "is not supported for change notifications" in refused.out
    assert after.code == errors.OK and "refused" in after.out.splitlines()[0]


def notification(device_id: str, tenant: str, client_state: str = CLIENT_STATE) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "subscriptionId": "sub-1",
        "clientState": client_state,
        "changeType": "updated",
        "resource": f"Devices/{device_id}",
        "tenantId": tenant,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Device", "id": device_id},
    }


REPLAYS = [  # (notifications in the saved POST, exit code, lines printed)
    (["good"], errors.OK, ["HTTP 202", "queued a change for device {good}"]),
    (["good", "bad"], errors.OK, ["queued a change", "dropped 1: client_state_mismatch"]),
    (["bad"], errors.FAILED, ["HTTP 202", "dropped 1: client_state_mismatch"]),
    ('{"value": "none"}', errors.FAILED, ["HTTP 400", "malformedNotification"]),
]


async def test_replay_runs_the_webhooks_checks_and_queues_only_what_passes(
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    settings: Settings,
    tenant: str,
    tmp_path: Path,
    stack,
) -> None:
    accepted = []
    for position, (items, code, printed) in enumerate(REPLAYS):
        good, bad = str(uuid.uuid4()), str(uuid.uuid4())
        made = {
            "good": notification(good, tenant),
            "bad": notification(bad, tenant, client_state="guessed"),
        }
        body = items if isinstance(items, str) else json.dumps({"value": [made[i] for i in items]})
        saved = tmp_path / f"notification-{position}.json"
        saved.write_text(body)

        result = await devicemon(capsys, env, "replay", str(saved))

        assert result.code == code, (items, result.err)
        for text in printed:
            assert text.format(good=good) in result.out, (items, result.out)
        accepted += [good] if "good" in items else []

    queued = drain_sessions(stack.service_bus_connection, settings.device_changes_queue, wait=0.3)
    assert sorted(body_json(m)["device_id"] for m in queued) == sorted(accepted)
