"""`devicemon policies --file` and `devicemon evaluate DEVICE.json --policies FILE`: offline, on
an export of the tenant table of tests/shared/core/test_ca_policies_tenant.py (fourteen policies
in the shape of conditionalaccessroot-list-policies.md, built from the docs' examples) and its
devices in the shape of device-list.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from cli import errors
from cli.main import main
from tests.shared.core.test_ca_policies_tenant import DEVICES, ELIGIBILITY, EXPECTED, POLICIES

EXPORTED = cast(list[dict[str, Any]], POLICIES["value"])


@pytest.fixture
def export(tmp_path: Path) -> str:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(POLICIES), encoding="utf-8")
    return str(path)


def device_file(tmp_path: Path, name: str, wrap: bool = False) -> str:
    path = tmp_path / f"{name}.json"
    device = DEVICES[name]
    path.write_text(json.dumps({"device": device} if wrap else device), encoding="utf-8")
    return str(path)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), env={})
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def numbers(items: list[dict[str, object]]) -> set[int]:
    return {int(str(item["id"])[-2:]) for item in items}


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_every_device_gets_the_documented_blocking_policies(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, export: str, name: str
) -> None:
    code, out, _ = cli(
        capsys, "evaluate", device_file(tmp_path, name), "--policies", export, "--json"
    )
    assert code == errors.OK
    verdict = json.loads(out)
    blocking, report_only, undecided = EXPECTED[name]
    assert numbers(verdict["blockingPolicies"]) == blocking
    assert numbers(verdict["reportOnlyFailures"]) == report_only
    assert numbers(verdict["undecided"]) == undecided
    assert verdict["policies"] == len(EXPORTED)
    # the verdict the processor would store (shared/core/policy_eligibility.py)
    eligible, reasons = ELIGIBILITY[name]
    assert (verdict["eligible"], tuple(r["code"] for r in verdict["reasons"])) == (
        eligible,
        reasons,
    )
    by_setting = not blocking and bool(undecided - {4, 12})
    assert verdict["judgedBy"] == ("ca_policy_setting" if by_setting else "ca_policies")
    warnings = [w["code"] for w in verdict["warnings"]]
    assert ("POLICY_NOT_UNDERSTOOD" in warnings) is by_setting
    assert verdict["tenantSettings"]["status"] == "default"
    assert (
        verdict["tenantSettings"]["source"] == "Intune's defaults: no Table storage is configured"
    )


def test_the_words_name_policies_reasons_and_what_is_not_judged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, export: str
) -> None:
    code, out, _ = cli(
        capsys,
        "evaluate",
        device_file(tmp_path, "entra-noncompliant", wrap=True),
        "--policies",
        export,
    )
    assert code == errors.OK
    lines = out.splitlines()
    assert lines[0] == "LAPTOP-0042 against 14 policies: INELIGIBLE"
    assert lines[1] == (
        "  judged by these policies; tenant settings: Intune's defaults: no Table storage is "
        "configured"
    )
    why = lines.index("Why")
    assert lines[why + 1].startswith("  NOT_COMPLIANT: ")
    blocking = lines.index("Blocking (enforced policies it fails)")
    assert (
        lines[blocking + 1] == "  CA01 Compliant or hybrid joined: NOT_COMPLIANT, NOT_HYBRID_JOINED"
    )
    assert "  CA06 Admins only from SAW: BLOCKED_BY_POLICY" in lines
    assert "    for the applications and users it selects" in lines
    report_only = lines.index("Report-only policies it would fail")
    assert lines[report_only + 1].startswith("  CA04 Windows hybrid joined (report-only): ")
    undecided = lines.index("Undecided (devicemon cannot tell)")
    assert lines[undecided + 1] == "  CA13 Lab machines hybrid: undecided"
    assert "not understood at character 20" in lines[undecided + 2]
    assert lines[-1] == "7 other policies: passed or not applicable"


@pytest.mark.parametrize(
    ("name", "code"), [("entra-noncompliant", 10), ("pending-hybrid", 10), ("saw", 0)]
)
def test_exit_code_says_blocked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, export: str, name: str, code: int
) -> None:
    argv = ("evaluate", device_file(tmp_path, name), "--policies", export, "--exit-code")
    assert cli(capsys, *argv)[0] == code


def test_a_plain_list_of_policies_is_an_export_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps(EXPORTED[:2]), encoding="utf-8")
    code, out, _ = cli(
        capsys,
        "evaluate",
        device_file(tmp_path, "android-personal"),
        "--policies",
        str(path),
        "--json",
    )
    assert code == errors.OK
    assert numbers(json.loads(out)["blockingPolicies"]) == {1, 2}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"policies": []}', "neither"),
        ("[1, 2]", "neither"),
        ("{not json", "is not JSON"),
    ],
)
def test_a_file_that_is_not_an_export_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    for argv in (
        ("policies", "--file", str(path)),
        ("evaluate", device_file(tmp_path, "saw"), "--policies", str(path)),
    ):
        code, _, err = cli(capsys, *argv)
        assert code == errors.USAGE and message in err


@pytest.mark.parametrize(
    ("setting", "eligible", "reasons"),
    [("compliant", True, []), ("hybrid", False, ["NOT_HYBRID_JOINED"])],
)
def test_where_a_policy_is_undecided_the_setting_decides(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    export: str,
    setting: str,
    eligible: bool,
    reasons: list[str],
) -> None:
    """The SAW fails no enforced policy but CA13's filter is not understood: CA_POLICY (here
    from --policy) decides, as the processor would, and says so."""
    argv = ("evaluate", device_file(tmp_path, "saw"), "--policies", export, "--policy", setting)
    code, out, _ = cli(capsys, *argv, "--json")
    verdict = json.loads(out)
    assert code == errors.OK
    assert (verdict["eligible"], [r["code"] for r in verdict["reasons"]]) == (eligible, reasons)
    assert verdict["judgedBy"] == "ca_policy_setting" and verdict["policy"] == setting
    assert "POLICY_NOT_UNDERSTOOD" in [w["code"] for w in verdict["warnings"]]
    assert numbers(verdict["undecided"]) == {13}
    text = cli(capsys, *argv)[1]
    assert f"judged by CA_POLICY {setting}: an enforced policy could not be decided" in text


def test_policies_file_lists_what_was_understood_and_what_was_not(
    capsys: pytest.CaptureFixture[str], export: str
) -> None:
    code, out, _ = cli(capsys, "policies", "--file", export)
    assert code == errors.OK
    lines = out.splitlines()
    assert lines[-1] == "14 policies, 2 with something devicemon does not understand"
    at = lines.index("CA03 MFA or compliant device  [enabled]")
    assert lines[at + 2] == "  requires: compliantDevice, or instead mfa: the device need not pass"
    at = lines.index("CA05 Block unsupported platforms  [enabled]")
    assert lines[at + 2] == "  requires: block access from the devices in its scope"
    assert lines[at + 3] == "  platforms: all, except android, iOS, windows, macOS, linux"
    at = lines.index("CA10 Block legacy authentication  [enabled]")
    assert "not scoped by platform or device filter" in lines[at + 2]
    assert lines[at + 4] == "  not judged: clientAppTypes, users"
    at = lines.index("CA13 Lab machines hybrid  [enabled]")
    assert lines[at + 2] == "  requires: domainJoinedDevice"
    assert lines[at + 6].startswith("  NOT UNDERSTOOD: device filter: not understood at character")
    at = lines.index("CA14 Macs compliant plus a future control  [enabled]")
    assert "  unknown controls: unknownFutureValue" in lines[at : at + 6]


def test_policies_file_as_json_is_describe(capsys: pytest.CaptureFixture[str], export: str) -> None:
    code, out, _ = cli(capsys, "policies", "--file", export, "--json")
    assert code == errors.OK
    listed = json.loads(out)["policies"]
    assert [p["displayName"] for p in listed] == [p["displayName"] for p in EXPORTED]
    by_name = {p["displayName"]: p for p in listed}
    assert by_name["CA07 Kiosks compliant"]["deviceFilter"] == {
        "mode": "include",
        "rule": 'device.extensionAttribute1 -eq "Kiosk"',
        "notUnderstood": None,
    }
    assert by_name["CA11 Old compliance policy"]["state"] == "disabled"
