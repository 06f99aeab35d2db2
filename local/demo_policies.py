"""`make run`'s Conditional Access step (issue 14 item 6): one device passes one of the tenant's
policies and fails another, and the one it fails is named.

The Graph simulator serves two policies in the shape Graph documents (microsoft-graph-docs-contrib
conditionalaccesspolicy.md, conditionalaccessgrantcontrols.md, conditionalaccessplatforms.md):
- "CA01 Compliant or hybrid joined device": every platform, "Require one of the selected
  controls" (OR) over compliantDevice and domainJoinedDevice;
- "CA02 Windows: compliant device": Windows only, compliantDevice alone.
BRANCH-PC-05 is hybrid joined and not Intune compliant: it passes CA01 by its join and fails CA02.
Under the CA_POLICY setting (compliant_or_hybrid) it was eligible; once devicemon reads the
policies (here the policy timer's work is run the way the timer runs it) the fleet is judged
again through the normal pipeline, and BRANCH-PC-05 loses eligibility, blocked by CA02.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Protocol

import httpx

from local.graphsim.admin import AsyncSimAdmin
from local.graphsim.ca_policies import set_ca_policies

DEVICE = "BRANCH-PC-05"
# Every user and every cloud app: the device is what these policies judge.
_USERS = {"includeUsers": ["All"], "excludeUsers": [], "includeGroups": [], "excludeGroups": []}
_APPS = {"includeApplications": ["All"], "excludeApplications": [], "includeUserActions": []}


class Alerts(Protocol):
    seen: list[dict[str, Any]]

    async def expect(self, count: int, within: float = 30.0) -> None: ...


def _policy(number: int, name: str, controls: list[str], platforms: list[str]) -> dict[str, Any]:
    return {
        "id": f"0d3f5a70-0000-4000-8000-0000000000{number:02d}",
        "displayName": name,
        "createdDateTime": "2026-11-02T08:00:00Z",
        "modifiedDateTime": None,
        "state": "enabled",
        "sessionControls": None,
        "conditions": {
            "userRiskLevels": [],
            "signInRiskLevels": [],
            "clientAppTypes": ["all"],
            "platforms": {"includePlatforms": platforms, "excludePlatforms": []},
            "locations": None,
            "devices": None,
            "applications": _APPS,
            "users": _USERS,
        },
        "grantControls": {
            "operator": "OR",
            "builtInControls": controls,
            "customAuthenticationFactors": [],
            "termsOfUse": [],
        },
    }


POLICIES = [
    _policy(
        1,
        "CA01 Compliant or hybrid joined device",
        ["compliantDevice", "domainJoinedDevice"],
        ["all"],
    ),
    _policy(2, "CA02 Windows: compliant device", ["compliantDevice"], ["windows"]),
]


def _verdict_lines(device_json: dict[str, Any]) -> list[str]:
    """One line per policy: passes or fails (with the reasons), as devicemon judged it."""
    from local.demo import paint
    from shared.core.ca_policies import compile_policies
    from shared.core.ca_verdicts import Outcome, judge

    lines = []
    for policy in compile_policies(POLICIES):
        verdict = judge(policy, device_json)
        if verdict.outcome is Outcome.PASSES:
            lines.append(f"    {paint('✔ passes', '32')}  {policy.display_name}")
        elif verdict.outcome is Outcome.FAILS:
            why = ", ".join(verdict.reasons)
            lines.append(f"    {paint('✖ fails ', '31')}  {policy.display_name}  ({why})")
        else:
            lines.append(f"    {verdict.outcome.value:<9} {policy.display_name}")
    return lines


async def policies_decide(sim: AsyncSimAdmin, api_url: str, alerts: Alerts) -> None:
    from handlers.policies import refresh_policies
    from local.demo import bold, dim, say, wait_until
    from shared.runtime import current

    runtime = current()
    store = await runtime.store()
    object_id = str(uuid.uuid4())
    device = {
        "id": object_id,
        "deviceId": str(uuid.uuid4()),
        "displayName": DEVICE,
        "trustType": "ServerAd",
        "profileType": "RegisteredDevice",
        "isCompliant": None,
        "isManaged": False,
        "accountEnabled": True,
        "operatingSystem": "Windows",
        "operatingSystemVersion": "10.0.22631.4460",
        "deviceOwnership": "Company",
        "onPremisesSyncEnabled": True,
    }
    say(bold(f"▶ {DEVICE} joins (hybrid joined, no Intune compliance)"))
    await sim.upsert_device(notify=True, **device)
    await sim.flush_notifications()

    async def seen() -> bool:
        return await store.get_state(object_id) is not None

    await wait_until(seen)
    say("  eligible under the CA_POLICY setting compliant_or_hybrid (first sighting, no alert)\n")

    say(
        bold("▶ devicemon reads the tenant's Conditional Access policies")
        + " (the policy timer's work; Graph GET /identity/conditionalAccess/policies)"
    )
    for policy in POLICIES:
        scope = ", ".join(policy["conditions"]["platforms"]["includePlatforms"])
        controls = " OR ".join(policy["grantControls"]["builtInControls"])
        say(f"    {policy['displayName']}: platforms {scope}; grant {controls}")
    await set_ca_policies(sim, POLICIES)
    before = len(alerts.seen)
    await refresh_policies(runtime)
    say(dim("  the policies in force changed: every known device is judged again (source replay)"))
    await alerts.expect(1)
    lost = [
        a
        for a in alerts.seen[before:]
        if a["type"].endswith(".lost") and a["data"]["device"]["displayName"] == DEVICE
    ]
    state = await store.get_state(object_id)
    assert state is not None
    facts = json.loads(state.snapshot)
    say(f"  {bold(DEVICE)} against each policy:")
    for line in _verdict_lines(facts["device"]):
        say(line)
    blocking = lost[0]["data"]["current"].get("blockingPolicies", []) if lost else []
    names = ", ".join(p["displayName"] for p in blocking) or "(none named)"
    say(f"  → {bold('blocked by ' + names)}: it passes CA01 by its hybrid join, and CA02 asks")
    say("    Windows devices for Intune compliance, which it does not have")
    async with httpx.AsyncClient(timeout=30) as http:
        eligibility = (await http.get(f"{api_url}/health")).json()["eligibility"]
    understood = eligibility["policies"]["understood"] if eligibility["policies"] else 0
    say(
        f"  {bold('GET /api/health')} eligibility mode {bold(eligibility['mode'])}: "
        f"{eligibility['explanation']} ({understood} policies understood)\n"
    )
