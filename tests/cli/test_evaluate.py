"""`devicemon evaluate`: offline, pure; fixtures are device JSON as Graph returns it."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli import errors
from cli.main import main
from handlers.tenant_settings import refresh_tenant_settings
from local.graphsim.admin import SimAdmin
from local.graphsim.tenant_settings import set_tenant_settings
from shared.runtime import Runtime
from tests.cli.conftest import DATA, devicemon

NOW = "2026-11-29T12:00:00Z"
EVALUATED_AT = datetime(2026, 11, 29, 12, tzinfo=UTC)
LAPTOP = str(DATA / "entra-joined-noncompliant.json")
KIOSK = str(DATA / "hybrid-joined-no-intune.json")
SURFACE = str(DATA / "disabled-in-grace.json")


def evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["evaluate", *argv, "--now", NOW], env={})
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("file", "policy", "eligible", "reasons", "warnings"),
    [
        (LAPTOP, "compliant_or_hybrid", False, ["NOT_COMPLIANT", "NOT_HYBRID_JOINED"], []),
        (LAPTOP, "compliant", False, ["NOT_COMPLIANT"], []),
        (KIOSK, "compliant_or_hybrid", True, [], ["UNSUPPORTED_OS"]),
        (KIOSK, "hybrid", True, [], ["UNSUPPORTED_OS"]),
        (KIOSK, "compliant_and_hybrid", False, ["COMPLIANCE_NOT_SUPPORTED"], ["UNSUPPORTED_OS"]),
        (SURFACE, "compliant", False, ["DEVICE_DISABLED"], ["COMPLIANCE_GRACE_PERIOD"]),
    ],
)
def test_verdict_and_codes_as_json(
    capsys: pytest.CaptureFixture[str],
    file: str,
    policy: str,
    eligible: bool,
    reasons: list[str],
    warnings: list[str],
) -> None:
    code, out, _ = evaluate(capsys, file, "--policy", policy, "--json")

    assert code == errors.OK  # eligible or not, unless --exit-code
    verdict = json.loads(out)
    assert verdict["policy"] == policy
    assert verdict["eligible"] is eligible
    assert [r["code"] for r in verdict["reasons"]] == reasons
    assert [w["code"] for w in verdict["warnings"]] == warnings
    assert all(r["meaning"] and r["action"] for r in verdict["reasons"])


def test_explains_why_in_words_and_under_each_policy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = evaluate(capsys, LAPTOP)

    assert code == errors.OK
    lines = out.splitlines()
    assert lines[0] == "LAPTOP-0042 under compliant_or_hybrid: INELIGIBLE"
    assert "  NOT_COMPLIANT: Intune marks the device as not compliant." in lines
    assert any(line.startswith("    What to do: Open the device in Intune") for line in lines)
    table = out[out.index("Under each CA_POLICY") :].splitlines()[2:]
    assert [row.split()[:2] for row in table] == [
        ["compliant_or_hybrid", "INELIGIBLE"],
        ["compliant", "INELIGIBLE"],
        ["hybrid", "INELIGIBLE"],
        ["compliant_and_hybrid", "INELIGIBLE"],
    ]


def test_managed_device_from_a_second_file_and_policy_from_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    combined = json.loads((DATA / "disabled-in-grace.json").read_text())
    device, managed = tmp_path / "device.json", tmp_path / "managed.json"
    device.write_text(json.dumps(combined["device"] | {"accountEnabled": True}))
    managed.write_text(json.dumps({"value": [combined["managedDevice"]]}))

    code = main(
        ["evaluate", str(device), "--managed", str(managed), "--now", NOW, "--json"],
        env={"CA_POLICY": "compliant"},
    )
    verdict = json.loads(capsys.readouterr().out)

    assert code == errors.OK
    assert (verdict["policy"], verdict["eligible"], verdict["compliance"]) == (
        "compliant",
        True,
        "in_grace_period",
    )
    assert verdict["gracePeriodExpires"] == "2026-12-03T00:00:00Z"


@pytest.mark.parametrize(("file", "code"), [(LAPTOP, errors.INELIGIBLE), (KIOSK, errors.OK)])
def test_exit_code_option_tells_scripts_the_verdict(
    capsys: pytest.CaptureFixture[str], file: str, code: int
) -> None:
    assert evaluate(capsys, file, "--exit-code")[0] == code


def test_reads_standard_input(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setattr(
        "sys.stdin", io.StringIO((DATA / "hybrid-joined-no-intune.json").read_text())
    )

    code, out, _ = evaluate(capsys, "-", "--json")

    assert code == errors.OK
    assert json.loads(out)["displayName"] == "KIOSK-LOBBY"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([str(DATA / "missing.json")], "does not exist"),
        ([str(DATA / "not-a-device.json")], "not a Graph device: a device needs its object id"),
        ([LAPTOP, "--now", "yesterday"], "--now: not a timestamp"),
    ],
)
def test_bad_input_is_a_usage_error_that_says_what_is_wrong(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(["evaluate", *argv], env={})
    err = capsys.readouterr().err

    assert code == errors.USAGE
    assert message in err


def test_unknown_policy_is_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", LAPTOP, "--policy", "strict"], env={})

    assert code == errors.USAGE
    assert "invalid choice: 'strict'" in capsys.readouterr().err


# --- the tenant's Intune settings: stored by devicemon when a stack or tenant is configured ---


def checked_in_days_ago(tmp_path: Path, days: int) -> str:
    """The disabled-in-grace laptop, enabled and compliant, last checked in `days` ago."""
    combined = json.loads((DATA / "disabled-in-grace.json").read_text())
    managed = combined["managedDevice"] | {
        "complianceState": "compliant",
        "lastSyncDateTime": (EVALUATED_AT - timedelta(days=days)).isoformat(),
    }
    path = tmp_path / "device.json"
    path.write_text(
        json.dumps(
            {"device": combined["device"] | {"accountEnabled": True}, "managedDevice": managed}
        )
    )
    return str(path)


def test_without_table_storage_it_uses_intunes_defaults_and_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = evaluate(capsys, checked_in_days_ago(tmp_path, 6), "--json")
    text = evaluate(capsys, checked_in_days_ago(tmp_path, 6))[1]

    verdict = json.loads(out)
    assert code == errors.OK
    assert verdict["tenantSettings"]["deviceComplianceCheckinThresholdDays"] == 30
    assert (
        verdict["tenantSettings"]["source"] == "Intune's defaults: no Table storage is configured"
    )
    assert "INTUNE_CHECKIN_STALE" not in [w["code"] for w in verdict["warnings"]]
    assert "tenant settings  Intune's defaults: no Table storage is configured" in text


def test_unreadable_table_storage_leaves_the_defaults_and_says_why(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = "AccountName=devstoreaccount1;AccountKey=not base64!;TableEndpoint=http://127.0.0.1:9"
    code = main(
        ["evaluate", checked_in_days_ago(tmp_path, 6), "--now", NOW, "--json"],
        env={"TablesConnection": broken},
    )
    source = json.loads(capsys.readouterr().out)["tenantSettings"]["source"]

    assert code == errors.OK
    assert source.startswith("Intune's defaults: DevicemonSync could not be read (")
    assert "not a valid Table storage connection string" in source


async def test_with_a_stack_it_uses_the_settings_the_timer_stored(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    env: dict[str, str],
    runtime: Runtime,
    sim: SimAdmin,
) -> None:
    """A 10-day compliance status validity period read by the timer (through the simulator):
    six days without a check-in is past its warning time (5 days before), as the processor
    would judge it; under Intune's 30-day default it is not."""
    set_tenant_settings(sim, checkin_threshold_days=10)
    await refresh_tenant_settings(runtime)

    result = await devicemon(
        capsys, env, "evaluate", checked_in_days_ago(tmp_path, 6), "--now", NOW, "--json"
    )

    assert result.code == errors.OK, result.err
    verdict = json.loads(result.out)
    assert verdict["tenantSettings"]["deviceComplianceCheckinThresholdDays"] == 10
    assert verdict["tenantSettings"]["source"].startswith("stored by devicemon: read from Graph ")
    assert "INTUNE_CHECKIN_STALE" in [w["code"] for w in verdict["warnings"]]


@pytest.mark.parametrize(("lead_hours", "at_risk"), [("72", True), ("24", False)])
def test_a_grace_period_ending_within_the_lead_is_a_risk(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, lead_hours: str, at_risk: bool
) -> None:
    """Intune's grace period ends 2026-12-03T00:00Z; two days before, the device is at risk
    under the default 72-hour AT_RISK_LEAD_HOURS and not yet under 24."""
    combined = json.loads((DATA / "disabled-in-grace.json").read_text())
    path = tmp_path / "grace.json"
    path.write_text(
        json.dumps(combined | {"device": combined["device"] | {"accountEnabled": True}})
    )
    argv = ["evaluate", str(path), "--now", "2026-12-01T00:00:00Z"]
    env = {"AT_RISK_LEAD_HOURS": lead_hours}

    code = main([*argv, "--json"], env=env)
    verdict = json.loads(capsys.readouterr().out)
    main(argv, env=env)
    text = capsys.readouterr().out

    assert code == errors.OK and verdict["eligible"] is True
    assert verdict["riskReasons"] == (["GRACE_PERIOD_ENDING"] if at_risk else [])
    assert verdict["deadline"] == ("2026-12-03T00:00:00Z" if at_risk else None)
    assert ("At risk: access ends 2026-12-03T00:00:00Z" in text) is at_risk
    assert ("  GRACE_PERIOD_ENDING: " in text) is at_risk
