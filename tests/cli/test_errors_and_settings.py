"""What scripts and newcomers rely on: exit codes, messages that name the setting, --help, and
settings from the environment or a local.settings.json."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
)

from cli import errors
from cli.main import build_parser, main
from local.ports import free_port
from local.stack import azurite_connection_string
from shared.settings import Settings, SettingsError
from tests.cli.conftest import devicemon
from tests.cli.seed import ELIGIBLE, INELIGIBLE, Fleet, settings_env

ROOT = Path(__file__).resolve().parents[2]


def test_settings_env_round_trips_through_from_env(settings: Settings) -> None:
    full = replace(settings, notification_url="https://x.example/n", sync_page_size=7)
    assert Settings.from_env(settings_env(full)) == full


@pytest.mark.parametrize(
    ("argv", "env", "setting"),
    [
        (["fleet"], {}, "TablesConnection__tableServiceUri"),
        (["device", "LAPTOP-1"], {"CA_POLICY": "strict"}, "CA_POLICY='strict'"),
        (
            ["replay", "x.json"],
            {"TablesConnection": "UseDevelopmentStorage=true"},
            "GRAPH_CLIENT_STATE",
        ),
        (["sync"], {"TablesConnection": "UseDevelopmentStorage=true"}, "ServiceBusConnection"),
    ],
    ids=["no-tables", "bad-policy", "no-client-state", "no-service-bus"],
)
def test_missing_or_invalid_settings_exit_3_naming_the_setting(
    capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str], setting: str
) -> None:
    code = main(argv, env=env)
    err = capsys.readouterr().err

    assert code == errors.CONFIG
    assert setting in err
    assert err.startswith(f"devicemon {argv[0]}: error: ")


def test_unreachable_storage_exits_5_quickly_and_says_where(
    capsys: pytest.CaptureFixture[str],
) -> None:
    closed = azurite_connection_string(free_port())

    code = main(["fleet"], env={"TablesConnection": closed})
    err = capsys.readouterr().err

    assert code == errors.UNREACHABLE
    assert "cannot reach Table storage" in err
    assert "Traceback" not in err


async def test_a_table_that_does_not_exist_is_not_found(
    capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    env["TABLE_PREFIX"] = "nothingHere"

    result = await devicemon(capsys, env, "fleet")

    assert result.code == errors.NOT_FOUND
    assert "there is no nothingHereDeviceState table" in result.err


async def test_settings_file_values_under_the_environment(
    capsys: pytest.CaptureFixture[str],
    fleet: Fleet,
    fleet_env: dict[str, str],
    tmp_path: Path,
) -> None:
    local_settings = tmp_path / "local.settings.json"
    local_settings.write_text(json.dumps({"IsEncrypted": False, "Values": fleet_env}))
    wrong_prefix = {"TABLE_PREFIX": "nothingHere"}

    from_file = await devicemon(capsys, {}, "--settings", str(local_settings), "fleet", "--json")
    overridden = await devicemon(capsys, wrong_prefix, "fleet", "--settings", str(local_settings))
    missing = await devicemon(capsys, {}, "fleet", "--settings", str(tmp_path / "nope.json"))

    assert from_file.code == errors.OK, from_file.err
    assert json.loads(from_file.out)["summary"]["devices"] == ELIGIBLE + INELIGIBLE
    assert overridden.code == errors.NOT_FOUND  # the environment's TABLE_PREFIX won
    assert missing.code == errors.USAGE and "nope.json does not exist" in missing.err


@pytest.mark.parametrize("argv", [[], ["fleet", "--bogus"], ["fleet", "--json", "--csv"], ["nope"]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv, env={}) == errors.USAGE
    assert "usage: devicemon" in capsys.readouterr().err


def test_help_lists_commands_settings_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"], env={}) == errors.OK
    text = capsys.readouterr().out
    for command in ("device", "fleet", "evaluate", "sync", "subscription", "replay", "report"):
        assert f"    {command} " in text
    for code in errors.EXIT_CODES:
        assert f"\n  {code:>2}  " in text
    assert "TablesConnection__tableServiceUri" in text


def test_every_command_has_help_with_an_example() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    for name, sub in commands.choices.items():  # type: ignore[union-attr]
        text = sub.format_help()
        assert sub.description and "example" in text, name


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "devicemon"
    assert script.exists(), "run `pip install -e .` (the Makefile does it) to get `devicemon`"
    done = subprocess.run(
        [str(script), "evaluate", str(ROOT / "tests/cli/data/entra-joined-noncompliant.json")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )
    assert done.returncode == errors.OK, done.stderr
    assert done.stdout.startswith("LAPTOP-0042 under compliant_or_hybrid: INELIGIBLE")


def _forbidden() -> HttpResponseError:
    error = HttpResponseError(message="AuthorizationPermissionMismatch")
    error.status_code = 403
    return error


def _wrapped(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("retries exhausted") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("exc", "code", "fragment"),
    [
        (SettingsError("CA_POLICY='x' is not one of: …"), errors.CONFIG, "CA_POLICY"),
        (ClientAuthenticationError("no token"), errors.CONFIG, "az login"),
        (_forbidden(), errors.CONFIG, "access denied by Table storage (HTTP 403)"),
        (ServiceRequestError("refused"), errors.UNREACHABLE, "cannot reach Table storage"),
        (ConnectionRefusedError("refused"), errors.UNREACHABLE, "cannot reach Table storage"),
        (
            _wrapped(httpx.ConnectError("refused")),
            errors.UNREACHABLE,
            "cannot reach Microsoft Graph",
        ),
        (HttpResponseError(message="boom"), errors.FAILED, "Table storage failed: boom"),
        (ValueError("odd"), errors.FAILED, "ValueError: odd"),
    ],
)
def test_failures_map_to_exit_codes(exc: BaseException, code: int, fragment: str) -> None:
    failure = errors.classify(exc, "Table storage")
    assert failure.code == code
    assert fragment in str(failure)
