"""`devicemon device` and `devicemon fleet` name the Conditional Access policies that block a
device and the report-only ones it would fail (issue 14 item 4): the text, CSV and JSON built
from DeviceState rows in memory (the stack test of the same path is in test_policy_stack.py)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

from cli import device, fleet
from cli.output import Console
from shared.core.models import PolicyRef
from shared.core.records import DeviceRecord, HistoryRow, StateRow
from shared.views.fleet import summarize
from tests.shared.views.fleet_data import T0, record

CA01 = PolicyRef("id-ca01", "CA01 Compliant or hybrid joined", ("NOT_COMPLIANT",), ("users",))
CA06 = PolicyRef(
    "id-ca06", "CA06 Admins only from SAW", ("BLOCKED_BY_POLICY",), ("applications", "users")
)
CA07 = PolicyRef("id-ca07", "CA07 Kiosks compliant", ("NOT_COMPLIANT",), ())
CA12 = PolicyRef("id-ca12", "CA12 Windows hybrid (report-only)", ("NOT_HYBRID_JOINED",), ())
CONSOLE = Console({}, io.StringIO())


def blocked(object_id: str, name: str, *refs: PolicyRef, **changes: Any) -> DeviceRecord:
    fields: dict[str, Any] = {
        "display_name": name,
        "eligible": False,
        "compliance": "noncompliant",
        "reasons": tuple(dict.fromkeys(c for ref in refs for c in ref.reasons)),
        "blocking_policies": refs,
        "report_only_failures": (CA12,),
        "judged_by": "ca_policies",
    }
    return record(object_id, **{**fields, **changes})


LAPTOP = blocked("00000000-0000-4000-8000-00000000000a", "LAPTOP-0042", CA01, CA06)
KIOSK = blocked("00000000-0000-4000-8000-00000000000b", "KIOSK-LOBBY", CA07)
FINE = record("00000000-0000-4000-8000-00000000000c", display_name="PC-OK")


def facts(out: str) -> dict[str, str]:
    """The `name  value` pairs under the head line."""
    found = {}
    for line in out.splitlines()[1:]:
        if not line.startswith("  "):
            break
        name, value = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        found[name] = value
    return found


def columns(row: str) -> list[str]:
    return re.split(r"\s{2,}", row.strip())


def test_device_names_each_blocking_policy_and_for_whom() -> None:
    before = record(LAPTOP.object_id, judged_by="ca_policies", report_only_failures=(CA12,))
    history = [HistoryRow(LAPTOP, "lost"), HistoryRow(before, "first_seen")]
    out = "\n".join(device.render(StateRow(LAPTOP, "lost", T0), history, False, CONSOLE))

    assert facts(out)["judged by"] == "the tenant's Conditional Access policies"
    assert facts(out)["policy"].endswith("(CA_POLICY, used only where the policies cannot decide)")
    blocking = out[out.index("Blocked by these enforced policies") :].splitlines()
    assert blocking[1:3] == [
        "  CA01 Compliant or hybrid joined (NOT_COMPLIANT), for the users it selects",
        "  CA06 Admins only from SAW (BLOCKED_BY_POLICY), for the applications and users it"
        " selects",
    ]
    assert blocking[3:5] == [
        "Report-only policies it would fail (not enforced)",
        "  CA12 Windows hybrid (report-only) (NOT_HYBRID_JOINED)",
    ]
    assert "BLOCKED_BY_POLICY: An enforced Conditional Access policy" in out
    timeline = out[out.index("Timeline") :]
    assert "+blocked by CA01 Compliant or hybrid joined, CA06 Admins only from SAW" in timeline


def test_device_judged_by_the_setting_says_so_and_lists_no_policies() -> None:
    setting = record(LAPTOP.object_id, eligible=False, reasons=("NOT_COMPLIANT",))
    out = "\n".join(device.render(StateRow(setting, "lost", T0), [], False, CONSOLE))

    assert facts(out)["judged by"] == "the CA_POLICY setting"
    assert facts(out)["policy"] == (
        "compliant_or_hybrid: requires a compliant device or a hybrid joined device"
    )
    assert "Blocked by" not in out and "Report-only" not in out


def test_fleet_counts_devices_per_blocking_policy_and_lists_them() -> None:
    states = [
        StateRow(r, "lost" if not r.eligible else "first_seen", T0) for r in (LAPTOP, KIOSK, FINE)
    ]
    summary = summarize(s.record for s in states)
    out = "\n".join(
        fleet.render_summary(summary, CONSOLE)
        + fleet.render_ineligible(fleet.ineligible_rows(states), CONSOLE)
    )

    assert (
        "Judged by the tenant's Conditional Access policies: 2 of 3 (the others by CA_POLICY)"
        in out
    )
    assert "Evaluated under CA_POLICY compliant_or_hybrid (1)" in out
    table = out[out.index("Blocking Conditional Access policies") :].splitlines()
    assert [columns(row) for row in table[1:5]] == [
        ["POLICY", "DEVICES", "ID"],
        ["CA01 Compliant or hybrid joined", "1", "id-ca01"],
        ["CA06 Admins only from SAW", "1", "id-ca06"],
        ["CA07 Kiosks compliant", "1", "id-ca07"],
    ]
    report_only = out[out.index("Report-only policies devices would fail") :].splitlines()
    assert columns(report_only[2]) == ["CA12 Windows hybrid (report-only)", "2", "id-ca12"]
    listed = out[out.index("Ineligible devices (2)") :]
    assert "BLOCKED BY" in listed
    laptop_row = next(line for line in listed.splitlines() if "LAPTOP-0042" in line)
    assert "CA01 Compliant or hybrid joined, CA06 Admins only from SAW" in laptop_row


def test_fleet_csv_carries_the_policies() -> None:
    out = io.StringIO()
    Console({}, out).csv(
        fleet.DEVICE_CSV, [fleet.device_csv_row(StateRow(r, "lost", T0)) for r in (LAPTOP, FINE)]
    )
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["blockingPolicies"], r["reportOnlyFailures"], r["judgedBy"]) for r in rows] == [
        (
            "CA01 Compliant or hybrid joined, CA06 Admins only from SAW",
            "CA12 Windows hybrid (report-only)",
            "ca_policies",
        ),
        ("", "", "ca_policy_setting"),
    ]
    summary = {(r[0], r[1]): r[2] for r in fleet.summary_csv_rows(summarize([LAPTOP, KIOSK, FINE]))}
    assert summary[("blockingPolicy", "id-ca06")] == 1
    assert summary[("reportOnlyFailure", "id-ca12")] == 2


def test_device_at_risk_says_when_access_ends_and_what_to_do() -> None:
    at_risk = record(
        LAPTOP.object_id,
        warnings=("COMPLIANCE_GRACE_PERIOD",),
        risk_reasons=("GRACE_PERIOD_ENDING",),
        deadline=T0 + timedelta(days=2),
    )
    out = "\n".join(device.render(StateRow(at_risk, "first_seen", T0), [], False, CONSOLE))
    section = out[out.index("At risk: access ends 2026-11-03 09:00:00 UTC") :].splitlines()
    assert section[1].startswith("  GRACE_PERIOD_ENDING: Intune marks the device noncompliant")
    assert section[2].startswith("    What to do: Fix the failing compliance setting")
    calm = "\n".join(device.render(StateRow(FINE, "first_seen", T0), [], False, CONSOLE))
    assert "At risk" not in calm
