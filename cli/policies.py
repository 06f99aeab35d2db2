"""`devicemon policies`: what devicemon understood of each Conditional Access policy, and what it
did not; from the CaPolicies table (the last read), from Graph (`--refresh`), or offline from an
export (`--file`). And the policy side of `devicemon evaluate DEVICE.json --policies FILE`: a
device judged against exported policies without Azure access (docs/ca-policies.md)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cli.context import Context
from cli.errors import FAILED, INELIGIBLE, NOT_FOUND, OK, USAGE, CliError
from cli.evaluate import (
    Inputs,
    Tenant,
    codes_json,
    read_json,
    reason_lines,
    warning_lines,
)
from cli.output import Console, clean, plural, when, wrap
from shared.adapters.ca_policies import (
    CaPolicyStore,
    ReadStatus,
    StoredPolicies,
    refresh,
    table_name,
)
from shared.core.ca_policies import CompiledPolicy, Requirement, compile_policies, describe
from shared.core.ca_verdicts import DeviceVerdict, PolicyVerdict, judge_device
from shared.core.evaluation import EvaluationOptions, evaluate
from shared.core.models import JUDGED_BY_POLICIES, Evaluation, PolicyRef
from shared.core.policy_eligibility import CompiledPolicySet, conditions_phrase
from shared.views.device_json import iso

# --- reading the inputs ----------------------------------------------------------------------


def load_policies(path: str) -> list[CompiledPolicy]:
    """The policies of an export: a `GET /identity/conditionalAccess/policies` answer
    (`{"value": [...]}`) or a plain list of policies."""
    document = read_json(path)
    items = document.get("value") if isinstance(document, dict) else document
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise CliError(
            f'{path} is neither {{"value": [policy, ...]}} nor a list of policies', USAGE
        )
    return compile_policies(items)


# --- what a policy asks, in words --------------------------------------------------------------


def _requires(policy: CompiledPolicy) -> str:
    device = ", ".join(c.value for c in policy.device_controls)
    others = ", ".join(policy.other_controls)
    requirement = policy.requirement
    if requirement is Requirement.BLOCK:
        return (
            "block access from the devices in its scope"
            if policy.device_scoped
            else "block access (not scoped by platform or device filter: not a device verdict)"
        )
    if requirement is Requirement.ALL:
        wanted = f"all of: {device}" if len(policy.device_controls) > 1 else device
        return wanted + (f" (and {others})" if others else "")
    if requirement is Requirement.ANY:
        return f"one of: {device}" if len(policy.device_controls) > 1 else device
    if requirement is Requirement.ALTERNATIVE:
        return f"{device}, or instead {others}: the device need not pass"
    if requirement is Requirement.NONE:
        return "nothing of the device" + (f" ({others})" if others else "")
    return "not understood"


def _scope(policy: CompiledPolicy) -> str:
    include = ", ".join(policy.include_platforms) or "all"
    exclude = ", ".join(policy.exclude_platforms)
    return f"{include}" + (f", except {exclude}" if exclude else "")


def policy_lines(policy: CompiledPolicy, console: Console) -> list[str]:
    state = policy.state.value if policy.state else "(undocumented state)"
    lines = [console.bold(clean(policy.display_name or policy.id, 100)) + f"  [{state}]"]
    items: list[tuple[str, str]] = [
        ("id", policy.id),
        ("requires", _requires(policy)),
        ("platforms", _scope(policy)),
    ]
    if policy.device_filter is not None:
        mode = policy.device_filter.mode.value if policy.device_filter.mode else "?"
        items.append(("device filter", f"{mode}: {clean(policy.device_filter.rule, 300)}"))
    if policy.unknown_controls:
        items.append(("unknown controls", ", ".join(policy.unknown_controls)))
    if policy.unjudged_conditions:
        items.append(("not judged", ", ".join(policy.unjudged_conditions)))
    lines += [f"  {name}: {value}" for name, value in items]
    understood = describe(policy)
    not_understood = list(policy.problems)
    filter_json = understood["deviceFilter"]
    if filter_json and filter_json["notUnderstood"]:
        not_understood.insert(0, f"device filter: {filter_json['notUnderstood']}")
    for problem in not_understood:
        lines.append("  " + console.warn(f"NOT UNDERSTOOD: {clean(problem, 300)}"))
    return lines


def show_policies(policies: Sequence[CompiledPolicy], console: Console) -> None:
    for policy in policies:
        console.say()
        for line in policy_lines(policy, console):
            console.say(line)
    not_understood = sum(
        1 for p in policies if p.problems or p.unknown_controls or _filter_not_understood(p)
    )
    console.say()
    console.say(
        f"{plural(len(policies), 'policy', 'policies')}, "
        f"{not_understood} with something devicemon does not understand"
    )


def _filter_not_understood(policy: CompiledPolicy) -> bool:
    found = describe(policy)["deviceFilter"]
    return bool(found and found["notUnderstood"])


# --- devicemon policies ------------------------------------------------------------------------


async def run_file(console: Console, env: dict[str, str], args: argparse.Namespace) -> int:
    policies = load_policies(args.file)
    if args.json:
        console.json({"source": args.file, "policies": [describe(p) for p in policies]})
    else:
        console.say(f"Conditional Access policies from {clean(args.file)}")
        show_policies(policies, console)
    return OK


def _stored_json(stored: StoredPolicies, policies: list[CompiledPolicy]) -> dict[str, Any]:
    return {
        "status": stored.status.value,
        "readAt": stored.read_at.isoformat(),
        "lastSuccessAt": stored.last_success_at.isoformat() if stored.last_success_at else None,
        "detail": stored.detail or None,
        "policies": [describe(p) for p in policies],
    }


async def run_stored(ctx: Context, console: Console, args: argparse.Namespace) -> int:
    name = table_name(ctx.settings)
    await ctx.require_table(name)
    store = CaPolicyStore(ctx.tables(), name)
    if args.refresh:
        read = await refresh(ctx.runtime().graph_json(), store, datetime.now(UTC))
        console.note(f"read {plural(len(read.policies), 'policy', 'policies')}: {read.status}")
    stored = await store.load()
    if stored is None:
        raise CliError(
            f"the {name} table holds no read of the policies yet: the policy timer "
            "(POLICY_SCHEDULE) has not run; `devicemon policies --refresh` reads them now",
            NOT_FOUND,
        )
    policies = compile_policies(stored.policies)
    if args.json:
        console.json(_stored_json(stored, policies))
    else:
        status = stored.status.value
        line = f"Conditional Access policies: last read {when(stored.read_at)} ({status})"
        console.say(console.bold(line))
        if stored.status is not ReadStatus.OK:
            console.say("  " + console.bad(clean(stored.detail, 400)))
            console.say(f"  the policies below are from {when(stored.last_success_at)}")
        show_policies(policies, console)
    return OK if stored.status is ReadStatus.OK else FAILED


class _Offline(argparse.Action):
    """`--file` makes the command offline: no settings or storage are needed."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.offline = run_file


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "policies",
        parents=[common],
        help="list what devicemon understood of each Conditional Access policy",
        description=wrap(
            "List each Conditional Access policy as devicemon understands it: its state, what "
            "it requires of the device (all or one of the device controls, a block, or device "
            "controls offered beside MFA and so not required), its platforms and device filter, "
            "the conditions devicemon does not judge (users, apps, locations...) and anything "
            "it did not understand. Reads the last read kept in the CaPolicies table; "
            "--refresh reads Graph first (Policy.Read.All); --file reads an export offline "
            '(a GET /identity/conditionalAccess/policies answer, {"value": [...]}, or a list).'
        ),
        epilog=(
            "examples:\n  devicemon policies\n  devicemon policies --refresh --json\n"
            "  devicemon policies --file policies.json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--file", metavar="FILE", action=_Offline, help="read an export instead of the table"
    )
    mode.add_argument(
        "--refresh", action="store_true", help="read the policies from Graph and store them first"
    )
    parser.add_argument("--json", action="store_true", help="the policies as JSON")
    parser.set_defaults(handler=run_stored, needs=("tables",), offline=None)


# --- devicemon evaluate DEVICE.json --policies FILE -------------------------------------------


def verdict_json(verdict: PolicyVerdict) -> dict[str, Any]:
    return {
        "id": verdict.policy_id,
        "displayName": verdict.display_name,
        "state": verdict.state.value if verdict.state else None,
        "outcome": verdict.outcome.value,
        "reasons": list(verdict.reasons),
        "notes": [n for n in verdict.notes if n],
        "conditionalOn": list(verdict.conditional_on),
    }


def _named(refs: Sequence[PolicyRef], verdict: DeviceVerdict) -> list[PolicyVerdict]:
    """The verdicts (with their notes) of the policies an evaluation names, in its order."""
    by_id = {v.policy_id: v for v in verdict.verdicts}
    return [by_id[ref.policy_id] for ref in refs]


def device_verdict_json(
    inputs: Inputs, result: Evaluation, verdict: DeviceVerdict, count: int, tenant: Tenant
) -> dict[str, Any]:
    """The evaluation the processor would store (eligibility, reasons, warnings, who judged),
    with every policy it names and the ones devicemon could not decide."""
    return {
        "objectId": inputs.device.object_id,
        "displayName": inputs.device.display_name,
        "policies": count,
        "eligible": result.eligible,
        "judgedBy": result.judged_by,
        "policy": result.policy.value,
        **codes_json(result),
        "blockingPolicies": [verdict_json(v) for v in _named(result.blocking_policies, verdict)],
        "reportOnlyFailures": [
            verdict_json(v) for v in _named(result.report_only_failures, verdict)
        ],
        "undecided": [verdict_json(v) for v in verdict.undecided],
        "riskReasons": [r.value for r in result.risk_reasons],
        "deadline": iso(result.deadline),
        "tenantSettings": tenant.to_json(),
    }


def _verdict_lines(title: str, verdicts: Sequence[PolicyVerdict], console: Console) -> list[str]:
    if not verdicts:
        return []
    lines = ["", console.bold(title)]
    for v in verdicts:
        why = ", ".join(v.reasons) or "undecided"
        lines.append(f"  {clean(v.display_name or v.policy_id, 100)}: {why}")
        lines += [f"    {clean(note, 300)}" for note in v.notes if note]
        if v.conditional_on:
            lines.append(f"    {conditions_phrase(v.conditional_on)}")
    return lines


def _judged_words(result: Evaluation) -> str:
    if result.judged_by == JUDGED_BY_POLICIES:
        return "judged by these policies"
    return (
        f"judged by CA_POLICY {result.policy.value}: an enforced policy could not be decided "
        "for this device (POLICY_NOT_UNDERSTOOD)"
    )


def render_verdict(
    inputs: Inputs,
    result: Evaluation,
    verdict: DeviceVerdict,
    count: int,
    tenant: Tenant,
    console: Console,
) -> list[str]:
    name = clean(inputs.device.display_name or inputs.device.object_id, 80)
    head = f"{name} against {plural(count, 'policy', 'policies')}: "
    lines = [console.bold(head) + console.verdict(result.eligible)]
    lines.append(f"  {_judged_words(result)}; tenant settings: {tenant.source}")
    if result.reasons:
        lines += ["", console.bold("Why"), *reason_lines(result)]
    blocking = _named(result.blocking_policies, verdict)
    report_only = _named(result.report_only_failures, verdict)
    lines += _verdict_lines("Blocking (enforced policies it fails)", blocking, console)
    lines += _verdict_lines("Report-only policies it would fail", report_only, console)
    lines += _verdict_lines("Undecided (devicemon cannot tell)", verdict.undecided, console)
    lines += warning_lines(result, console)
    rest = count - len(blocking) - len(report_only) - len(verdict.undecided)
    lines += ["", f"{plural(rest, 'other policy', 'other policies')}: passed or not applicable"]
    return lines


def evaluate_against_policies(
    console: Console,
    args: argparse.Namespace,
    inputs: Inputs,
    compiled: list[CompiledPolicy],
    options: EvaluationOptions,
    now: datetime,
    tenant: Tenant,
) -> int:
    """The device judged as the processor judges it when the tenant's policies are in force
    (evaluation.evaluate with them: policy_eligibility.apply_policies), with every policy's
    verdict and notes for people."""
    policies = CompiledPolicySet(tuple(compiled), None)
    result = evaluate(
        inputs.device,
        inputs.managed,
        options,
        now,
        device_json=inputs.device_json,
        policies=policies,
    )
    verdict = judge_device(policies.policies, inputs.device_json)
    if args.json:
        console.json(device_verdict_json(inputs, result, verdict, len(compiled), tenant))
    else:
        for line in render_verdict(inputs, result, verdict, len(compiled), tenant, console):
            console.say(line)
    return INELIGIBLE if args.exit_code and not result.eligible else OK
