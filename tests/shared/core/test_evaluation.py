from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.evaluation import (
    EvaluationOptions,
    classify,
    evaluate,
    fingerprint,
)
from shared.core.models import (
    Compliance,
    DeviceSnapshot,
    JoinType,
    ManagedDeviceSnapshot,
    Management,
    Policy,
    Reason,
    Transition,
    Warning_,
)
from shared.core.scope import windows_major_version

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TRUST = {
    "AzureAd": JoinType.ENTRA_JOINED,
    "ServerAd": JoinType.HYBRID_JOINED,
    "Workplace": JoinType.REGISTERED,
    None: JoinType.UNKNOWN,
}

# Which (trustType, isCompliant) pairs pass each policy's device controls, written out by hand
# from Microsoft's description of the grant controls (not derived from the code under test).
PASSES: dict[Policy, set[tuple[str | None, bool | None]]] = {
    Policy.COMPLIANT: {(t, True) for t in TRUST},
    Policy.HYBRID: {("ServerAd", c) for c in (True, False, None)},
    Policy.COMPLIANT_OR_HYBRID: {(t, True) for t in TRUST}
    | {("ServerAd", c) for c in (True, False, None)},
    Policy.COMPLIANT_AND_HYBRID: {("ServerAd", True)},
}


def device(**overrides: object) -> DeviceSnapshot:
    base: dict[str, object] = {
        "object_id": "obj-1",
        "device_id": "dev-1",
        "display_name": "LAPTOP-0042",
        "account_enabled": True,
        "is_compliant": True,
        "is_managed": True,
        "trust_type": "AzureAd",
        "operating_system": "Windows",
        "operating_system_version": "10.0.22631.4460",
        "approximate_last_sign_in": NOW - timedelta(days=1),
    }
    base.update(overrides)
    return DeviceSnapshot(**base)  # type: ignore[arg-type]


def run(
    dev: DeviceSnapshot,
    policy: Policy = Policy.COMPLIANT_OR_HYBRID,
    managed: ManagedDeviceSnapshot | None = None,
):
    return evaluate(dev, managed, EvaluationOptions(policy=policy), NOW)


@pytest.mark.parametrize(
    ("policy", "trust", "compliant", "enabled"),
    list(itertools.product(Policy, TRUST, (True, False, None), (True, False, None))),
)
def test_every_policy_join_compliance_enabled_combination(
    policy, trust, compliant, enabled
) -> None:
    result = run(device(trust_type=trust, is_compliant=compliant, account_enabled=enabled), policy)

    controls_met = (trust, compliant) in PASSES[policy]
    assert result.eligible is (controls_met and enabled is not False)
    assert result.join_type is TRUST[trust]
    assert (Reason.DEVICE_DISABLED in result.reasons) is (enabled is False)
    if controls_met:
        assert set(result.reasons) <= {Reason.DEVICE_DISABLED}
    else:
        assert set(result.reasons) - {Reason.DEVICE_DISABLED}, (
            "an ineligible device must say which control failed"
        )
    assert result.reasons == tuple(dict.fromkeys(result.reasons)), "no duplicate reasons"


@pytest.mark.parametrize(
    ("policy", "trust", "compliant", "expected"),
    [
        (
            Policy.COMPLIANT_OR_HYBRID,
            "AzureAd",
            False,
            (Reason.NOT_COMPLIANT, Reason.NOT_HYBRID_JOINED),
        ),
        (
            Policy.COMPLIANT_OR_HYBRID,
            "AzureAd",
            None,
            (Reason.COMPLIANCE_UNKNOWN, Reason.NOT_HYBRID_JOINED),
        ),
        (Policy.COMPLIANT_OR_HYBRID, "Workplace", False, (Reason.NOT_COMPLIANT, Reason.NOT_JOINED)),
        (Policy.COMPLIANT_OR_HYBRID, None, None, (Reason.COMPLIANCE_UNKNOWN, Reason.NOT_JOINED)),
        (Policy.COMPLIANT, "ServerAd", None, (Reason.COMPLIANCE_UNKNOWN,)),
        (Policy.COMPLIANT, "ServerAd", False, (Reason.NOT_COMPLIANT,)),
        (Policy.HYBRID, "AzureAd", True, (Reason.NOT_HYBRID_JOINED,)),
        (Policy.HYBRID, "Workplace", True, (Reason.NOT_JOINED,)),
        (
            Policy.COMPLIANT_AND_HYBRID,
            "AzureAd",
            False,
            (Reason.NOT_COMPLIANT, Reason.NOT_HYBRID_JOINED),
        ),
        (Policy.COMPLIANT_AND_HYBRID, "ServerAd", None, (Reason.COMPLIANCE_UNKNOWN,)),
    ],
)
def test_reasons_name_each_failed_control(policy, trust, compliant, expected) -> None:
    assert run(device(trust_type=trust, is_compliant=compliant), policy).reasons == expected


def test_disabled_comes_first_then_the_failed_controls() -> None:
    result = run(device(account_enabled=False, is_compliant=False))
    assert result.reasons == (
        Reason.DEVICE_DISABLED,
        Reason.NOT_COMPLIANT,
        Reason.NOT_HYBRID_JOINED,
    )


def test_disabled_but_otherwise_fine_is_ineligible_for_that_reason_alone() -> None:
    result = run(device(account_enabled=False))
    assert not result.eligible
    assert result.reasons == (Reason.DEVICE_DISABLED,)


@pytest.mark.parametrize("policy", list(Policy))
def test_deleted_device_is_ineligible_under_every_policy(policy) -> None:
    result = run(
        DeviceSnapshot(object_id="gone", trust_type="ServerAd", is_compliant=True, deleted=True),
        policy,
    )
    assert not result.eligible
    assert result.reasons == (Reason.DEVICE_DELETED,)
    assert result.join_type is JoinType.HYBRID_JOINED
    assert result.compliance is Compliance.UNKNOWN


def test_hybrid_device_with_is_compliant_null_passes_or_policy_without_compliance() -> None:
    result = run(device(trust_type="ServerAd", is_compliant=None, is_managed=False))
    assert result.eligible
    assert result.compliance is Compliance.UNKNOWN
    assert result.management is Management.UNMANAGED


def test_registered_compliant_device_passes_compliant_policy() -> None:
    result = run(device(trust_type="Workplace"), Policy.COMPLIANT)
    assert result.eligible
    assert result.join_type is JoinType.REGISTERED


@pytest.mark.parametrize(
    ("version", "warned"),
    [("6.3.9600", True), ("6.1.7601", True), ("10.0.19045", False), ("", False), (None, False)],
)
def test_down_level_windows_hybrid_device_is_a_warning_not_ineligibility(version, warned) -> None:
    result = run(
        device(trust_type="ServerAd", is_compliant=None, operating_system_version=version),
        Policy.HYBRID,
    )
    assert result.eligible
    assert (Warning_.UNSUPPORTED_OS in result.warnings) is warned


@pytest.mark.parametrize(
    ("os_name", "version", "major"),
    [
        ("Windows", "10.0.22631", 10),
        ("Windows", "6.3.9600", 6),
        ("windows 8.1", "6.3", 6),
        ("iOS", "17.1", None),
        (None, "10.0", None),
        ("Windows", "x.y", None),
    ],
)
def test_windows_major_version(os_name, version, major) -> None:
    assert (
        windows_major_version(device(operating_system=os_name, operating_system_version=version))
        == major
    )


def test_device_with_only_an_id_is_evaluated_without_crashing() -> None:
    result = run(DeviceSnapshot(object_id="bare"))
    assert not result.eligible
    assert result.join_type is JoinType.UNKNOWN
    assert result.management is Management.UNKNOWN
    assert result.reasons == (Reason.COMPLIANCE_UNKNOWN, Reason.NOT_JOINED)
    assert result.warnings == ()


def test_unknown_trust_type_string_is_unknown_join() -> None:
    assert run(device(trust_type="SomethingNew")).join_type is JoinType.UNKNOWN


def test_trust_type_is_case_insensitive() -> None:
    assert run(device(trust_type="serverad")).join_type is JoinType.HYBRID_JOINED


def test_grace_period_keeps_access_and_warns_with_the_expiry() -> None:
    expiry = NOW + timedelta(days=3)
    managed = ManagedDeviceSnapshot(
        "md-1",
        compliance_state="inGracePeriod",
        management_agent="mdm",
        grace_period_expires=expiry,
        last_sync=NOW,
    )
    result = run(device(is_compliant=True), managed=managed)
    assert result.eligible
    assert result.compliance is Compliance.IN_GRACE_PERIOD
    assert Warning_.COMPLIANCE_GRACE_PERIOD in result.warnings
    assert result.grace_period_expires == expiry


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("configurationManagerClientMdm", Management.CO_MANAGED),
        ("configurationManagerClientMdmEas", Management.CO_MANAGED),
        ("mdm", Management.INTUNE),
        # An agent Graph did not send says nothing: the Entra object has no Intune MDM app id.
        (None, Management.UNKNOWN),
    ],
)
def test_management_from_the_intune_record(agent, expected) -> None:
    managed = ManagedDeviceSnapshot(
        "md-1", compliance_state="compliant", management_agent=agent, last_sync=NOW
    )
    assert run(device(), managed=managed).management is expected


@pytest.mark.parametrize(
    ("is_managed", "mdm_app_id", "expected"),
    [
        (False, None, Management.UNMANAGED),
        (True, "0000000a-0000-0000-c000-000000000000", Management.INTUNE),
        (True, "other-mdm", Management.UNKNOWN),
        (None, None, Management.UNKNOWN),
    ],
)
def test_management_without_an_intune_record(is_managed, mdm_app_id, expected) -> None:
    assert run(device(is_managed=is_managed, mdm_app_id=mdm_app_id)).management is expected


def test_stale_sign_in_and_stale_intune_check_in_warn() -> None:
    managed = ManagedDeviceSnapshot(
        "md-1", compliance_state="compliant", last_sync=NOW - timedelta(days=31)
    )
    result = run(device(approximate_last_sign_in=NOW - timedelta(days=91)), managed=managed)
    assert result.eligible
    assert Warning_.STALE_SIGN_IN in result.warnings
    assert Warning_.INTUNE_CHECKIN_STALE in result.warnings


@pytest.mark.parametrize(
    ("state", "is_compliant", "mismatch"),
    [
        ("noncompliant", True, True),
        ("compliant", False, True),
        ("compliant", True, False),
        ("unknown", False, False),
    ],
)
def test_intune_and_entra_disagreeing_is_flagged(state, is_compliant, mismatch) -> None:
    managed = ManagedDeviceSnapshot("md-1", compliance_state=state, last_sync=NOW)
    result = run(device(is_compliant=is_compliant), managed=managed)
    assert (Warning_.COMPLIANCE_MISMATCH in result.warnings) is mismatch
    assert result.eligible is bool(is_compliant), (
        "eligibility follows Entra's isCompliant, which CA reads"
    )


@pytest.mark.parametrize(
    ("before", "after", "same_print", "expected"),
    [
        (None, True, False, Transition.FIRST_SEEN),
        (None, False, False, Transition.FIRST_SEEN),
        (True, False, False, Transition.LOST),
        (False, True, False, Transition.RESTORED),
        (False, False, False, Transition.CHANGED),
        (True, True, False, Transition.CHANGED),
        (True, True, True, Transition.UNCHANGED),
        (False, False, True, Transition.UNCHANGED),
    ],
)
def test_classify(before, after, same_print, expected) -> None:
    assert classify(before, "a", after, "a" if same_print else "b") is expected


def test_fingerprint_ignores_sign_in_time_but_not_what_matters() -> None:
    base = device()
    evaluation = run(base)
    later_sign_in = device(approximate_last_sign_in=NOW - timedelta(hours=1))
    assert fingerprint(base, None, evaluation) == fingerprint(
        later_sign_in, None, run(later_sign_in)
    )
    renamed = device(display_name="LAPTOP-0043")
    assert fingerprint(base, None, evaluation) != fingerprint(renamed, None, run(renamed))
    noncompliant = device(is_compliant=False)
    assert fingerprint(base, None, evaluation) != fingerprint(noncompliant, None, run(noncompliant))
