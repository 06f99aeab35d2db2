"""Every way the CLI was seen to break its word (issue 15 item 4): the exit code of docs/cli.md's
table and one line on stderr, against the real local stack, with unreachable services played by
closed ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from cli import errors
from cli.output import plural
from local import stack as local_stack
from local.graphsim.admin import SimAdmin
from local.ports import free_port
from local.stack import azurite_connection_string, broker_connection_string
from tests.cli.conftest import Result, devicemon
from tests.graph_helpers import add_device

ROOT = Path(__file__).resolve().parents[2]


def closed_graph() -> str:
    return f"http://127.0.0.1:{free_port()}/{'0' * 8}-0000-4000-8000-{'0' * 12}/v1.0"


def error_line(result: Result, command: str) -> str:
    """The one error line (progress notes may come before it), with no traceback."""
    errors_said = [line for line in result.err.splitlines() if ": error: " in line]
    assert len(errors_said) == 1, result.err
    assert errors_said[0].startswith(f"devicemon {command}: error: "), result.err
    assert result.err.rstrip("\n").endswith(errors_said[0]), result.err
    assert "Traceback" not in result.err
    return errors_said[0]


def table_exists(connection: str, name: str) -> bool:
    with TableServiceClient.from_connection_string(connection) as service:
        return any(service.query_tables(f"TableName eq '{name}'"))


async def test_graph_unreachable_during_sync_exits_5(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], app_tables: None
) -> None:
    env["GRAPH_BASE_URL"] = closed_graph()

    result = await devicemon(capsys, env, "sync")

    assert result.code == errors.UNREACHABLE
    assert "cannot reach Microsoft Graph" in error_line(result, "sync")


async def test_service_bus_unreachable_during_sync_exits_5_without_the_sdks_class_name(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], sim: SimAdmin, app_tables: None
) -> None:
    add_device(sim, name="PC-1")  # something to queue
    env["ServiceBusConnection"] = broker_connection_string(free_port())

    result = await devicemon(capsys, env, "sync")

    assert result.code == errors.UNREACHABLE
    line = error_line(result, "sync")
    assert "cannot reach Service Bus" in line and "(after 0 pages;" in line
    assert "ServiceBusConnectionError" not in result.err


async def test_service_bus_unreachable_for_dlq_exits_5(
    capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    env["ServiceBusConnection"] = broker_connection_string(free_port())

    result = await devicemon(capsys, env, "dlq", "show")

    assert result.code == errors.UNREACHABLE
    assert "cannot reach Service Bus" in error_line(result, "dlq")
    assert "ServiceBusConnectionError" not in result.err


async def test_replay_with_the_stack_down_says_service_bus_is_down(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    saved = tmp_path / "notification.json"
    down = {
        "GRAPH_CLIENT_STATE": "secret",
        "ServiceBusConnection": broker_connection_string(free_port()),
        "TablesConnection": azurite_connection_string(free_port()),
    }
    saved.write_text(
        json.dumps(
            {
                "value": [
                    {
                        "id": "1",
                        "subscriptionId": "sub-1",
                        "clientState": "secret",
                        "changeType": "updated",
                        "resource": "Devices/3f2c0b8e-1d7a-4c1e-9a51-0a7e6b2f9c11",
                        "resourceData": {
                            "@odata.type": "#Microsoft.Graph.Device",
                            "id": "3f2c0b8e-1d7a-4c1e-9a51-0a7e6b2f9c11",
                        },
                    }
                ]
            }
        )
    )

    result = await devicemon(capsys, down, "replay", str(saved))

    assert result.code == errors.UNREACHABLE
    assert "cannot reach Service Bus" in error_line(result, "replay")
    assert result.out == ""


@pytest.mark.parametrize(
    ("argv", "setting", "value"),
    [
        (["fleet"], "TablesConnection", "not a connection string"),
        (
            ["fleet"],
            "TablesConnection",
            "AccountName=x;AccountKey=not-base64!;TableEndpoint=http://h/x",
        ),
        (["fleet"], "TablesConnection__tableServiceUri", "http://127.0.0.1:1/devstoreaccount1"),
        (["dlq", "show"], "ServiceBusConnection", "not a connection string"),
        (["sync"], "ServiceBusConnection", "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k"),
    ],
    ids=["tables-garbage", "tables-key-not-base64", "tables-uri-http", "sb-garbage", "sb-no-key"],
)
def test_a_malformed_connection_exits_3_naming_the_setting(
    capsys: pytest.CaptureFixture[str], argv: list[str], setting: str, value: str
) -> None:
    env = {
        "TablesConnection": azurite_connection_string(free_port()),
        "ServiceBusConnection": broker_connection_string(free_port()),
    }
    if setting.startswith("TablesConnection"):
        del env["TablesConnection"]
    env[setting] = value

    from cli.main import main

    code = main(argv, env=env)
    err = capsys.readouterr().err

    assert code == errors.CONFIG, err
    assert err.startswith(f"devicemon {argv[0]}: error: {setting}")
    assert err.count("\n") == 1 and "ValueError" not in err


async def test_a_wrong_account_key_is_named_as_such_not_a_missing_role(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], stack: local_stack.Stack
) -> None:
    right = local_stack.AZURITE_KEY
    env["TablesConnection"] = stack.tables_connection.replace(right, "d3Jvbmcga2V5")

    result = await devicemon(capsys, env, "fleet")

    assert result.code == errors.CONFIG
    line = error_line(result, "fleet")
    assert "refused the account key in TablesConnection" in line
    assert "data role" not in line


def test_no_unclosed_session_noise_after_an_authentication_error(tmp_path: Path) -> None:
    # EnvironmentCredential is configured, so DefaultAzureCredential asks this authority, which
    # refuses the connection: an authentication error, the same on every machine.
    closed = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AZURE_TENANT_ID": "00000000-0000-4000-8000-000000000001",
        "AZURE_CLIENT_ID": "00000000-0000-4000-8000-000000000002",
        "AZURE_CLIENT_SECRET": "not-a-secret",
        "AZURE_AUTHORITY_HOST": f"https://127.0.0.1:{closed}",
        "TablesConnection__tableServiceUri": f"https://127.0.0.1:{closed}/devstoreaccount1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "cli", "fleet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )

    assert done.returncode == errors.CONFIG, done.stderr
    assert done.stderr.startswith("devicemon fleet: error: could not authenticate")
    assert done.stderr.count("\n") == 1, done.stderr  # no "Unclosed client session"


async def test_replay_of_a_file_that_is_not_json_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], tmp_path: Path
) -> None:
    saved = tmp_path / "saved.json"
    saved.write_text('{"value": [')

    result = await devicemon(capsys, env, "replay", str(saved))

    assert result.code == errors.USAGE
    assert f"{saved} is not JSON" in error_line(result, "replay")
    assert result.out == ""  # nothing was sent to the webhook


@pytest.mark.parametrize("target", ["", "   "], ids=["empty", "blank"])
def test_device_without_a_name_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], target: str
) -> None:
    from cli.main import main

    assert main(["device", target], env={}) == errors.USAGE
    assert "give an object id, a display name or a device id" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("count", "said"), [(0, "0 pages"), (1, "1 page"), (2, "2 pages"), (11, "11 pages")]
)
def test_plural(count: int, said: str) -> None:
    assert plural(count, "page") == said


async def test_sync_of_one_device_says_1_page_and_1_change(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], sim: SimAdmin, app_tables: None
) -> None:
    add_device(sim, name="PC-ONLY")

    result = await devicemon(capsys, env, "sync")

    assert result.code == errors.OK, result.err
    assert "sync: page 1, 1 change queued" in result.err
    assert result.out.startswith("Delta sync completed (baseline): 1 page, 1 change queued")


async def test_sync_names_the_url_it_reads(
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    sim: SimAdmin,
    stack: local_stack.Stack,
    app_tables: None,
) -> None:
    add_device(sim, name="PC-1")
    baseline = await devicemon(capsys, env, "sync")
    elsewhere = closed_graph()
    saved_link_at = env["GRAPH_BASE_URL"]
    env["GRAPH_BASE_URL"] = elsewhere  # not read by an incremental run: the saved link is

    incremental = await devicemon(capsys, env, "sync")

    assert baseline.err.startswith(
        f"sync: baseline of every device from {saved_link_at}/devices/delta;"
    )
    assert incremental.code == errors.OK, incremental.err
    first = incremental.err.splitlines()[0]
    assert first.startswith(f"sync: resuming from the saved delta link at {saved_link_at}/")
    assert elsewhere not in incremental.err
    assert "token" not in first  # the delta token stays out of the terminal


@pytest.mark.parametrize(
    "argv", [["sync"], ["subscription", "show"], ["subscription", "ensure"]], ids=" ".join
)
async def test_a_wrong_table_prefix_creates_no_table(
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    stack: local_stack.Stack,
    argv: list[str],
) -> None:
    env["TABLE_PREFIX"] = "x" + env["TABLE_PREFIX"]
    env["NOTIFICATION_URL"] = "https://devicemon.example/api/graph/notifications"

    result = await devicemon(capsys, env, *argv)

    assert result.code == errors.NOT_FOUND
    assert f"there is no {env['TABLE_PREFIX']}DevicemonSync table" in error_line(result, argv[0])
    assert not table_exists(stack.tables_connection, f"{env['TABLE_PREFIX']}DevicemonSync")


def test_a_reader_that_leaves_early_is_not_an_unreachable_service() -> None:
    # `devicemon fleet --csv | head -1`: the pipe closes before devicemon writes (here before it
    # has even started), and every write then fails with EPIPE.
    devicemon = subprocess.Popen(
        [sys.executable, "-m", "cli", "evaluate", "tests/cli/data/entra-joined-noncompliant.json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert devicemon.stdout is not None and devicemon.stderr is not None
    devicemon.stdout.close()
    err = devicemon.stderr.read()

    assert devicemon.wait(timeout=60) == errors.OK
    assert err == ""  # no "cannot reach", no "Exception ignored ... BrokenPipeError"
