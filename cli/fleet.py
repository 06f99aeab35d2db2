"""`devicemon fleet`: eligibility by join type, OS and reason; `--ineligible` lists the devices,
`--stale` the ones with no recent sign-in."""

from __future__ import annotations

import argparse
from collections import Counter

from azure.core.exceptions import ResourceNotFoundError

from cli.context import Context
from cli.errors import NOT_FOUND, OK, USAGE, CliError
from cli.output import Console, clean, plural, table, when, wrap
from shared.adapters.store import DeviceStore
from shared.core import explain
from shared.core.models import JUDGED_BY_POLICIES
from shared.core.records import DeviceRecord, StateRow
from shared.views.device_json import iso, state_json, summary_json
from shared.views.fleet import (
    Counts,
    DeviceFilter,
    FilterError,
    FleetSummary,
    display_name,
    record_os_label,
    stale,
    summarize,
)


async def read_states(store: DeviceStore, state_table: str) -> list[StateRow]:
    try:
        return [row async for row in store.states()]
    except ResourceNotFoundError:
        raise CliError(
            f"there is no {state_table} table: devicemon has not evaluated any device in this "
            "storage account yet, or TABLE_PREFIX is wrong",
            NOT_FOUND,
        ) from None


def ineligible_rows(states: list[StateRow]) -> list[StateRow]:
    found = [s for s in states if not s.record.eligible]
    return sorted(found, key=lambda s: (display_name(s.record).casefold(), s.record.object_id))


def _counts_rows(
    groups: dict[str, Counts], label: dict[str, str] | None = None
) -> list[list[object]]:
    return [
        [(label or {}).get(k, k), c.devices, c.eligible, c.ineligible, c.eligible_percent]
        for k, c in groups.items()
    ]


def render_summary(summary: FleetSummary, console: Console) -> list[str]:
    o = summary.overall
    deleted = f" ({summary.deleted} of them deleted)" if summary.deleted else ""
    lines = [
        console.bold(
            f"Fleet: {plural(o.devices, 'device')}, {o.eligible} eligible ({o.eligible_percent:.1f}%), "
            f"{o.ineligible} ineligible{deleted}"
        )
    ]
    if summary.policies:
        used = ", ".join(f"{p} ({n})" for p, n in summary.policies.most_common())
        lines.append(f"Evaluated under CA_POLICY {used}")
    judged = summary.judged_by.get(JUDGED_BY_POLICIES, 0)
    if judged:
        lines.append(
            f"Judged by the tenant's Conditional Access policies: {judged} of {o.devices}"
            + (" (the others by CA_POLICY)" if judged < o.devices else "")
        )
    headers = ["DEVICES", "ELIGIBLE", "INELIGIBLE", "ELIGIBLE %"]
    lines += ["", console.bold("By join type")]
    lines.append(
        table(["JOIN TYPE", *headers], _counts_rows(summary.by_join_type, explain.JOIN_TYPES))
    )
    lines += ["", console.bold("By operating system")]
    lines.append(table(["OS", *headers], _counts_rows(summary.by_os)))
    lines += ["", console.bold("Ineligible devices by reason (a device can have several)")]
    if summary.by_reason:
        rows = [
            [code, n, explain.reason(code).short]
            for code, n in sorted(summary.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        lines.append(table(["REASON", "DEVICES", "IN WORDS"], rows))
    else:
        lines.append("  none")
    lines += _policy_table(
        "Blocking Conditional Access policies (a device can have several)",
        summary.by_blocking_policy,
        summary,
        console,
    )
    lines += _policy_table(
        "Report-only policies devices would fail (not enforced)",
        summary.by_report_only,
        summary,
        console,
    )
    if summary.by_warning:
        lines += ["", console.bold("Warnings (eligibility unchanged)")]
        rows = [
            [code, n, explain.warning(code).short]
            for code, n in sorted(summary.by_warning.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        lines.append(table(["WARNING", "DEVICES", "IN WORDS"], rows))
    return lines


def _policy_table(
    title: str, counts: Counter[str], summary: FleetSummary, console: Console
) -> list[str]:
    if not counts:
        return []
    rows = [
        [clean(summary.policy_names.get(policy_id) or policy_id, 60), n, policy_id]
        for policy_id, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return ["", console.bold(title), table(["POLICY", "DEVICES", "ID"], rows)]


def blocked_by_words(record: DeviceRecord) -> str:
    return ", ".join(p.display_name or p.policy_id for p in record.blocking_policies)


def render_ineligible(states: list[StateRow], console: Console) -> list[str]:
    lines = ["", console.bold(f"Ineligible devices ({len(states)})")]
    if not states:
        return [*lines, "  none"]
    rows = [
        [
            clean(display_name(s.record), 32),
            explain.join_type(s.record.join_type),
            record_os_label(s.record),
            when(s.last_transition_at)[:16],
            explain.reasons_in_words(s.record.reasons),
            clean(blocked_by_words(s.record), 60) or "-",
            s.record.object_id,
        ]
        for s in states
    ]
    headers = ["NAME", "JOIN TYPE", "OS", "SINCE (UTC)", "WHY", "BLOCKED BY", "OBJECT ID"]
    lines.append(table(headers, rows))
    return lines


def render_stale(records: list[DeviceRecord], console: Console) -> list[str]:
    lines = ["", console.bold(f"Stale devices: no sign-in for STALE_SIGN_IN_DAYS ({len(records)})")]
    if not records:
        return [*lines, "  none"]
    rows = [
        [
            clean(display_name(r), 32),
            explain.join_type(r.join_type),
            record_os_label(r),
            "eligible" if r.eligible else "INELIGIBLE",
            r.object_id,
        ]
        for r in records
    ]
    lines.append(table(["NAME", "JOIN TYPE", "OS", "VERDICT", "OBJECT ID"], rows))
    return lines


DEVICE_CSV = [
    "objectId",
    "displayName",
    "joinType",
    "os",
    "operatingSystemVersion",
    "compliance",
    "management",
    "reasons",
    "reasonsInWords",
    "warnings",
    "blockingPolicies",
    "reportOnlyFailures",
    "judgedBy",
    "ineligibleSince",
    "evaluatedAt",
    "userPrincipalName",
    "deviceId",
]


def device_csv_row(s: StateRow) -> list[object]:
    r = s.record
    return [
        r.object_id,
        r.display_name,
        r.join_type,
        record_os_label(r),
        r.operating_system_version,
        r.compliance,
        r.management,
        " ".join(r.reasons),
        explain.reasons_in_words(r.reasons),
        " ".join(r.warnings),
        blocked_by_words(r),
        ", ".join(p.display_name or p.policy_id for p in r.report_only_failures),
        r.judged_by,
        iso(s.last_transition_at),
        iso(r.evaluated_at),
        r.user_principal_name,
        r.device_id,
    ]


def summary_csv_rows(summary: FleetSummary) -> list[list[object]]:
    o = summary.overall
    rows: list[list[object]] = [["all", "all", o.devices, o.eligible, o.ineligible]]
    for dimension, groups in (("joinType", summary.by_join_type), ("os", summary.by_os)):
        rows += [[dimension, k, c.devices, c.eligible, c.ineligible] for k, c in groups.items()]
    rows += [["reason", k, n, 0, n] for k, n in sorted(summary.by_reason.items())]
    rows += [["warning", k, n, "", ""] for k, n in sorted(summary.by_warning.items())]
    rows += [["blockingPolicy", k, n, 0, n] for k, n in sorted(summary.by_blocking_policy.items())]
    rows += [["reportOnlyFailure", k, n, "", ""] for k, n in sorted(summary.by_report_only.items())]
    return rows


async def run(ctx: Context, console: Console, args: argparse.Namespace) -> int:
    try:
        wanted = DeviceFilter.parse(
            join_type=args.join_type,
            reason=args.reason,
            os=args.os,
            blocked_by=args.blocked_by,
            names=("--eligible", "--join-type", "--reason", "--os", "--blocked-by"),
        )
    except FilterError as exc:
        raise CliError(str(exc), USAGE) from None
    states = [
        s
        for s in await read_states(ctx.store(), ctx.settings.state_table)
        if wanted.matches(s.record)
    ]
    summary = summarize(s.record for s in states)
    unfit = ineligible_rows(states) if args.ineligible else []
    by_id = {s.record.object_id: s for s in states}
    unused = [by_id[r.object_id] for r in stale(s.record for s in states)] if args.stale else []
    # A device both ineligible and stale is one row of a machine-readable list.
    listed = unfit + [s for s in unused if s not in unfit]
    if args.format == "json":
        body: dict[str, object] = {"summary": summary_json(summary)}
        if args.ineligible or args.stale:
            body["devices"] = [state_json(s) for s in listed]
        console.json(body)
    elif args.format == "csv":
        if args.ineligible or args.stale:
            console.csv(DEVICE_CSV, (device_csv_row(s) for s in listed))
        else:
            console.csv(
                ["dimension", "value", "devices", "eligible", "ineligible"],
                summary_csv_rows(summary),
            )
    else:
        lines = render_summary(summary, console)
        if args.ineligible:
            lines += render_ineligible(unfit, console)
        if args.stale:
            lines += render_stale([s.record for s in unused], console)
        for line in lines:
            console.say(line)
    return OK


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "fleet",
        parents=[common],
        help="eligibility summary by join type, OS and reason",
        description=wrap(
            "Summarise the fleet's current eligibility (DeviceState) by join type, operating "
            "system, reason and, when the tenant's Conditional Access policies judge devices, "
            "by blocking policy. --ineligible also lists the ineligible devices with their "
            "reasons and blocking policies. --join-type, --reason, --os and --blocked-by narrow "
            "the devices counted and listed."
        ),
        epilog=(
            "examples:\n  devicemon fleet\n  devicemon fleet --ineligible --csv > ineligible.csv\n"
            "  devicemon fleet --ineligible --reason NOT_COMPLIANT --os 'Windows 11' --json\n"
            "  devicemon fleet --ineligible --blocked-by 'CA01 Require compliant device'"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ineligible", action="store_true", help="list the ineligible devices")
    parser.add_argument(
        "--stale",
        action="store_true",
        help="list the devices with no sign-in for STALE_SIGN_IN_DAYS (clean-up candidates)",
    )
    parser.add_argument("--join-type", help="entra_joined, hybrid_joined, registered or unknown")
    parser.add_argument("--reason", help="only devices with this reason code, e.g. NOT_COMPLIANT")
    parser.add_argument("--os", help="OS prefix, e.g. 'Windows 11' or 'Windows 10.0.19045'")
    parser.add_argument(
        "--blocked-by",
        metavar="POLICY",
        help="only devices this enforced Conditional Access policy blocks (its id or name)",
    )
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument(
        "--json", dest="format", action="store_const", const="json", help="JSON output"
    )
    shape.add_argument(
        "--csv",
        dest="format",
        action="store_const",
        const="csv",
        help="CSV output: the summary, or with --ineligible one row per device",
    )
    parser.set_defaults(handler=run, needs=("tables",), format="table")
