"""`devicemon evaluate FILE`: the "why is this laptop blocked?" tool. The same evaluation as the
processor, on a device JSON as Graph returns it, explained in words: under the CA_POLICY setting,
or with `--policies FILE` against the tenant's exported Conditional Access policies. Offline but
for one read: when Table storage is configured, the tenant's Intune settings devicemon stored
(`devicemon tenant`), as the processor uses them; Intune's defaults otherwise. It says which."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cli.context import Context, check_tables_connection, load_settings
from cli.errors import INELIGIBLE, OK, USAGE, CliError
from cli.output import Console, clean, pairs, table, wrap
from shared.core import explain
from shared.core.evaluation import EvaluationOptions, evaluate
from shared.core.models import DeviceSnapshot, Evaluation, ManagedDeviceSnapshot, Policy
from shared.core.snapshots import (
    SnapshotError,
    device_from_json,
    managed_device_from_json,
    parse_time,
)
from shared.core.tenant_settings import TenantSettings, to_json
from shared.settings import Settings
from shared.views.device_json import iso
from shared.views.fleet import os_label

# Reading the stored tenant settings must not hold an offline tool for long.
TENANT_READ_SECONDS = 15.0


def read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path} does not exist", USAGE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}", USAGE) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not JSON: {exc}", USAGE) from None


def single(document: Any, what: str, path: str) -> Any:
    """One object from a Graph answer: the object itself, or a one-item {"value": [...]}."""
    if isinstance(document, dict) and isinstance(document.get("value"), list):
        items = document["value"]
        if len(items) != 1:
            raise CliError(f"{path} holds {len(items)} {what}s in 'value': give exactly one", USAGE)
        return items[0]
    return document


@dataclass(frozen=True, slots=True)
class Inputs:
    device: DeviceSnapshot
    managed: ManagedDeviceSnapshot | None
    device_json: dict[str, Any]  # as Graph returned it: what the policies' filters read


def load_inputs(path: str, managed_path: str | None) -> Inputs:
    document = single(read_json(path), "device", path)
    managed_json = None
    if isinstance(document, dict) and isinstance(document.get("device"), dict):
        managed_json = document.get("managedDevice")
        document = document["device"]
    if managed_path:
        managed_json = single(read_json(managed_path), "managed device", managed_path)
    try:
        device = device_from_json(document)
        managed = managed_device_from_json(managed_json) if managed_json else None
    except SnapshotError as exc:
        raise CliError(f"not a Graph device: {exc}", USAGE) from None
    return Inputs(device, managed, document)


@dataclass(frozen=True, slots=True)
class Tenant:
    """The tenant's Intune settings evaluation uses, and where they came from, in words."""

    settings: TenantSettings
    source: str

    def to_json(self) -> dict[str, Any]:
        return {**to_json(self.settings), "source": self.source}


async def stored_tenant(settings: Settings) -> Tenant:
    """What the processor evaluates with: the settings devicemon stored in its bookkeeping table
    when Table storage is configured (a stack, a deployed tenant), else Intune's defaults. A
    store that cannot be read leaves the defaults, and the words say why."""
    defaults = TenantSettings()
    if not (settings.tables_connection_string or settings.tables_endpoint):
        return Tenant(defaults, "Intune's defaults: no Table storage is configured")
    from azure.core.exceptions import AzureError

    from cli.tenant import source_words
    from shared.adapters.tenant_settings import TenantSettingsBook

    ctx = Context(settings)
    try:
        check_tables_connection(settings)
        book = TenantSettingsBook(ctx.tables(), settings.sync_table)
        try:
            async with asyncio.timeout(TENANT_READ_SECONDS):
                stored = await book.load()
        finally:
            await book.close()
    except (CliError, AzureError, TimeoutError, OSError, ValueError) as exc:
        why = clean(str(exc) or type(exc).__name__, 200)
        return Tenant(
            defaults, f"Intune's defaults: {settings.sync_table} could not be read ({why})"
        )
    finally:
        await ctx.close()
    return Tenant(stored.settings, f"stored by devicemon: {source_words(stored.settings)}")


def codes_json(result: Evaluation) -> dict[str, Any]:
    """The reasons and warnings with their words."""
    return {
        "reasons": [
            {
                "code": r.value,
                "meaning": explain.reason(r).meaning,
                "action": explain.reason(r).action,
            }
            for r in result.reasons
        ],
        "warnings": [
            {
                "code": w.value,
                "meaning": explain.warning(w).meaning,
                "action": explain.warning(w).action,
            }
            for w in result.warnings
        ],
    }


def verdict_json(
    device: DeviceSnapshot, managed: ManagedDeviceSnapshot | None, result: Evaluation
) -> dict[str, Any]:
    return {
        "objectId": device.object_id,
        "displayName": device.display_name,
        "policy": result.policy.value,
        "eligible": result.eligible,
        "joinType": result.join_type.value,
        "compliance": result.compliance.value,
        "management": result.management.value,
        "gracePeriodExpires": iso(result.grace_period_expires),
        **codes_json(result),
        "riskReasons": [r.value for r in result.risk_reasons],
        "deadline": iso(result.deadline),
        "intuneRecord": managed is not None,
    }


def reason_lines(result: Evaluation) -> list[str]:
    lines = []
    for reason in result.reasons:
        e = explain.reason(reason)
        lines += [f"  {reason.value}: {e.meaning}", f"    What to do: {e.action}"]
    return lines


def warning_lines(result: Evaluation, console: Console) -> list[str]:
    """The warnings, then the risks of an eligible device about to lose eligibility."""
    lines = []
    if result.warnings:
        lines += ["", console.bold("Warnings")]
        for warning in result.warnings:
            e = explain.warning(warning)
            lines += [f"  {warning.value}: {e.meaning}", f"    What to do: {e.action}"]
    if result.risk_reasons:
        due = f": access ends {iso(result.deadline)}" if result.deadline else ""
        lines += ["", console.bold(f"At risk{due}")]
        for risk in result.risk_reasons:
            e = explain.risk(risk)
            lines += [f"  {risk.value}: {e.meaning}", f"    What to do: {e.action}"]
    return lines


def render(
    device: DeviceSnapshot,
    managed: ManagedDeviceSnapshot | None,
    result: Evaluation,
    others: dict[Policy, Evaluation],
    console: Console,
    tenant: Tenant | None = None,
) -> list[str]:
    name = clean(device.display_name or device.object_id, 80)
    lines = [
        console.bold(f"{name} under {result.policy.value}: ") + console.verdict(result.eligible)
    ]
    account = {True: "enabled", False: "DISABLED", None: "(not in the JSON)"}[
        device.account_enabled
    ]
    compliant = {True: "true", False: "false", None: "(absent)"}[device.is_compliant]
    lines.append(
        pairs(
            [
                ("requires", explain.policy(result.policy.value)),
                (
                    "join type",
                    f"{explain.join_type(result.join_type)} (trustType {device.trust_type})",
                ),
                (
                    "compliance",
                    f"{explain.compliance(result.compliance)} (isCompliant {compliant})",
                ),
                ("management", explain.management(result.management)),
                ("account", "DELETED" if device.deleted else account),
                (
                    "OS",
                    f"{os_label(device.operating_system, device.operating_system_version)} "
                    f"({device.operating_system_version or '?'})",
                ),
                ("Intune record", "given" if managed else "not given (--managed FILE)"),
                *([("tenant settings", tenant.source)] if tenant else []),
            ]
        )
    )
    lines += ["", console.bold("Why" if result.reasons else "Why it passes")]
    if result.reasons:
        lines += reason_lines(result)
    else:
        lines.append(f"  It meets the policy: {explain.policy(result.policy.value)}.")
    if result.grace_period_expires:
        lines.append(f"  Intune grace period ends {iso(result.grace_period_expires)}")
    lines += warning_lines(result, console)
    lines += ["", console.bold("Under each CA_POLICY")]
    rows = [
        [
            p.value,
            "eligible" if r.eligible else "INELIGIBLE",
            explain.reasons_in_words(r.reasons) or "-",
        ]
        for p, r in others.items()
    ]
    lines.append(table(["POLICY", "VERDICT", "WHY"], rows))
    return lines


def options_for(settings: Settings, policy: Policy, tenant: Tenant) -> EvaluationOptions:
    """The processor's evaluation options (shared/runtime.py) under one CA_POLICY."""
    return EvaluationOptions(
        policy,
        settings.stale_sign_in_days,
        settings.intune_checkin_stale_days,
        tenant=tenant.settings,
        checkin_warning_days=settings.intune_checkin_warn_days,
        at_risk_lead=timedelta(hours=settings.at_risk_lead_hours),
    )


async def run(console: Console, env: dict[str, str], args: argparse.Namespace) -> int:
    settings = load_settings(env)
    inputs = load_inputs(args.file, args.managed)
    if args.now:
        try:
            now = parse_time(args.now)
        except SnapshotError as exc:
            raise CliError(f"--now: {exc}", USAGE) from None
    else:
        now = datetime.now(UTC)
    assert now is not None
    policy = Policy(args.policy) if args.policy else settings.policy
    if args.policies:
        # Read before the store: a wrong file is a usage error whatever the storage says.
        from cli.policies import evaluate_against_policies, load_policies

        compiled = load_policies(args.policies)
        tenant = await stored_tenant(settings)
        options = options_for(settings, policy, tenant)
        return evaluate_against_policies(console, args, inputs, compiled, options, now, tenant)
    tenant = await stored_tenant(settings)

    def under(p: Policy) -> Evaluation:
        return evaluate(inputs.device, inputs.managed, options_for(settings, p, tenant), now)

    result = under(policy)
    device, managed = inputs.device, inputs.managed
    if args.json:
        console.json({**verdict_json(device, managed, result), "tenantSettings": tenant.to_json()})
    else:
        others = {p: under(p) for p in Policy}
        for line in render(device, managed, result, others, console, tenant):
            console.say(line)
    return INELIGIBLE if args.exit_code and not result.eligible else OK


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "evaluate",
        parents=[common],
        help="evaluate a device JSON offline and explain the verdict",
        description=wrap(
            "Evaluate a device as Graph returns it (GET /devices/{id}, or a one-item "
            '{"value": [...]}) under a CA policy, or against the tenant\'s exported Conditional '
            "Access policies (--policies), as the processor would, and explain the verdict: the "
            '"why is this laptop blocked?" tool. The file may also be {"device": {...}, '
            '"managedDevice": {...}}. Use - to read standard input. With Table storage '
            "configured (--settings local.settings.json, or the app's settings) it uses the "
            "tenant's Intune settings devicemon stored (devicemon tenant), else Intune's "
            "defaults, and says which."
        ),
        epilog=(
            "examples:\n  devicemon evaluate laptop.json\n"
            "  devicemon evaluate laptop.json --managed intune.json --policy compliant\n"
            "  devicemon evaluate laptop.json --exit-code || echo blocked\n"
            "  devicemon evaluate laptop.json --policies policies.json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="device JSON file, or - for stdin")
    parser.add_argument("--managed", metavar="FILE", help="the Intune managed device JSON")
    parser.add_argument(
        "--policy",
        choices=[p.value for p in Policy],
        help="CA policy to evaluate under (default: CA_POLICY, else compliant_or_hybrid); with "
        "--policies, what decides where a policy cannot be decided",
    )
    parser.add_argument("--now", help="evaluate as of this ISO 8601 time (default: now)")
    parser.add_argument(
        "--policies",
        metavar="FILE",
        help="judge against exported Conditional Access policies (GET /identity/conditionalAccess/"
        'policies, {"value": [...]}, or a list) instead of one CA_POLICY',
    )
    parser.add_argument("--json", action="store_true", help="the verdict as JSON")
    parser.add_argument(
        "--exit-code",
        action="store_true",
        help=f"exit {INELIGIBLE} when the device is ineligible (default: 0 either way)",
    )
    parser.set_defaults(offline=run, needs=())
