"""The failing compliance policies and settings of one device, from Graph's payloads. Pure.

Parses the documented answers of `managedDevices/{id}/deviceCompliancePolicyStates`
(deviceCompliancePolicyState, whose settingStates property holds deviceCompliancePolicySettingState
objects: microsoft-graph-docs-contrib, api-reference/v1.0/resources/
intune-deviceconfig-devicecompliancepolicysettingstate.md) and keeps what makes the device not
compliant: states nonCompliant, error and conflict (shared.core.compliance_settings.STATES says
why). When Intune could not be read the details say so, with a reason, instead of being empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.core.compliance_settings import FAILING_STATES, canonical_state, describe_setting


@dataclass(frozen=True, slots=True)
class FailingPolicy:
    id: str
    display_name: str
    state: str


@dataclass(frozen=True, slots=True)
class FailingSetting:
    setting: str  # as Intune names it
    state: str
    policy_id: str
    policy_name: str
    sentence: str
    fix: str


# Why the details could not be read (the alert says so instead of an empty list).
PERMISSION_MISSING = "permission_missing"
NOT_FOUND = "not_found"
TIMEOUT = "timeout"
THROTTLED = "throttled"
GRAPH_ERROR = "graph_error"
INVALID_RESPONSE = "invalid_response"
UNAVAILABLE_REASONS = (
    PERMISSION_MISSING,
    NOT_FOUND,
    TIMEOUT,
    THROTTLED,
    GRAPH_ERROR,
    INVALID_RESPONSE,
)

# The permission the read needs (docs/compliance-details.md says why this one).
READ_PERMISSION = "DeviceManagementConfiguration.Read.All"
_SEE_INTUNE = "open the device in Intune to see its failing compliance settings."
# For people: cards and the CLI say this rather than Graph's raw error, which the detail keeps.
UNAVAILABLE_WORDS = {
    PERMISSION_MISSING: f"devicemon may not read Intune's compliance policy states: grant its app "
    f"the Microsoft Graph application permission {READ_PERMISSION} (docs/deploy.md); until "
    f"then, {_SEE_INTUNE}",
    NOT_FOUND: f"Intune no longer knows this managed device; {_SEE_INTUNE}",
    TIMEOUT: f"Intune did not answer in time; {_SEE_INTUNE}",
    THROTTLED: f"Intune throttled the read; {_SEE_INTUNE}",
    GRAPH_ERROR: f"Microsoft Graph answered with an error; {_SEE_INTUNE}",
    INVALID_RESPONSE: f"Intune's answer could not be understood; {_SEE_INTUNE}",
}


@dataclass(frozen=True, slots=True)
class ComplianceDetails:
    failing_policies: tuple[FailingPolicy, ...] = ()
    failing_settings: tuple[FailingSetting, ...] = ()
    unavailable: str | None = None  # one of the reasons above when Intune could not be read
    detail: str = ""  # for people, when unavailable

    def to_json(self) -> dict[str, Any]:
        if self.unavailable is not None:
            return {"unavailable": {"reason": self.unavailable, "detail": self.detail}}
        return {
            "failingPolicies": [
                {"id": p.id, "displayName": p.display_name, "state": p.state}
                for p in self.failing_policies
            ],
            "failingSettings": [
                {
                    "setting": s.setting,
                    "state": s.state,
                    "policyId": s.policy_id,
                    "policyName": s.policy_name,
                    "sentence": s.sentence,
                    "fix": s.fix,
                }
                for s in self.failing_settings
            ],
        }

    @property
    def unavailable_words(self) -> str:
        """Why the details are missing, for people ("" when they are not)."""
        if self.unavailable is None:
            return ""
        return UNAVAILABLE_WORDS.get(self.unavailable, f"Intune could not be read; {_SEE_INTUNE}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComplianceDetails:
        gone = data.get("unavailable")
        if isinstance(gone, Mapping):
            return unavailable(str(gone.get("reason") or GRAPH_ERROR), str(gone.get("detail", "")))
        return cls(
            tuple(
                FailingPolicy(str(p["id"]), str(p["displayName"]), str(p["state"]))
                for p in data.get("failingPolicies", ())
            ),
            tuple(
                FailingSetting(
                    str(s["setting"]),
                    str(s["state"]),
                    str(s["policyId"]),
                    str(s["policyName"]),
                    str(s["sentence"]),
                    str(s["fix"]),
                )
                for s in data.get("failingSettings", ())
            ),
        )


def unavailable(reason: str, detail: str) -> ComplianceDetails:
    return ComplianceDetails(unavailable=reason, detail=detail)


def _items(body: Any) -> list[Mapping[str, Any]] | None:
    """The objects of a collection answer ({"value": [...]}) or a bare list; None if neither."""
    value = body.get("value") if isinstance(body, Mapping) else body
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, Mapping)]


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return str(value).strip() if value is not None else ""


def policies_needing_setting_states(body: Any) -> list[str]:
    """Ids of failing policies whose setting states did not come inline (they have settings,
    per settingCount, but settingStates is missing or empty): read them one by one."""
    out: list[str] = []
    for item in _items(body) or ():
        if canonical_state(item.get("state")) not in FAILING_STATES:
            continue
        inline = item.get("settingStates")
        count = item.get("settingCount")
        if not inline and isinstance(count, int) and count > 0 and _text(item, "id"):
            out.append(_text(item, "id"))
    return out


def parse_policy_states(
    body: Any, setting_states: Mapping[str, Any] | None = None
) -> ComplianceDetails:
    """Failing policies and settings from a deviceCompliancePolicyStates answer.

    `setting_states` maps a policy id to the answer of its own `.../settingStates` read, for the
    policies whose settings did not come inline. A setting reported once per user (Intune
    evaluates each signed-in user and the system account) is listed once.
    """
    items = _items(body)
    if items is None:
        return unavailable(INVALID_RESPONSE, "Intune's answer has no list of policy states.")
    policies: list[FailingPolicy] = []
    settings: list[FailingSetting] = []
    seen: set[tuple[str, str, str]] = set()
    for item in items:
        policy_id = _text(item, "id")
        policy_name = _text(item, "displayName") or policy_id
        state = canonical_state(item.get("state"))
        if state in FAILING_STATES:
            policies.append(FailingPolicy(policy_id, policy_name, state))
        extra = _items((setting_states or {}).get(policy_id)) or []
        inline = _items(item.get("settingStates")) or []
        for raw in [*inline, *extra]:
            setting_state = canonical_state(raw.get("state"))
            if setting_state not in FAILING_STATES:
                continue
            name = _text(raw, "setting") or _text(raw, "settingName") or "(unnamed setting)"
            key = (policy_id, name.lower(), setting_state)
            if key in seen:
                continue
            seen.add(key)
            text = describe_setting(
                name,
                setting_state,
                policy_name=policy_name,
                error_description=_text(raw, "errorDescription")
                if setting_state == "error"
                else "",
            )
            settings.append(
                FailingSetting(name, setting_state, policy_id, policy_name, text.sentence, text.fix)
            )
    return ComplianceDetails(tuple(policies), tuple(settings))
