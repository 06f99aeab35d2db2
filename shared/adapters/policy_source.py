"""Which Conditional Access view judges devices, and the compiled policies evaluation uses.

ELIGIBILITY_SOURCE (docs/ca-policies.md, "Eligibility modes"):
- `auto` (default): the tenant's policies whenever they can be read, the CA_POLICY setting
  otherwise (Policy.Read.All not granted, no read yet);
- `ca_policies`: the same, but health is degraded while the policies cannot be read: an operator
  who asked for them learns that the setting is judging instead;
- `ca_policy_setting`: the setting alone, whatever the policies say.

Policies come from the CaPolicies table the policy timer keeps (shared/adapters/ca_policies.py): a
read that failed for a passing reason (throttling, an outage) leaves the last good read in force;
a read Graph refused (403) means the app may no longer see the policies at all, so the setting
judges until a read succeeds again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.adapters.ca_policies import CaPolicyStore, ReadStatus, StoredPolicies
from shared.adapters.reloaded import Reloaded
from shared.core.ca_policies import CompiledPolicy, PolicyState, Requirement, compile_policy
from shared.core.device_filter import NotUnderstood
from shared.core.policy_eligibility import CompiledPolicySet

log = logging.getLogger("devicemon.policy_source")
# How long a worker evaluates with the policies it loaded before loading them again; the fleet
# re-evaluation after a change waits this long (plus RELOAD_MARGIN) so no worker still holds the
# old ones when it judges a device (shared/sources/policy_change.py).
DEFAULT_CACHE_SECONDS = 300
# A load that takes longer is given up (the policies in hand stay): evaluation must not hang on
# the policy table.
LOAD_SECONDS = 10.0
# What the fleet was judged by when no policy set was in force (the fleet digest's other value).
SETTING_DIGEST = "ca_policy_setting"


class EligibilitySource(StrEnum):
    AUTO = "auto"
    CA_POLICIES = "ca_policies"
    CA_POLICY_SETTING = "ca_policy_setting"


class Mode(StrEnum):
    """What judges devices right now (reported by /api/health as `eligibility.mode`)."""

    CA_POLICIES = "ca_policies"
    CA_POLICY_SETTING = "ca_policy_setting"


def understood(policy: CompiledPolicy) -> bool:
    """Whether devicemon read every part of the policy's device view."""
    parsed = policy.device_filter.parsed if policy.device_filter else None
    return not (
        policy.problems
        or policy.requirement is Requirement.NOT_UNDERSTOOD
        or isinstance(parsed, NotUnderstood)
    )


@dataclass(frozen=True, slots=True)
class InForce:
    """The policies in force (None: the CA_POLICY setting judges) and why."""

    policies: CompiledPolicySet | None
    why: str  # neverRead | permissionMissing | readFailed | setting | noDevicePolicy | read

    @property
    def mode(self) -> Mode:
        return Mode.CA_POLICY_SETTING if self.policies is None else Mode.CA_POLICIES

    @property
    def digest(self) -> str:
        return self.policies.digest if self.policies is not None else SETTING_DIGEST


def in_force(stored: StoredPolicies | None, source: str) -> InForce:
    """Pure: what judges devices, from the stored read and ELIGIBILITY_SOURCE."""
    if source == EligibilitySource.CA_POLICY_SETTING:
        return InForce(None, "setting")
    if stored is None:
        return InForce(None, "neverRead")
    if stored.status is ReadStatus.PERMISSION_MISSING:
        return InForce(None, "permissionMissing")
    if stored.last_success_at is None:
        return InForce(None, "readFailed")
    compiled = tuple(compile_policy(policy) for policy in stored.policies)
    if source == EligibilitySource.AUTO and not any(asks_devices(p) for p in compiled):
        # Judged by policies that ask nothing of devices, every device would be NOT_TARGETED and
        # devicemon silent; under `auto` the setting the admin chose judges instead, and health
        # says why. ELIGIBILITY_SOURCE=ca_policies keeps the tenant's word even then.
        return InForce(None, "noDevicePolicy")
    return InForce(CompiledPolicySet(compiled, stored.last_success_at), "read")


def asks_devices(policy: CompiledPolicy) -> bool:
    """Whether an enforced policy (or one whose state devicemon cannot read) asks something of
    the device: a device control it cannot do without, or a block narrowed by a device condition.
    Report-only policies enforce nothing, so they do not count."""
    if policy.state not in (PolicyState.ENABLED, None):
        return False
    if policy.requirement in (Requirement.ALL, Requirement.ANY, Requirement.NOT_UNDERSTOOD):
        return True
    return policy.requirement is Requirement.BLOCK and policy.device_scoped


class CachedPolicies:
    """What evaluation asks for: the policies in force, loaded again at most once per `ttl`. A
    failed load keeps what is in hand (the setting's fallback if nothing is): evaluation never
    waits for, nor fails on, the policy table. Concurrent callers share one load."""

    def __init__(
        self,
        store: CaPolicyStore,
        source: str,
        clock: Callable[[], datetime],
        ttl: timedelta = timedelta(seconds=DEFAULT_CACHE_SECONDS),
    ) -> None:
        async def load() -> InForce:
            if source == EligibilitySource.CA_POLICY_SETTING:
                return in_force(None, source)  # no table read for a fixed choice
            return in_force(await store.load(), source)

        self._cached = Reloaded(
            load,
            clock=clock,
            ttl=ttl,
            fallback=lambda: InForce(None, "readFailed"),
            event="policies_load_failed",
            timeout=LOAD_SECONDS,
        )

    async def state(self) -> InForce:
        return await self._cached.get()

    async def current(self) -> CompiledPolicySet | None:
        """The Pipeline's `policies`: the compiled set, or None for the CA_POLICY setting."""
        return (await self.state()).policies
