"""Eligibility from the tenant's compiled Conditional Access policies (issue 14 item 4).

Policies in Graph's conditionalAccessPolicy shape (microsoft-graph-docs-contrib
`conditionalaccesspolicy.md`, `conditionalaccessgrantcontrols.md`), devices in `device-list.md`'s
shape. The base verdict is the CA_POLICY setting's, computed by evaluation.evaluate."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from shared.core.ca_policies import compile_policies, compile_policy
from shared.core.evaluation import EvaluationOptions, evaluate, fingerprint
from shared.core.models import (
    JUDGED_BY_POLICIES,
    JUDGED_BY_SETTING,
    DeviceSnapshot,
    Evaluation,
    Policy,
    PolicyRef,
    Reason,
    Warning_,
)
from shared.core.policy_eligibility import (
    CompiledPolicySet,
    apply_policies,
    conditions_phrase,
    policies_digest,
    policy_phrase,
)
from shared.core.snapshots import device_from_json
from tests.shared.core.payloads import NOW
from tests.shared.core.test_ca_policies_verdicts import IPHONE, WINDOWS

BREAK_GLASS = "5d7a2b1c-0000-4000-8000-00000000b6a5"
EVERYONE = {"includeUsers": ["All"], "excludeUsers": []}
ADMINS = {"includeUsers": [], "includeRoles": ["62e90394-69f5-4237-9190-012177145e10"]}


def make(
    number: int,
    controls: list[str],
    operator: str = "OR",
    state: str = "enabled",
    platforms: dict[str, list[str]] | None = None,
    device_filter: dict[str, str] | None = None,
    users: dict[str, Any] = EVERYONE,
) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-0000000000{number:02d}",
        "displayName": f"CA{number:02d}",
        "createdDateTime": "2026-01-05T09:00:00Z",
        "modifiedDateTime": None,
        "state": state,
        "conditions": {
            "clientAppTypes": ["all"],
            "applications": {"includeApplications": ["All"]},
            "users": users,
            "platforms": platforms,
            "devices": None if device_filter is None else {"deviceFilter": device_filter},
        },
        "grantControls": {"operator": operator, "builtInControls": controls},
    }


def policy_set(*policies: dict[str, Any]) -> CompiledPolicySet:
    return CompiledPolicySet(policies=tuple(compile_policies(list(policies))), read_at=NOW)


def judged(
    device_json: dict[str, Any],
    policies: CompiledPolicySet,
    setting: Policy = Policy.COMPLIANT_OR_HYBRID,
) -> tuple[Evaluation, Evaluation]:
    """(the setting's verdict, the policies' verdict) on one device."""
    device = device_from_json(device_json)
    base = evaluate(device, None, EvaluationOptions(policy=setting), NOW)
    return base, apply_policies(base, device, device_json, policies)


def ids(refs: tuple[PolicyRef, ...]) -> list[int]:
    return [int(ref.policy_id[-2:]) for ref in refs]


COMPLIANT = make(1, ["compliantDevice"])
HYBRID = make(2, ["domainJoinedDevice"])
EITHER = make(3, ["compliantDevice", "domainJoinedDevice"], operator="OR")
BOTH = make(4, ["compliantDevice", "domainJoinedDevice"], operator="AND")
MFA_OR_COMPLIANT = make(5, ["mfa", "compliantDevice"], operator="OR")
BLOCK_IOS = make(6, ["block"], platforms={"includePlatforms": ["iOS"], "excludePlatforms": []})
# -match is not in the filter page's operator list: devicemon cannot decide the scope
LAB = make(
    7,
    ["domainJoinedDevice"],
    device_filter={"mode": "include", "rule": 'device.displayName -match "^LAB"'},
)
REPORT_ONLY_HYBRID = make(8, ["domainJoinedDevice"], state="enabledForReportingButNotEnforced")
DISABLED_COMPLIANT = make(9, ["compliantDevice"], state="disabled")
ADMINS_COMPLIANT = make(10, ["compliantDevice"], users=ADMINS)
EXCLUDING_BREAK_GLASS = make(
    11, ["compliantDevice"], users={**EVERYONE, "excludeGroups": [BREAK_GLASS]}
)

# The policy a CA_POLICY setting stands for: the portal's grant with the same device controls.
EQUIVALENT = {
    Policy.COMPLIANT: COMPLIANT,
    Policy.HYBRID: HYBRID,
    Policy.COMPLIANT_OR_HYBRID: EITHER,
    Policy.COMPLIANT_AND_HYBRID: BOTH,
}
TRUST_TYPES = ("AzureAd", "ServerAd", "Workplace", None)
COMPLIANCE = (True, False, None)
ENABLED = (True, False)


# Windows 11 and Windows 8.1, which the compliant control does not support
# (concept-conditional-access-grant.md: "Windows 10+, iOS, Android, macOS, and Linux Ubuntu").
WINDOWS_VERSIONS = ("10.0.22631.4460", "6.3.9600")


@pytest.mark.parametrize("setting", list(Policy))
@pytest.mark.parametrize(
    ("trust_type", "is_compliant", "enabled", "version"),
    list(itertools.product(TRUST_TYPES, COMPLIANCE, ENABLED, WINDOWS_VERSIONS)),
)
def test_one_policy_for_everyone_judges_as_the_setting_it_mirrors(
    setting: Policy, trust_type: str | None, is_compliant: bool | None, enabled: bool, version: str
) -> None:
    """On a Windows device, one enforced policy with the setting's controls gives the
    setting's verdict and reasons, and names itself when it blocks."""
    device = {**WINDOWS, "trustType": trust_type, "isCompliant": is_compliant}
    device["operatingSystemVersion"] = version
    device["accountEnabled"] = enabled
    base, verdict = judged(device, policy_set(EQUIVALENT[setting]), setting)
    assert (verdict.eligible, verdict.reasons) == (base.eligible, base.reasons)
    assert verdict.judged_by == JUDGED_BY_POLICIES
    assert verdict.report_only_failures == ()
    number = int(EQUIVALENT[setting]["id"][-2:])
    assert ids(verdict.blocking_policies) == ([] if base.eligible else [number])
    if not base.eligible:
        assert verdict.blocking_policies[0].reasons == tuple(r.value for r in base.reasons)


@pytest.mark.parametrize("is_compliant", COMPLIANCE)
@pytest.mark.parametrize("enabled", ENABLED)
def test_a_policy_with_user_conditions_blocks_and_says_for_whom(
    is_compliant: bool | None, enabled: bool
) -> None:
    device = {**WINDOWS, "isCompliant": is_compliant, "accountEnabled": enabled}
    _, verdict = judged(device, policy_set(ADMINS_COMPLIANT, EXCLUDING_BREAK_GLASS))
    fails = is_compliant is not True or not enabled
    assert verdict.eligible is not fails
    refs = verdict.blocking_policies
    assert [(r.display_name, r.conditional_on) for r in refs] == (
        [("CA10", ("users",)), ("CA11", ("users",))] if fails else []
    )


def test_report_only_failures_are_listed_and_never_block() -> None:
    _, verdict = judged(WINDOWS, policy_set(COMPLIANT, REPORT_ONLY_HYBRID))
    assert verdict.eligible is True and verdict.reasons == ()
    assert verdict.blocking_policies == ()
    assert verdict.report_only_failures == (
        PolicyRef(REPORT_ONLY_HYBRID["id"], "CA08", ("NOT_HYBRID_JOINED",), ()),
    )
    assert verdict.judged_by == JUDGED_BY_POLICIES


@pytest.mark.parametrize("is_compliant", COMPLIANCE)
def test_an_undecided_enforced_policy_leaves_the_setting_to_decide(
    is_compliant: bool | None,
) -> None:
    device = {**WINDOWS, "isCompliant": is_compliant}
    base, verdict = judged(device, policy_set(LAB, COMPLIANT, REPORT_ONLY_HYBRID))
    if is_compliant is True:
        assert (verdict.eligible, verdict.reasons) == (base.eligible, base.reasons) == (True, ())
        assert verdict.warnings == (*base.warnings, Warning_.POLICY_NOT_UNDERSTOOD)
        assert verdict.judged_by == JUDGED_BY_SETTING
        assert ids(verdict.report_only_failures) == [8]
    else:
        # a policy devicemon understands blocks: the undecided one changes nothing
        assert verdict.eligible is False
        assert ids(verdict.blocking_policies) == [1]
        assert Warning_.POLICY_NOT_UNDERSTOOD not in verdict.warnings
        assert verdict.judged_by == JUDGED_BY_POLICIES


@pytest.mark.parametrize("setting", list(Policy))
def test_the_setting_decides_either_way_when_the_only_policy_is_undecided(
    setting: Policy,
) -> None:
    device = {**WINDOWS, "isCompliant": False}
    base, verdict = judged(device, policy_set(LAB), setting)
    assert (verdict.eligible, verdict.reasons) == (base.eligible, base.reasons)
    assert verdict.warnings.count(Warning_.POLICY_NOT_UNDERSTOOD) == 1
    assert verdict.blocking_policies == ()


def test_an_undecided_report_only_policy_is_no_warning() -> None:
    undecided = {**LAB, "state": "enabledForReportingButNotEnforced"}
    _, verdict = judged(WINDOWS, policy_set(COMPLIANT, undecided))
    assert verdict.eligible is True
    assert Warning_.POLICY_NOT_UNDERSTOOD not in verdict.warnings
    assert verdict.judged_by == JUDGED_BY_POLICIES


@pytest.mark.parametrize(
    "policies",
    [
        (),
        (DISABLED_COMPLIANT,),
        (MFA_OR_COMPLIANT,),  # the device control is an alternative to MFA
        (BLOCK_IOS,),  # a Windows device is outside the platform condition
        (DISABLED_COMPLIANT, MFA_OR_COMPLIANT, BLOCK_IOS),
    ],
    ids=["none", "disabled", "alternative", "other-platform", "all-three"],
)
@pytest.mark.parametrize("is_compliant", COMPLIANCE)
def test_a_device_no_policy_asks_anything_of_is_not_targeted(
    policies: tuple[dict[str, Any], ...], is_compliant: bool | None
) -> None:
    device = {**WINDOWS, "isCompliant": is_compliant}
    _, verdict = judged(device, policy_set(*policies))
    assert verdict.eligible is True and verdict.reasons == ()
    assert verdict.warnings.count(Warning_.NOT_TARGETED) == 1
    assert verdict.blocking_policies == verdict.report_only_failures == ()
    assert verdict.judged_by == JUDGED_BY_POLICIES


@pytest.mark.parametrize("profile", ["Printer", "SecureVM", "IoT"])
def test_a_device_no_user_signs_in_on_stays_not_targeted(profile: str) -> None:
    """entra-docs concept-condition-filters-for-devices.md lists these profile types besides
    RegisteredDevice; as under the setting (scope.py), no device-based policy judges them."""
    printer = {**WINDOWS, "isCompliant": None, "profileType": profile}
    base, verdict = judged(printer, policy_set(COMPLIANT, BOTH, REPORT_ONLY_HYBRID))
    assert Warning_.NOT_TARGETED in base.warnings
    assert (verdict.eligible, verdict.reasons, verdict.blocking_policies) == (True, (), ())
    assert verdict.warnings.count(Warning_.NOT_TARGETED) == 1
    assert verdict.report_only_failures == ()
    registered = {**printer, "profileType": "RegisteredDevice"}
    assert ids(judged(registered, policy_set(COMPLIANT, BOTH))[1].blocking_policies) == [1, 4]


def test_the_settings_not_targeted_goes_when_a_policy_applies() -> None:
    """Under the hybrid setting an iPhone is out of scope (the control is Windows only); a
    policy blocking iOS targets it."""
    base, verdict = judged(IPHONE, policy_set(BLOCK_IOS), Policy.HYBRID)
    assert Warning_.NOT_TARGETED in base.warnings and base.eligible
    assert Warning_.NOT_TARGETED not in verdict.warnings
    assert (verdict.eligible, verdict.reasons) == (False, (Reason.BLOCKED_BY_POLICY,))


def test_a_deleted_device_keeps_the_settings_verdict() -> None:
    deleted = DeviceSnapshot(object_id=WINDOWS["id"], deleted=True)
    base = evaluate(deleted, None, EvaluationOptions(), NOW)
    assert base.reasons == (Reason.DEVICE_DELETED,)
    # its last known JSON would pass the policy: a deleted object passes nothing
    assert apply_policies(base, deleted, WINDOWS, policy_set(COMPLIANT, BLOCK_IOS)) == base


@pytest.mark.parametrize("enabled", ENABLED)
def test_a_disabled_device_blocked_by_a_block_policy_says_both(enabled: bool) -> None:
    _, verdict = judged({**IPHONE, "accountEnabled": enabled}, policy_set(BLOCK_IOS))
    expected = (Reason.BLOCKED_BY_POLICY,)
    assert verdict.reasons == (expected if enabled else (Reason.DEVICE_DISABLED, *expected))


ORDER_POLICIES = (BOTH, BLOCK_IOS, HYBRID, COMPLIANT, REPORT_ONLY_HYBRID, ADMINS_COMPLIANT)


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(ORDER_POLICIES)), 3)))
def test_reasons_come_in_one_order_whatever_the_policies_order(order: tuple[int, ...]) -> None:
    iphone = {**IPHONE, "isCompliant": False, "trustType": "Workplace", "accountEnabled": False}
    chosen = [ORDER_POLICIES[i] for i in order]
    _, verdict = judged(iphone, policy_set(*chosen))
    _, in_tenant_order = judged(iphone, policy_set(*sorted(chosen, key=lambda p: p["id"])))
    assert verdict.reasons == in_tenant_order.reasons
    assert len(set(verdict.reasons)) == len(verdict.reasons)
    codes = {c for ref in verdict.blocking_policies for c in ref.reasons}
    assert {r.value for r in verdict.reasons} == codes | {"DEVICE_DISABLED"}
    # the policies are named in the order the tenant lists them
    assert [r.policy_id for r in verdict.blocking_policies] == [
        p["id"] for p in chosen if p["state"] == "enabled"
    ]


@pytest.mark.parametrize("device", [WINDOWS, IPHONE, {**WINDOWS, "isCompliant": False}])
def test_applying_twice_changes_nothing(device: dict[str, Any]) -> None:
    policies = policy_set(LAB, BLOCK_IOS, COMPLIANT, REPORT_ONLY_HYBRID)
    _, once = judged(device, policies)
    assert apply_policies(once, device_from_json(device), device, policies) == once


def test_the_rest_of_the_setting_verdict_is_kept() -> None:
    stale = {**WINDOWS, "approximateLastSignInDateTime": "2025-01-01T00:00:00Z"}
    base, verdict = judged(stale, policy_set(HYBRID))
    assert Warning_.STALE_SIGN_IN in verdict.warnings
    assert (verdict.join_type, verdict.compliance, verdict.management) == (
        base.join_type,
        base.compliance,
        base.management,
    )
    assert verdict.policy is base.policy


# --- the set's digest ---


def test_the_digest_ignores_the_listing_order_and_what_is_not_the_device_view() -> None:
    one = policy_set(COMPLIANT, HYBRID, LAB)
    assert one.digest == policy_set(LAB, COMPLIANT, HYBRID).digest
    touched = {**COMPLIANT, "modifiedDateTime": "2026-11-30T10:00:00Z"}
    assert one.digest == policy_set(touched, HYBRID, LAB).digest
    assert one.read_at == NOW and one.policies == tuple(compile_policies([COMPLIANT, HYBRID, LAB]))


@pytest.mark.parametrize(
    "changed",
    [
        {**COMPLIANT, "state": "enabledForReportingButNotEnforced"},
        {**COMPLIANT, "displayName": "CA01 renamed"},
        {**COMPLIANT, "grantControls": {"operator": "OR", "builtInControls": ["block"]}},
        make(1, ["compliantDevice"], platforms={"includePlatforms": ["iOS"]}),
        make(
            1,
            ["compliantDevice"],
            device_filter={"mode": "exclude", "rule": 'device.model -eq "X"'},
        ),
        make(1, ["compliantDevice"], users=ADMINS),
    ],
    ids=["state", "name", "grant", "platforms", "filter", "users"],
)
def test_the_digest_moves_with_any_policys_device_view(changed: dict[str, Any]) -> None:
    assert policy_set(COMPLIANT, HYBRID).digest != policy_set(changed, HYBRID).digest


def test_the_digest_is_a_function_of_the_policies_alone() -> None:
    compiled = tuple(compile_policy(p) for p in (COMPLIANT, HYBRID))
    assert CompiledPolicySet(compiled, None).digest == policies_digest(compiled)
    assert CompiledPolicySet(compiled, None) == CompiledPolicySet(compiled, None)
    assert policy_set().digest != policy_set(COMPLIANT).digest


# --- in words ---


@pytest.mark.parametrize(
    ("conditional_on", "phrase"),
    [
        ((), ""),
        (("users",), "for the users it selects"),
        (("applications", "users"), "for the applications and users it selects"),
        (
            ("clientAppTypes", "locations", "signInRiskLevels"),
            "for the client app types, locations and sign-in risk levels it selects",
        ),
        (("someFutureCondition",), "for the someFutureCondition it selects"),
    ],
)
def test_the_conditions_in_words(conditional_on: tuple[str, ...], phrase: str) -> None:
    assert conditions_phrase(conditional_on) == phrase


@pytest.mark.parametrize(
    ("ref", "phrase"),
    [
        (
            PolicyRef("id-1", "CA01", ("NOT_COMPLIANT",), ("users",)),
            "CA01 (NOT_COMPLIANT), for the users it selects",
        ),
        (PolicyRef("id-2", "", ("BLOCKED_BY_POLICY",), ()), "id-2 (BLOCKED_BY_POLICY)"),
        (PolicyRef("id-3", "CA03", (), ()), "CA03"),
    ],
)
def test_a_policy_in_words(ref: PolicyRef, phrase: str) -> None:
    assert policy_phrase(ref) == phrase


def test_a_renamed_blocking_policy_is_re_judged_and_stored_under_its_new_name() -> None:

    device_json = {**WINDOWS, "isCompliant": False}
    device = device_from_json(device_json)
    before, after = policy_set(COMPLIANT), policy_set({**COMPLIANT, "displayName": "CA01 renamed"})
    assert before.digest != after.digest  # the fleet is queued again after a rename
    old = evaluate(device, None, EvaluationOptions(), NOW, device_json=device_json, policies=before)
    new = evaluate(device, None, EvaluationOptions(), NOW, device_json=device_json, policies=after)
    assert [p.display_name for p in new.blocking_policies] == ["CA01 renamed"]
    # a new digest: the stored verdict (and its history) takes the new name
    assert fingerprint(device, None, old) != fingerprint(device, None, new)
