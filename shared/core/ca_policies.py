"""A Conditional Access policy's device view, compiled from Graph's conditionalAccessPolicy JSON.

Fields and values from microsoft-graph-docs-contrib `api-reference/v1.0/resources/`:
- `conditionalaccesspolicy.md`: `state` is `enabled`, `disabled` or
  `enabledForReportingButNotEnforced` (report-only);
- `conditionalaccessgrantcontrols.md`: `operator` `AND`/`OR`; `builtInControls` `block`, `mfa`,
  `compliantDevice`, `domainJoinedDevice`, `approvedApplication`, `compliantApplication`,
  `passwordChange`, `unknownFutureValue` (and `riskRemediation` behind the
  `Prefer: include-unknown-enum-members` header); `customAuthenticationFactors`, `termsOfUse`,
  and the `authenticationStrength` relationship;
- `conditionalaccessconditionset.md`: the conditions; devicemon reads `platforms` and `devices`
  and only names the others (users, applications, locations, risk...), which it does not judge;
- `conditionalaccessplatforms.md`: `includePlatforms`/`excludePlatforms` of `android`, `iOS`,
  `windows`, `windowsPhone`, `macOS`, `linux`, `all`, `unknownFutureValue`;
- `conditionalaccessdevices.md` / `conditionalaccessfilter.md`: `deviceFilter` `{mode: include |
  exclude, rule}`, the rule in the filter-for-devices language (device_filter.py).
And entra-docs `concept-conditional-access-grant.md`: "By default, Conditional Access requires all
selected controls" (a missing operator is AND); "Require one of the selected controls" is OR, so a
device control listed beside MFA (or any other non-device control) under OR is an alternative, not
a requirement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.core.device_filter import Node, NotUnderstood, parse


class PolicyState(StrEnum):
    ENABLED = "enabled"
    REPORT_ONLY = "enabledForReportingButNotEnforced"
    DISABLED = "disabled"


class DeviceControl(StrEnum):
    COMPLIANT = "compliantDevice"  # "Require device to be marked as compliant"
    HYBRID = "domainJoinedDevice"  # "Require Microsoft Entra hybrid joined device"


class Requirement(StrEnum):
    """What the grant controls ask of the device."""

    NONE = "none"  # no device control at all
    BLOCK = "block"  # access is blocked for whatever the policy covers
    ALL = "all"  # every listed device control (AND)
    ANY = "any"  # one of the listed device controls (OR, nothing else offered)
    ALTERNATIVE = "alternative"  # OR with a non-device control: the device need not pass
    NOT_UNDERSTOOD = "notUnderstood"


class FilterMode(StrEnum):
    INCLUDE = "include"
    EXCLUDE = "exclude"


# conditionalAccessDevicePlatform, without `all` and `unknownFutureValue`.
PLATFORMS = ("android", "iOS", "windows", "windowsPhone", "macOS", "linux")
ALL_PLATFORMS = "all"
# Built-in controls the grant page documents that ask nothing of the device.
NON_DEVICE_CONTROLS = frozenset(
    {"mfa", "approvedApplication", "compliantApplication", "passwordChange", "riskRemediation"}
)
_DEVICE_CONTROL_VALUES = frozenset(c.value for c in DeviceControl)
_MODES = frozenset(m.value for m in FilterMode)
_STATES = frozenset(s.value for s in PolicyState)
# Conditions devicemon reads; every other non-empty one is named as not judged.
_DEVICE_CONDITIONS = {"platforms", "devices", "@odata.type"}
# The deprecated device state condition (entra-docs concept-conditional-access-conditions.md:
# "Device state (deprecated)"), absent from the v1.0 conditionalAccessDevices page.
_DEVICE_STATE_KEYS = (
    "includeDevices",
    "excludeDevices",
    "includeDeviceStates",
    "excludeDeviceStates",
)


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    mode: FilterMode | None  # None: a mode the docs do not define (see CompiledPolicy.problems)
    rule: str
    parsed: Node | NotUnderstood


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """What one policy asks of devices, and what devicemon could not read of it."""

    id: str
    display_name: str
    state: PolicyState | None  # None: not a documented state (see problems)
    requirement: Requirement
    device_controls: tuple[DeviceControl, ...] = ()
    other_controls: tuple[str, ...] = ()  # mfa, termsOfUse, authenticationStrength, ...
    unknown_controls: tuple[str, ...] = ()  # unknownFutureValue or undocumented values
    include_platforms: tuple[str, ...] = ()  # empty: no platform condition (all platforms)
    exclude_platforms: tuple[str, ...] = ()
    device_filter: DeviceFilter | None = None
    unjudged_conditions: tuple[str, ...] = ()  # users, applications, locations, ...
    problems: tuple[str, ...] = ()  # what devicemon does not understand in this policy

    @property
    def device_scoped(self) -> bool:
        """Whether a device condition narrows the policy (a filter or a platform choice): only
        then is a block a verdict on the device rather than on users, apps or places."""
        narrowed = self.include_platforms not in ((), (ALL_PLATFORMS,)) or self.exclude_platforms
        return self.device_filter is not None or bool(narrowed)


def _strings(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    problems.append(f"{where} is not a list of strings")
    return ()


def _grant(
    grant: Any, problems: list[str]
) -> tuple[Requirement, tuple[DeviceControl, ...], tuple[str, ...], tuple[str, ...]]:
    """(requirement, device controls, other controls, unknown controls) of grantControls."""
    if grant is None:  # session controls only
        return Requirement.NONE, (), (), ()
    if not isinstance(grant, Mapping):
        problems.append("grantControls is not an object")
        return Requirement.NOT_UNDERSTOOD, (), (), ()
    built_in = _strings(grant.get("builtInControls"), "grantControls.builtInControls", problems)
    device = tuple(DeviceControl(c) for c in built_in if c in _DEVICE_CONTROL_VALUES)
    unknown = tuple(
        c
        for c in built_in
        if c != "block" and c not in NON_DEVICE_CONTROLS and c not in _DEVICE_CONTROL_VALUES
    )
    extras = [
        key
        for key in ("customAuthenticationFactors", "termsOfUse")
        if _strings(grant.get(key), f"grantControls.{key}", problems)
    ]
    if grant.get("authenticationStrength") is not None:
        extras.append("authenticationStrength")
    others = [c for c in built_in if c in NON_DEVICE_CONTROLS] + extras
    count = len(built_in) + len(extras)
    operator = grant.get("operator")
    if isinstance(operator, str) and operator.upper() in ("AND", "OR"):
        operator = operator.upper()
    elif operator is None or count <= 1:
        operator = "AND"  # "By default, Conditional Access requires all selected controls"
    else:
        problems.append(f"grantControls.operator {operator!r} is neither AND nor OR")
        return Requirement.NOT_UNDERSTOOD, device, tuple(others), unknown
    if "block" in built_in:
        if count > 1:
            problems.append("block is combined with other grant controls")
            return Requirement.NOT_UNDERSTOOD, device, tuple(others), unknown
        return Requirement.BLOCK, (), (), ()
    if operator == "OR" and others:
        # Any non-device control satisfies the policy: the device need not pass anything.
        requirement = Requirement.ALTERNATIVE if device else Requirement.NONE
        return requirement, device, tuple(others), unknown
    if not device:
        # Nothing known asks for a device; an unknown control might.
        if unknown:
            problems.append(f"grant control(s) {', '.join(unknown)} not documented")
            return Requirement.NOT_UNDERSTOOD, (), tuple(others), unknown
        return Requirement.NONE, (), tuple(others), unknown
    requirement = Requirement.ANY if operator == "OR" else Requirement.ALL
    return requirement, device, tuple(others), unknown


def _platforms(conditions: Mapping[str, Any], problems: list[str]) -> tuple[tuple[str, ...], ...]:
    platforms = conditions.get("platforms")
    if platforms is None:
        return (), ()
    if not isinstance(platforms, Mapping):
        problems.append("conditions.platforms is not an object")
        return (), ()
    include = _strings(platforms.get("includePlatforms"), "includePlatforms", problems)
    exclude = _strings(platforms.get("excludePlatforms"), "excludePlatforms", problems)
    if exclude and not include:
        problems.append("excludePlatforms without includePlatforms")
    return include, exclude


def _device_filter(conditions: Mapping[str, Any], problems: list[str]) -> DeviceFilter | None:
    devices = conditions.get("devices")
    if devices is None:
        return None
    if not isinstance(devices, Mapping):
        problems.append("conditions.devices is not an object")
        return None
    for key in _DEVICE_STATE_KEYS:
        if devices.get(key):
            problems.append(f"conditions.devices.{key} (the deprecated device state condition)")
    found = devices.get("deviceFilter")
    if found is None:
        return None
    if not isinstance(found, Mapping) or not isinstance(found.get("rule"), str):
        problems.append("conditions.devices.deviceFilter has no rule")
        return None
    mode = found.get("mode")
    known = FilterMode(mode) if isinstance(mode, str) and mode in _MODES else None
    if known is None:
        problems.append(f"deviceFilter.mode {mode!r} is neither include nor exclude")
    return DeviceFilter(known, found["rule"], parse(found["rule"]))


def _unjudged(conditions: Mapping[str, Any]) -> tuple[str, ...]:
    """The conditions that narrow the policy beyond devices: devicemon does not judge them, so a
    verdict holds for the sign-ins these conditions let through."""

    def everything(value: Any) -> bool:
        if isinstance(value, Mapping):
            return all(everything(v) for k, v in value.items() if k != "@odata.type")
        if isinstance(value, list) and [str(v).casefold() for v in value] == ["all"]:
            return True
        return value in (None, [], "")

    return tuple(
        key
        for key, value in conditions.items()
        if key not in _DEVICE_CONDITIONS and not everything(value)
    )


def compile_policy(policy: Mapping[str, Any]) -> CompiledPolicy:
    """The device view of one conditionalAccessPolicy as Graph returns it."""
    problems: list[str] = []
    raw_state = policy.get("state")
    state = PolicyState(raw_state) if isinstance(raw_state, str) and raw_state in _STATES else None
    if state is None:
        problems.append(f"state {raw_state!r} is not a documented policy state")
    conditions = policy.get("conditions")
    if not isinstance(conditions, Mapping):
        problems.append("the policy has no conditions object")
        conditions = {}
    requirement, device, others, unknown = _grant(policy.get("grantControls"), problems)
    include, exclude = _platforms(conditions, problems)
    return CompiledPolicy(
        id=str(policy.get("id", "")),
        display_name=str(policy.get("displayName") or ""),
        state=state,
        requirement=requirement,
        device_controls=device,
        other_controls=others,
        unknown_controls=unknown,
        include_platforms=include,
        exclude_platforms=exclude,
        device_filter=_device_filter(conditions, problems),
        unjudged_conditions=_unjudged(conditions),
        problems=tuple(problems),
    )


def compile_policies(
    listing: Mapping[str, Any] | Iterable[Mapping[str, Any]],
) -> list[CompiledPolicy]:
    """Every policy of a `GET /identity/conditionalAccess/policies` page (`{"value": [...]}`)
    or of a plain list of policies (an export)."""
    items = listing.get("value", []) if isinstance(listing, Mapping) else listing
    return [compile_policy(item) for item in items]


def describe(policy: CompiledPolicy) -> dict[str, Any]:
    """What devicemon understood of a policy, as plain JSON (for `devicemon policies`)."""
    device_filter = policy.device_filter
    return {
        "id": policy.id,
        "displayName": policy.display_name,
        "state": policy.state.value if policy.state else None,
        "requirement": policy.requirement.value,
        "deviceControls": [c.value for c in policy.device_controls],
        "otherControls": list(policy.other_controls),
        "unknownControls": list(policy.unknown_controls),
        "includePlatforms": list(policy.include_platforms),
        "excludePlatforms": list(policy.exclude_platforms),
        "deviceFilter": None
        if device_filter is None
        else {
            "mode": device_filter.mode.value if device_filter.mode else None,
            "rule": device_filter.rule,
            "notUnderstood": str(device_filter.parsed)
            if isinstance(device_filter.parsed, NotUnderstood)
            else None,
        },
        "unjudgedConditions": list(policy.unjudged_conditions),
        "problems": list(policy.problems),
    }
