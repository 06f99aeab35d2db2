"""`devicemon device ID_OR_NAME`: the current evaluation and the timeline, newest first."""

from __future__ import annotations

import argparse
from datetime import datetime

from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError

from cli.context import Context
from cli.errors import AMBIGUOUS, NOT_FOUND, OK, CliError
from cli.output import Console, clean, pairs, table, when, wrap
from shared.adapters.store import DeviceStore
from shared.core import explain
from shared.core.changes import normalize_graph_id
from shared.core.compliance_details import GRAPH_ERROR, ComplianceDetails, unavailable
from shared.core.models import JUDGED_BY_POLICIES, DeviceSnapshot, PolicyRef
from shared.core.observations import Facts, ObservationError
from shared.core.policy_eligibility import policy_phrase
from shared.core.records import DeviceRecord, HistoryRow, StateRow, pending_alert_id
from shared.core.snapshots import SnapshotError, device_from_json
from shared.views.device_json import compliance_target, device_detail_json
from shared.views.fleet import display_name, is_guid, record_changes, record_os_label

COMPLIANCE_SECONDS = 15.0  # for Intune's answer about the one device shown


async def find(store: DeviceStore, target: str, state_table: str) -> list[StateRow]:
    """By object id when the text is a GUID, else (or when no such id) by name or deviceId."""
    object_id = normalize_graph_id(target)
    if is_guid(object_id):
        # Normalised like every id at the edge: the tables key devices by Graph's lower-case id.
        state = await store.get_state(object_id)
        if state is not None:
            return [state]
    try:
        return await store.find_devices(target)
    except ResourceNotFoundError:
        raise CliError(
            f"there is no {state_table} table: devicemon has not evaluated any device in this "
            "storage account yet, or TABLE_PREFIX is wrong",
            NOT_FOUND,
        ) from None


def facts(record: DeviceRecord) -> list[tuple[str, str]]:
    managed = f" (managed device {record.managed_device_id})" if record.managed_device_id else ""
    account = {True: "enabled", False: "DISABLED", None: "(not reported)"}[record.account_enabled]
    return [
        ("object id", record.object_id),
        ("device id", record.device_id or "-"),
        ("join type", f"{explain.join_type(record.join_type)} (trustType {record.trust_type})"),
        ("OS", f"{record_os_label(record)} ({record.operating_system_version or '?'})"),
        ("compliance", explain.compliance(record.compliance)),
        ("management", explain.management(record.management) + managed),
        ("primary user", record.user_principal_name or "-"),
        ("account", "DELETED" if record.deleted else account),
        ("policy", setting_words(record)),
        ("judged by", judged_by(record)),
        (
            "evaluated",
            f"{when(record.evaluated_at)}, version {record.version}, "
            f"after a {explain.source(record.source)}",
        ),
    ]


def setting_words(record: DeviceRecord) -> str:
    words = f"{record.policy}: requires {explain.policy(record.policy)}"
    if record.judged_by == JUDGED_BY_POLICIES:
        return f"{words} (CA_POLICY, used only where the policies cannot decide)"
    return words


def judged_by(record: DeviceRecord) -> str:
    if record.judged_by == JUDGED_BY_POLICIES:
        return "the tenant's Conditional Access policies"
    return "the CA_POLICY setting"


def policy_lines(
    title: str, refs: tuple[PolicyRef, ...], console: Console, limit: int = 200
) -> list[str]:
    """Each policy by name, why the device fails it, and for which sign-ins (its conditions
    devicemon does not judge)."""
    if not refs:
        return []
    return [console.bold(title)] + [f"  {clean(policy_phrase(ref), limit)}" for ref in refs]


def explanation_lines(record: DeviceRecord, console: Console) -> list[str]:
    lines = []
    if record.reasons:
        lines.append(console.bold("Why it is ineligible"))
        for code in record.reasons:
            e = explain.reason(code)
            lines += [f"  {code}: {e.meaning}", f"    What to do: {e.action}"]
    lines += policy_lines("Blocked by these enforced policies", record.blocking_policies, console)
    lines += policy_lines(
        "Report-only policies it would fail (not enforced)", record.report_only_failures, console
    )
    if record.grace_period_expires:
        lines.append(f"  Intune grace period ends {when(record.grace_period_expires)}")
    if record.warnings:
        lines.append(console.bold("Warnings"))
        for code in record.warnings:
            e = explain.warning(code)
            lines += [f"  {code}: {e.meaning}", f"    What to do: {e.action}"]
    if record.risk_reasons:
        due = f": access ends {when(record.deadline)}" if record.deadline else ""
        lines.append(console.bold(f"At risk{due}"))
        for code in record.risk_reasons:
            e = explain.risk(code)
            lines += [f"  {code}: {e.meaning}", f"    What to do: {e.action}"]
    return lines


def compliance_lines(details: ComplianceDetails | None, console: Console) -> list[str]:
    """Intune's failing compliance settings in words, each with its fix and its policy (an
    unknown setting as Intune names it), or why Intune could not be read."""
    if details is None:
        return []
    if details.unavailable is not None:
        return [
            console.bold("Failing compliance settings"),
            f"  not read from Intune ({details.unavailable}): {details.unavailable_words}",
        ]
    if not details.failing_settings and not details.failing_policies:
        return []
    lines = [console.bold("Failing compliance settings")]
    for s in details.failing_settings:
        lines += [
            f"  {clean(s.sentence, 300)}",
            f"    Fix: {clean(s.fix, 300)}",
            f"    policy '{clean(s.policy_name, 80)}', setting {clean(s.setting, 120)} ({s.state})",
        ]
    if not details.failing_settings:
        lines += [
            f"  policy '{clean(p.display_name, 80)}': {p.state}" for p in details.failing_policies
        ]
    return lines


def timeline_lines(
    history: list[HistoryRow], truncated: bool, console: Console, pending: str | None = None
) -> list[str]:
    title = "Timeline, newest first" + (f" (latest {len(history)} versions)" if truncated else "")
    lines = [console.bold(title)]
    for position, row in enumerate(history):
        record = row.record
        older = history[position + 1].record if position + 1 < len(history) else None
        event = row.transition.replace("_", " ")
        verdict = "eligible" if record.eligible else "INELIGIBLE"
        lines.append(
            f"  v{record.version}  {when(record.evaluated_at)}  {event}: {verdict}"
            f"  ({explain.source(record.source)})"
        )
        for change in record_changes(older, record):
            if not change.startswith("+reason"):  # the "why" line below says it in words
                lines.append(f"      {clean(change, 120)}")
        if not record.eligible:
            lines.append(f"      why: {explain.reasons_in_words(record.reasons)}")
        if row.alert_id:
            sent = row.alert_id != pending
            lines.append(
                f"      alert {row.alert_id}"
                + ("" if sent else " NOT YET PUBLISHED (pending; the sweep retries it)")
            )
    return lines


def render(
    state: StateRow,
    history: list[HistoryRow],
    truncated: bool,
    console: Console,
    compliance: ComplianceDetails | None = None,
) -> list[str]:
    record = state.record
    since = f" since {when(state.last_transition_at)}" if state.last_transition else ""
    head = f"{clean(display_name(record), 80)}: {console.verdict(record.eligible)}{since}"
    lines = [console.bold(head), pairs(facts(record)), ""]
    lines += explanation_lines(record, console)
    lines += compliance_lines(compliance, console)
    if lines[-1] != "":
        lines.append("")
    lines += timeline_lines(history, truncated, console, pending_alert_id(state))
    return lines


async def run(ctx: Context, console: Console, args: argparse.Namespace) -> int:
    store = ctx.store()
    target = args.device.strip()
    matches = await find(store, target, ctx.settings.state_table)
    if not matches:
        raise CliError(
            f"no device {target!r} in {ctx.settings.state_table} (looked for an object id, a "
            "display name and a device id)",
            NOT_FOUND,
        )
    if len(matches) > 1:
        console.note(
            f"{len(matches)} devices are named {target!r}; pass an object id. "
            "What tells them apart (most recent sign-in first):"
        )
        console.note(table(TWINS_HEADERS, twins_rows(matches)))
        return AMBIGUOUS
    state = matches[0]
    history = [row async for row in store.history(state.record.object_id, args.limit + 1)]
    truncated = len(history) > args.limit
    history = history[: args.limit]
    compliance = await read_compliance(ctx, state.record)
    if args.json:
        console.json(device_detail_json(state, history, truncated, compliance))
        return OK
    for line in render(state, history, truncated, console, compliance):
        console.say(line)
    return OK


async def read_compliance(ctx: Context, record: DeviceRecord) -> ComplianceDetails | None:
    """The failing compliance settings of this one device, read from Intune when they explain
    why it is ineligible; None when they do not."""
    managed_id = compliance_target(record)
    if managed_id is None:
        return None
    from shared.adapters.compliance_details import read_compliance_details

    try:
        return await read_compliance_details(
            ctx.runtime().graph_json(), managed_id, within=COMPLIANCE_SECONDS
        )
    except ClientAuthenticationError as exc:
        # The CLI's identity may read the tables and not Graph: the rest of the page stands.
        return unavailable(GRAPH_ERROR, f"could not sign in to Graph: {clean(str(exc), 200)}")


TWINS_HEADERS = ["OBJECT ID", "NAME", "JOIN TYPE", "OS", "LAST SIGN-IN", "REGISTERED", "NOW"]


def seen_by_graph(state: StateRow) -> DeviceSnapshot | None:
    """The device as Graph last described it in full (DeviceState's Snapshot): its sign-in and
    registration times are kept there, not in the record. None for a row written before
    snapshots were kept, or one that cannot be read."""
    if not state.snapshot:
        return None
    try:
        return device_from_json(Facts.from_json(state.snapshot).device)
    except (ObservationError, SnapshotError):
        return None


def twins_rows(matches: list[StateRow]) -> list[list[object]]:
    """One row per device sharing a name: re-imaged, re-registered and re-joined machines keep
    their name, and differ in how they are joined, their OS, when they registered and whether
    they still sign in."""
    described = [(m, seen_by_graph(m)) for m in matches]

    def recent_first(item: tuple[StateRow, DeviceSnapshot | None]) -> tuple[bool, float]:
        signed_in = item[1].approximate_last_sign_in if item[1] else None
        return signed_in is None, -signed_in.timestamp() if signed_in else 0.0

    return [
        [
            m.record.object_id,
            clean(display_name(m.record), 32),
            explain.join_type(m.record.join_type),
            record_os_label(m.record),
            day(seen.approximate_last_sign_in if seen else None),
            day(seen.registration_time if seen else None),
            verdict(m.record),
        ]
        for m, seen in sorted(described, key=recent_first)
    ]


def day(moment: datetime | None) -> str:
    # Entra replaces approximateLastSignInDateTime only once it is more than 14 days (+/-5) old
    # (entra-docs manage-stale-devices.md): the date is all it can tell.
    return when(moment)[:10] if moment else "-"


def verdict(record: DeviceRecord) -> str:
    return "eligible" if record.eligible else "ineligible"


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "device",
        parents=[common],
        help="a device's current evaluation and its timeline",
        description=wrap(
            "Show a device's current Conditional Access eligibility, why (reasons in words, "
            "with what to do), and its timeline from DeviceHistory, newest first. The device "
            "is found by object id, or by display name (case-insensitive) or Graph deviceId."
        ),
        epilog=(
            "examples:\n  devicemon device LAPTOP-0042\n"
            "  devicemon device 3f2c0b8e-1d7a-4c1e-9a51-0a7e6b2f9c11 --json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "device", metavar="ID_OR_NAME", type=_target, help="object id, display name or deviceId"
    )
    parser.add_argument(
        "--limit",
        type=_positive,
        default=50,
        help="timeline versions to show (default 50)",
    )
    parser.add_argument("--json", action="store_true", help="the read API's JSON instead of text")
    parser.set_defaults(handler=run, needs=("tables",))


def _target(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("give an object id, a display name or a device id")
    return text.strip()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be from 1 to 1000")
    return value
