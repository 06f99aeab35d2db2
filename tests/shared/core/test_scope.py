"""Issue 13 item 3: which devices each policy's device controls apply to.

entra-docs `concept-conditional-access-grant.md`: the compliant control "Only supports Windows 10+,
iOS, Android, macOS, and Linux Ubuntu devices"; the hybrid control "Only supports domain-joined
Windows down-level (before Windows 10) and Windows current (Windows 10+) devices". entra-docs
`concept-condition-filters-for-devices.md`: profileType "RegisteredDevice (default), SecureVM (used
for Windows VMs in Azure enabled with Microsoft Entra sign-in), Printer (used for printers), Shared
(used for shared devices), IoT (used for IoT devices)". Payloads are Graph device JSON."""

from __future__ import annotations

from typing import Any

import pytest

from shared.core.evaluation import EvaluationOptions, evaluate
from shared.core.events import transition_of
from shared.core.models import Policy, Reason, Transition, Warning_
from shared.core.records import DeviceRecord
from shared.core.scope import Platform, platform_of, targeted
from shared.core.snapshots import device_from_json
from tests.shared.core.payloads import DEVICE_GET as WINDOWS
from tests.shared.core.payloads import NOW


def verdict(policy: Policy, **changes: Any):
    return evaluate(device_from_json({**WINDOWS, **changes}), None, EvaluationOptions(policy), NOW)


@pytest.mark.parametrize(
    ("name", "platform"),
    [
        ("Windows", Platform.WINDOWS),
        ("Windows Server", Platform.WINDOWS),
        ("iOS", Platform.IOS),
        ("IPad", Platform.IOS),
        ("iPadOS", Platform.IOS),
        ("MacMDM", Platform.MACOS),
        ("Mac OS X", Platform.MACOS),
        ("macOS", Platform.MACOS),
        ("Android", Platform.ANDROID),
        ("AndroidForWork", Platform.ANDROID),
        ("AndroidEnterprise", Platform.ANDROID),
        ("Linux", Platform.LINUX),
        ("Ubuntu", Platform.LINUX),
        ("ChromeOS", Platform.OTHER),
        ("Windows Phone", Platform.OTHER),
        ("WindowsPhone", Platform.OTHER),
        ("", Platform.UNKNOWN),
        (None, Platform.UNKNOWN),
        ("SomethingNew", Platform.UNKNOWN),
    ],
)
def test_platform_of_operating_system(name: str | None, platform: Platform) -> None:
    assert platform_of(device_from_json({**WINDOWS, "operatingSystem": name})) is platform


@pytest.mark.parametrize("profile", ["SecureVM", "Printer", "IoT", "printer"])
@pytest.mark.parametrize("policy", list(Policy))
def test_devices_that_are_no_users_own_are_not_judged(profile: str, policy: Policy) -> None:
    result = verdict(policy, profileType=profile, isCompliant=False, accountEnabled=False)
    assert (result.eligible, result.reasons) == (True, ())
    assert Warning_.NOT_TARGETED in result.warnings


@pytest.mark.parametrize("policy", list(Policy))
def test_a_shared_device_is_judged_like_any_other(policy: Policy) -> None:
    # Users sign in on shared devices (Shared: "used for shared devices"), so the controls apply.
    result = verdict(policy, profileType="Shared", isCompliant=False, accountEnabled=False)
    assert not result.eligible
    assert Reason.DEVICE_DISABLED in result.reasons
    assert Warning_.NOT_TARGETED not in result.warnings


@pytest.mark.parametrize(
    ("os_name", "version", "policy", "judged"),
    [
        ("iOS", "17.1", Policy.HYBRID, False),
        ("Android", "14", Policy.COMPLIANT_AND_HYBRID, False),
        ("MacMDM", "14.1", Policy.HYBRID, False),
        ("iOS", "17.1", Policy.COMPLIANT, True),
        ("Linux", "22.04", Policy.COMPLIANT_OR_HYBRID, True),
        ("ChromeOS", "120", Policy.COMPLIANT, False),
        ("ChromeOS", "120", Policy.COMPLIANT_OR_HYBRID, False),
        ("Windows", "6.3.9600", Policy.HYBRID, True),
        ("Windows", "10.0.22631", Policy.COMPLIANT_AND_HYBRID, True),
        (None, None, Policy.HYBRID, True),
    ],
)
def test_platforms_the_policy_does_not_target_are_not_judged(
    os_name: str | None, version: str | None, policy: Policy, judged: bool
) -> None:
    changes = {"operatingSystem": os_name, "operatingSystemVersion": version}
    assert targeted(device_from_json({**WINDOWS, **changes}), policy) is judged
    result = verdict(policy, **changes)
    assert (Warning_.NOT_TARGETED not in result.warnings) is judged
    if not judged:
        assert result.eligible and result.reasons == ()


@pytest.mark.parametrize("compliant", [True, False, None])
@pytest.mark.parametrize(
    "policy", [Policy.COMPLIANT, Policy.COMPLIANT_AND_HYBRID, Policy.COMPLIANT_OR_HYBRID]
)
def test_windows_8_1_cannot_pass_the_compliant_control(
    policy: Policy, compliant: bool | None
) -> None:
    result = verdict(
        policy, isCompliant=compliant, trustType="Workplace", operatingSystemVersion="6.3.9600"
    )
    assert not result.eligible
    assert Reason.COMPLIANCE_NOT_SUPPORTED in result.reasons
    assert Reason.NOT_COMPLIANT not in result.reasons
    assert Warning_.UNSUPPORTED_OS in result.warnings


def test_windows_8_1_still_passes_the_hybrid_control_of_an_or_policy() -> None:
    result = verdict(
        Policy.COMPLIANT_OR_HYBRID,
        trustType="ServerAd",
        operatingSystemVersion="6.3.9600",
        alternativeSecurityIds=[{"type": 2, "key": "WAA1ADAAOQA6AD..."}],
    )
    assert result.eligible


@pytest.mark.parametrize("os_name", ["iOS", "Android", "MacMDM", "Linux"])
def test_under_an_or_policy_a_phone_fails_on_compliance_alone(os_name: str) -> None:
    """The hybrid control is Windows only: NOT_JOINED would be noise for a phone."""
    result = verdict(Policy.COMPLIANT_OR_HYBRID, operatingSystem=os_name, trustType="Workplace")
    assert result.reasons == (Reason.NOT_COMPLIANT,)


def record(warnings: tuple[str, ...], eligible: bool = True) -> DeviceRecord:
    return DeviceRecord(
        object_id=WINDOWS["id"], version=1, evaluated_at=NOW, eligible=eligible, reasons=(),
        warnings=warnings, policy="compliant", join_type="entra_joined", compliance="unknown",
        management="unknown", display_name="PRN-01", device_id=WINDOWS["deviceId"],
        trust_type="AzureAd", operating_system="Windows", operating_system_version="10.0",
        account_enabled=True, deleted=False, grace_period_expires=None,
        user_principal_name=None, managed_device_id=None, source="sync", correlation_id="",
        fingerprint="before",
    )  # fmt: skip


def test_a_deleted_printer_is_a_change_not_a_lost_alert() -> None:
    gone = evaluate(
        device_from_json({"id": WINDOWS["id"], "@removed": {"reason": "deleted"}}),
        None,
        EvaluationOptions(Policy.COMPLIANT),
        NOW,
    )
    assert transition_of(record(("NOT_TARGETED",)), gone, "after") is Transition.CHANGED
    assert transition_of(record(()), gone, "after") is Transition.LOST


def test_a_device_leaving_the_scope_is_not_restored_either() -> None:
    printer = verdict(Policy.COMPLIANT, profileType="Printer")
    assert transition_of(record((), eligible=False), printer, "after") is Transition.CHANGED
