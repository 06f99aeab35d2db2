"""Eligibility decided by the tenant's own Conditional Access policies. Pure.

`apply_policies` takes the verdict of the CA_POLICY setting (evaluation.py) and replaces what the
compiled policies decide (ca_verdicts.py), following issue 14's rule "eligible = fails no
enforced policy":
- an enforced policy the device fails blocks it, also when the policy has conditions devicemon
  does not judge (users, applications...): the block holds for the sign-ins they let through,
  and `PolicyRef.conditional_on` says which, so a reader sees "for the users X";
- a report-only policy never blocks; its failures are listed apart;
- when no enforced policy blocks but one cannot be decided for the device, the setting's verdict
  stands, with POLICY_NOT_UNDERSTOOD: devicemon never guesses a policy's answer;
- when no policy in force (enforced or report-only) asks anything of the device, it is
  NOT_TARGETED: it never alerts; so is a device no user signs in on (a printer, a secure VM, an
  IoT device: scope.py), as under the setting;
- a deleted device passes no policy: the setting's DEVICE_DELETED verdict stands.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.core.ca_policies import CompiledPolicy, describe
from shared.core.ca_verdicts import DeviceVerdict, Outcome, PolicyVerdict, judge_device
from shared.core.models import (
    JUDGED_BY_POLICIES,
    DeviceSnapshot,
    Evaluation,
    PolicyRef,
    Reason,
    Warning_,
)
from shared.core.scope import untargeted_profile

# One order whatever order the policies were listed in: the setting's (evaluation.py: the device,
# then compliance, then join), then blocks; a code added to Reason later goes last.
_REASON_ORDER = {
    reason.value: index
    for index, reason in enumerate(
        (
            Reason.DEVICE_DELETED,
            Reason.DEVICE_DISABLED,
            Reason.NOT_COMPLIANT,
            Reason.COMPLIANCE_UNKNOWN,
            Reason.COMPLIANCE_NOT_SUPPORTED,
            Reason.NOT_HYBRID_JOINED,
            Reason.NOT_JOINED,
            Reason.HYBRID_JOIN_PENDING,
            Reason.BLOCKED_BY_POLICY,
        )
    )
}
# Warnings this module decides; the setting's own say about them is replaced.
_OWN_WARNINGS = (Warning_.NOT_TARGETED, Warning_.POLICY_NOT_UNDERSTOOD)


def policies_digest(policies: Iterable[CompiledPolicy]) -> str:
    """A stable digest of what the policies ask of devices: equal for the same policies listed
    in another order, different as soon as one policy's device view (or name) changes."""
    views = sorted((describe(p) for p in policies), key=lambda view: str(view["id"]))
    text = json.dumps(views, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class CompiledPolicySet:
    """The tenant's compiled policies as read at `read_at` (None: not from a stored read, e.g. a
    file). `digest` is computed from the policies."""

    policies: tuple[CompiledPolicy, ...]
    read_at: datetime | None = None
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "policies", tuple(self.policies))
        object.__setattr__(self, "digest", policies_digest(self.policies))


def policy_ref(verdict: PolicyVerdict) -> PolicyRef:
    return PolicyRef(
        policy_id=verdict.policy_id,
        display_name=verdict.display_name,
        reasons=verdict.reasons,
        conditional_on=verdict.conditional_on,
    )


def blocking_reasons(disabled: bool, blocking: Iterable[PolicyVerdict]) -> tuple[Reason, ...]:
    """DEVICE_DISABLED when the device is disabled, and every reason a blocking policy gives,
    each once, in one order (_REASON_ORDER)."""
    codes = {code for verdict in blocking for code in verdict.reasons}
    if disabled:
        codes.add(Reason.DEVICE_DISABLED.value)
    ranked = sorted(codes, key=lambda c: (_REASON_ORDER.get(c, len(_REASON_ORDER)), c))
    return tuple(Reason(c) for c in ranked)


def _targeted(verdict: DeviceVerdict) -> bool:
    return any(v.outcome is not Outcome.NOT_APPLICABLE for v in verdict.verdicts)


def apply_policies(
    base: Evaluation,
    device: DeviceSnapshot,
    device_json: Mapping[str, Any],
    policies: CompiledPolicySet,
) -> Evaluation:
    """The evaluation as the tenant's compiled policies decide it (see the module's note);
    `base` is the CA_POLICY setting's verdict on the same observation."""
    if device.deleted:
        return base
    kept = tuple(w for w in base.warnings if w not in _OWN_WARNINGS)
    verdict = None if untargeted_profile(device) else judge_device(policies.policies, device_json)
    if verdict is None or not _targeted(verdict):
        # No policy asks anything of the device, or no user signs in on it (a printer, a secure
        # VM, an IoT device: scope.py), whatever a policy's platforms say.
        return replace(
            base,
            eligible=True,
            reasons=(),
            warnings=(Warning_.NOT_TARGETED, *kept),
            blocking_policies=(),
            report_only_failures=(),
            judged_by=JUDGED_BY_POLICIES,
        )
    blocking = tuple(policy_ref(v) for v in verdict.blocking_policies)
    report_only = tuple(policy_ref(v) for v in verdict.report_only_failures)
    if verdict.eligible is None:
        # No enforced policy blocks, one cannot be decided: the setting decides.
        return replace(
            base,
            warnings=(*kept, Warning_.POLICY_NOT_UNDERSTOOD),
            blocking_policies=(),
            report_only_failures=report_only,
        )
    return replace(
        base,
        eligible=not blocking,
        reasons=blocking_reasons(device.account_enabled is False, verdict.blocking_policies)
        if blocking
        else (),
        warnings=kept,
        blocking_policies=blocking,
        report_only_failures=report_only,
        judged_by=JUDGED_BY_POLICIES,
    )


# conditionalAccessConditionSet's conditions devicemon does not judge, in words
# (microsoft-graph-docs-contrib `conditionalaccessconditionset.md`).
_CONDITION_WORDS = {
    "users": "users",
    "applications": "applications",
    "clientApplications": "workload identities",
    "clientAppTypes": "client app types",
    "locations": "locations",
    "signInRiskLevels": "sign-in risk levels",
    "userRiskLevels": "user risk levels",
    "servicePrincipalRiskLevels": "service principal risk levels",
    "insiderRiskLevels": "insider risk levels",
    "authenticationFlows": "authentication flows",
}


def conditions_phrase(conditional_on: Iterable[str]) -> str:
    """'for the users and applications it selects': the sign-ins a policy's verdict on the
    device holds for; empty when the policy covers every sign-in from the device."""
    words = [_CONDITION_WORDS.get(c, c) for c in conditional_on]
    if not words:
        return ""
    listed = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
    return f"for the {listed} it selects"


def policy_phrase(ref: PolicyRef) -> str:
    """'CA01 Require compliant (NOT_COMPLIANT), for the users it selects': a policy named in a
    verdict, for people."""
    name = ref.display_name or ref.policy_id
    why = f" ({', '.join(ref.reasons)})" if ref.reasons else ""
    scope = conditions_phrase(ref.conditional_on)
    return f"{name}{why}" + (f", {scope}" if scope else "")
