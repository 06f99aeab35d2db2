"""Judging a device against the tenant's compiled Conditional Access policies. Pure.

A policy's verdict for a device is one of:
- FAILS: the device is in the policy's device scope and does not meet its device controls (or the
  policy blocks it): whenever the policy's other conditions hold (users, apps, locations, risk,
  which devicemon does not judge), access from this device is refused;
- PASSES: the device meets the device controls;
- NOT_APPLICABLE: the policy is disabled, the device is outside its platforms or device filter,
  or the policy asks nothing of devices (no device control, a device control offered beside a
  non-device one under OR, a block that targets users, apps or places rather than devices);
- NOT_UNDERSTOOD: the answer depends on something devicemon does not understand (a filter rule,
  an undocumented value, a device property that was not read); the notes say what.

The device is Graph's device JSON (see device_filter_eval.py). The device controls are judged as
evaluation.py judges them: "Require device to be marked as compliant" reads `isCompliant`,
"Require Microsoft Entra hybrid joined device" `trustType == ServerAd`; a disabled device or a
pending hybrid join passes neither. The platform of a device is read from `operatingSystem`
(entra-docs `concept-conditional-access-conditions.md`: CA identifies the platform from what the
device reports; the default is all platforms).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from shared.core.ca_policies import (
    ALL_PLATFORMS,
    PLATFORMS,
    CompiledPolicy,
    DeviceControl,
    FilterMode,
    PolicyState,
    Requirement,
)
from shared.core.device_facts import compliance_of, hybrid_join_pending, join_type_of
from shared.core.device_filter import NotUnderstood
from shared.core.device_filter_eval import both, either, evaluate
from shared.core.models import Compliance, JoinType, Reason
from shared.core.scope import down_level_windows
from shared.core.snapshots import SnapshotError, device_from_json

# Reason code of a device inside the scope of a policy whose grant control is Block.
BLOCKED = "BLOCKED_BY_POLICY"


class Outcome(StrEnum):
    FAILS = "fails"
    PASSES = "passes"
    NOT_APPLICABLE = "notApplicable"
    NOT_UNDERSTOOD = "notUnderstood"


@dataclass(frozen=True, slots=True)
class PolicyVerdict:
    policy_id: str
    display_name: str
    state: PolicyState | None
    outcome: Outcome
    reasons: tuple[str, ...] = ()  # when FAILS: Reason codes, or BLOCKED
    notes: tuple[str, ...] = ()  # why, in words
    # The policy's conditions devicemon does not judge (users, applications, locations...): a
    # FAILS holds for the sign-ins they let through.
    conditional_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceVerdict:
    """One device against every policy."""

    verdicts: tuple[PolicyVerdict, ...]

    def _pick(
        self, outcome: Outcome, states: tuple[PolicyState | None, ...]
    ) -> tuple[PolicyVerdict, ...]:
        return tuple(v for v in self.verdicts if v.outcome is outcome and v.state in states)

    @property
    def blocking_policies(self) -> tuple[PolicyVerdict, ...]:
        """Enforced policies whose device controls the device fails."""
        return self._pick(Outcome.FAILS, (PolicyState.ENABLED,))

    @property
    def report_only_failures(self) -> tuple[PolicyVerdict, ...]:
        """Report-only policies the device would fail if they were enforced."""
        return self._pick(Outcome.FAILS, (PolicyState.REPORT_ONLY,))

    @property
    def undecided(self) -> tuple[PolicyVerdict, ...]:
        """Policies that are (or may be) in force and that devicemon could not decide."""
        states = (PolicyState.ENABLED, PolicyState.REPORT_ONLY, None)
        return self._pick(Outcome.NOT_UNDERSTOOD, states)

    @property
    def eligible(self) -> bool | None:
        """False when an enforced policy blocks the device; None when one that may be enforced
        could not be decided; True otherwise (report-only failures do not block)."""
        if self.blocking_policies:
            return False
        unsure = self._pick(Outcome.NOT_UNDERSTOOD, (PolicyState.ENABLED, None))
        return None if unsure else True


# operatingSystem as Entra writes it (case and spaces ignored) to conditionalAccessDevicePlatform:
# "Windows", "iOS", "IPad", "AndroidForWork", "AndroidEnterprise" (groups-dynamic-membership.md
# device examples), "MacMDM" (Intune-enrolled Macs), "Linux"; the compliant control's "Linux
# Ubuntu" (concept-conditional-access-grant.md); "Windows Server ..." is Windows.
_OS_PLATFORMS = {
    "ios": "iOS",
    "ipados": "iOS",
    "ipad": "iOS",
    "iphone": "iOS",
    "macmdm": "macOS",
    "macos": "macOS",
    "macosx": "macOS",
    "linux": "linux",
    "ubuntu": "linux",
    "windowsphone": "windowsPhone",
}


def ca_platform(operating_system: object) -> str | None:
    """The CA device platform of an operatingSystem value; None when devicemon cannot name it
    (then only an `all` include with no exclusion decides the platform condition)."""
    if not isinstance(operating_system, str):
        return None
    name = operating_system.casefold().replace(" ", "")
    if name in _OS_PLATFORMS:
        return _OS_PLATFORMS[name]
    if name.startswith("android"):
        return "android"
    if name.startswith("windows") and not name.startswith(("windowsphone", "windowsmobile")):
        return "windows"
    return None


def _platform_scope(
    policy: CompiledPolicy, device: Mapping[str, object]
) -> tuple[bool | None, str]:
    if not policy.include_platforms:
        return True, ""
    system = device.get("operatingSystem")
    platform = ca_platform(system)

    def listed(values: tuple[str, ...]) -> bool | None:
        answers: list[bool | None] = []
        for value in values:
            if value == ALL_PLATFORMS:
                answers.append(True)
            elif value in PLATFORMS and platform is not None:
                answers.append(value == platform)
            else:  # unknownFutureValue, an undocumented value, or a device we cannot place
                answers.append(None)
        return either(*answers)

    included = listed(policy.include_platforms)
    excluded = listed(policy.exclude_platforms)
    scope = both(included, None if excluded is None else not excluded)
    named = platform or f"operatingSystem {system!r}"
    if scope is None:
        condition = f"include {list(policy.include_platforms)}"
        if policy.exclude_platforms:
            condition += f", exclude {list(policy.exclude_platforms)}"
        return None, f"platform condition ({condition}) undecided for {named}"
    word = "in" if scope else "outside"
    return scope, f"{named} is {word} the platform condition"


def _filter_scope(policy: CompiledPolicy, device: Mapping[str, object]) -> tuple[bool | None, str]:
    found = policy.device_filter
    if found is None:
        return True, ""
    if isinstance(found.parsed, NotUnderstood):
        return None, f"device filter {found.rule!r} {found.parsed}"
    if found.mode is None:
        return None, "device filter mode not understood"
    match = evaluate(found.parsed, device)
    if match.matched is None:
        return None, f"device filter {found.rule!r} undecided: {'; '.join(match.unknown)}"
    inside = match.matched is (found.mode is FilterMode.INCLUDE)
    verb = "matches" if match.matched else "does not match"
    return inside, f"device {verb} the {found.mode.value} filter {found.rule!r}"


def _control_reasons(
    controls: tuple[DeviceControl, ...], every: bool, device: Mapping[str, object]
) -> tuple[str, ...]:
    """Why the device does not meet all (`every`) or one of the controls; empty when it does."""
    snapshot = device_from_json({**device, "id": str(device.get("id") or "-")})
    if hybrid_join_pending(snapshot):
        missing: tuple[str, ...] = (Reason.HYBRID_JOIN_PENDING,)
    else:
        compliance = compliance_of(snapshot, None)
        join = join_type_of(snapshot)
        failed: list[str] = []
        for control in controls:
            if control is DeviceControl.COMPLIANT and down_level_windows(snapshot):
                # "Only supports Windows 10+, iOS, Android, macOS, and Linux Ubuntu"
                # (concept-conditional-access-grant.md): as evaluation.py judges it.
                failed.append(Reason.COMPLIANCE_NOT_SUPPORTED)
            elif control is DeviceControl.COMPLIANT and compliance is not Compliance.COMPLIANT:
                unknown = compliance is Compliance.UNKNOWN
                failed.append(Reason.COMPLIANCE_UNKNOWN if unknown else Reason.NOT_COMPLIANT)
            if control is DeviceControl.HYBRID and join is not JoinType.HYBRID_JOINED:
                entra = join is JoinType.ENTRA_JOINED
                failed.append(Reason.NOT_HYBRID_JOINED if entra else Reason.NOT_JOINED)
        missing = tuple(failed) if every or len(failed) == len(controls) else ()
    disabled = (Reason.DEVICE_DISABLED,) if snapshot.account_enabled is False else ()
    return tuple(str(r) for r in (*disabled, *missing))


def judge(policy: CompiledPolicy, device: Mapping[str, object]) -> PolicyVerdict:
    """The policy's verdict on the device (see the module's note)."""

    def verdict(outcome: Outcome, *notes: str, reasons: tuple[str, ...] = ()) -> PolicyVerdict:
        kept = tuple(n for n in notes if n)
        return PolicyVerdict(
            policy.id,
            policy.display_name,
            policy.state,
            outcome,
            reasons,
            kept,
            policy.unjudged_conditions,
        )

    if policy.state is PolicyState.DISABLED:
        return verdict(Outcome.NOT_APPLICABLE, "the policy is disabled")
    platform_in, platform_note = _platform_scope(policy, device)
    filter_in, filter_note = _filter_scope(policy, device)
    readable = None if policy.problems else True
    scope = both(platform_in, filter_in, readable)
    scope_notes = (platform_note, filter_note, *policy.problems)
    if scope is False:
        return verdict(Outcome.NOT_APPLICABLE, *scope_notes)
    requirement = policy.requirement
    if policy.state is None or requirement is Requirement.NOT_UNDERSTOOD:
        return verdict(Outcome.NOT_UNDERSTOOD, *scope_notes)
    if requirement is Requirement.NONE:
        return verdict(Outcome.NOT_APPLICABLE, "no device control among the grant controls")
    if requirement is Requirement.ALTERNATIVE:
        others = ", ".join(policy.other_controls)
        return verdict(Outcome.NOT_APPLICABLE, f"device controls are an alternative to {others}")
    if requirement is Requirement.BLOCK:
        if not policy.device_scoped:
            return verdict(
                Outcome.NOT_APPLICABLE, "the block is not scoped by platform or device filter"
            )
        if scope is None:
            return verdict(Outcome.NOT_UNDERSTOOD, *scope_notes)
        return verdict(Outcome.FAILS, *scope_notes, reasons=(BLOCKED,))
    try:
        reasons = _control_reasons(policy.device_controls, requirement is Requirement.ALL, device)
    except SnapshotError as error:
        return verdict(Outcome.NOT_UNDERSTOOD, f"device JSON: {error}")
    unknown = ", ".join(policy.unknown_controls)
    if not reasons:
        if requirement is Requirement.ALL and unknown:
            return verdict(Outcome.NOT_UNDERSTOOD, f"also requires undocumented {unknown}")
        return verdict(Outcome.PASSES, *scope_notes)
    if scope is None:
        return verdict(Outcome.NOT_UNDERSTOOD, *scope_notes, f"would fail: {', '.join(reasons)}")
    if requirement is Requirement.ANY and unknown:
        return verdict(Outcome.NOT_UNDERSTOOD, f"undocumented {unknown} may be the way through")
    return verdict(Outcome.FAILS, *scope_notes, reasons=reasons)


def judge_device(policies: Iterable[CompiledPolicy], device: Mapping[str, object]) -> DeviceVerdict:
    """Every policy's verdict on one device, in the policies' order."""
    return DeviceVerdict(tuple(judge(policy, device) for policy in policies))
