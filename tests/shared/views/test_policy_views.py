"""The blocking Conditional Access policies as the read API, the fleet summary, its filters and
the timeline show them (issue 14 item 4), checked against docs/openapi.yaml."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from shared.core.models import PolicyRef
from shared.core.records import DeviceRecord, HistoryRow, StateRow
from shared.views.device_json import device_detail_json, state_json, summary_json
from shared.views.fleet import DeviceFilter, record_changes, summarize
from shared.views.report_html import ReportData, render
from tests.shared.views.fleet_data import T0, record
from tests.shared.views.test_report_html import parse

OPENAPI = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "docs" / "openapi.yaml").read_text()
)
REGISTRY = Registry().with_resource(
    "urn:devicemon:openapi", Resource.from_contents(OPENAPI, default_specification=DRAFT202012)
)


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:devicemon:openapi#/components/schemas/{name}"},
        registry=REGISTRY,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


CA01 = PolicyRef(
    "00000000-0000-4000-8000-000000000001",
    "CA01 Compliant or hybrid joined",
    ("NOT_COMPLIANT", "NOT_HYBRID_JOINED"),
    ("users",),
)
CA06 = PolicyRef(
    "00000000-0000-4000-8000-000000000006",
    "CA06 Admins only from SAW",
    ("BLOCKED_BY_POLICY",),
    ("applications", "users"),
)
CA12 = PolicyRef(
    "00000000-0000-4000-8000-000000000012",
    "CA12 Windows compliant and hybrid (report-only)",
    ("NOT_HYBRID_JOINED",),
    ("users",),
)


def blocked(object_id: str, *refs: PolicyRef, **changes: Any) -> DeviceRecord:
    codes = tuple(dict.fromkeys(c for ref in refs for c in ref.reasons))
    fields: dict[str, Any] = {
        "eligible": False,
        "compliance": "noncompliant",
        "reasons": codes,
        "blocking_policies": refs,
        "report_only_failures": (CA12,),
        "judged_by": "ca_policies",
    }
    return record(object_id, **{**fields, **changes})


def test_the_device_body_names_the_policies_as_documented() -> None:
    rec = blocked("00000000-0000-4000-8000-00000000000a", CA01, CA06)
    body = device_detail_json(StateRow(rec, "lost", T0), [HistoryRow(rec, "lost")], False)
    validator("DeviceDetail").validate(body)
    device = body["device"]
    assert device["judgedBy"] == "ca_policies"
    assert device["blockingPolicies"] == [
        {
            "id": CA01.policy_id,
            "displayName": "CA01 Compliant or hybrid joined",
            "reasons": ["NOT_COMPLIANT", "NOT_HYBRID_JOINED"],
            "conditionalOn": ["users"],
        },
        {
            "id": CA06.policy_id,
            "displayName": "CA06 Admins only from SAW",
            "reasons": ["BLOCKED_BY_POLICY"],
            "conditionalOn": ["applications", "users"],
        },
    ]
    assert [p["displayName"] for p in device["reportOnlyFailures"]] == [CA12.display_name]
    assert body["history"][0]["blockingPolicies"] == device["blockingPolicies"]


@pytest.mark.parametrize(
    "changes",
    [
        {},  # a row from before the policies: judged by the setting, no policies
        {"risk_reasons": ("GRACE_PERIOD_ENDING",), "deadline": T0, "source": "deadline"},
        {"source": "intune_watch"},
    ],
)
def test_every_state_validates(changes: dict[str, Any]) -> None:
    body = state_json(StateRow(record(**changes), "first_seen", T0))
    validator("DeviceState").validate(body)
    assert body["riskReasons"] == list(changes.get("risk_reasons", ()))
    assert body["deadline"] == ("2026-11-01T09:00:00Z" if "deadline" in changes else None)


def test_the_document_refuses_a_policy_without_its_conditions() -> None:
    body = state_json(StateRow(blocked("00000000-0000-4000-8000-00000000000a", CA01), "lost", T0))
    del body["blockingPolicies"][0]["conditionalOn"]
    with pytest.raises(jsonschema.ValidationError):
        validator("DeviceState").validate(body)


def fleet() -> list[DeviceRecord]:
    return [
        blocked("00000000-0000-4000-8000-00000000000a", CA01, CA06, display_name="A"),
        blocked("00000000-0000-4000-8000-00000000000b", CA06, display_name="B"),
        blocked("00000000-0000-4000-8000-00000000000c", CA06, display_name="C"),
        record("00000000-0000-4000-8000-00000000000d", display_name="D"),
    ]


def test_the_summary_counts_devices_per_blocking_policy() -> None:
    summary = summarize(fleet())
    body = summary_json(summary)
    assert body["byBlockingPolicy"] == [
        {"id": CA06.policy_id, "displayName": CA06.display_name, "devices": 3},
        {"id": CA01.policy_id, "displayName": CA01.display_name, "devices": 1},
    ]
    assert body["byReportOnlyFailure"] == [
        {"id": CA12.policy_id, "displayName": CA12.display_name, "devices": 3}
    ]
    assert body["judgedBy"] == {"ca_policies": 3, "ca_policy_setting": 1}
    # CA_POLICY counts the devices it judged, not the fallback of the others
    assert body["policies"] == {"compliant_or_hybrid": 1}
    assert body["byReason"]["BLOCKED_BY_POLICY"] == 3


def test_a_renamed_policy_is_counted_once_under_its_id() -> None:
    renamed = replace(CA06, display_name="CA06 Admins from SAW only")
    records = [*fleet(), blocked("00000000-0000-4000-8000-00000000000e", renamed)]
    body = summary_json(summarize(records))
    assert body["byBlockingPolicy"][0] == {
        "id": CA06.policy_id,
        "displayName": "CA06 Admins from SAW only",
        "devices": 4,
    }


@pytest.mark.parametrize(
    ("policy", "names"),
    [
        (CA06.policy_id, "ABC"),
        (CA06.policy_id.upper(), "ABC"),
        ("ca01 compliant or HYBRID joined", "A"),
        (CA12.display_name, ""),  # report-only: it blocks nobody
        ("CA01", ""),  # a name is matched whole, not as a prefix
    ],
)
def test_the_blocked_by_filter(policy: str, names: str) -> None:
    wanted = DeviceFilter.parse(blocked_by=f" {policy} ")
    assert wanted.checks_rows and wanted.table_query() == (None, {})
    found = "".join(r.display_name or "" for r in fleet() if wanted.matches(r))
    assert found == names


def test_the_timeline_says_which_policies_began_and_stopped_blocking() -> None:
    before = blocked("00000000-0000-4000-8000-00000000000a", CA06)
    after = blocked("00000000-0000-4000-8000-00000000000a", CA01, report_only_failures=())
    assert record_changes(before, after) == [
        "+reason NOT_COMPLIANT, NOT_HYBRID_JOINED",
        "-reason BLOCKED_BY_POLICY",
        "+blocked by CA01 Compliant or hybrid joined",
        "-blocked by CA06 Admins only from SAW",
        "-report-only failure CA12 Windows compliant and hybrid (report-only)",
    ]
    setting = record("00000000-0000-4000-8000-00000000000a")
    assert "judged by: ca_policy_setting → ca_policies" in record_changes(setting, after)


# --- the HTML report ---


def report(records: list[DeviceRecord]) -> str:
    states = [StateRow(r, "first_seen" if r.eligible else "lost", T0) for r in records]
    return render(
        ReportData(
            summary=summarize(records),
            ineligible=[s for s in states if not s.record.eligible],
            series=[],
            generated_at=T0,
        )
    )


def test_the_report_names_the_blocking_policies_and_links_each_device_to_them() -> None:
    page = report(fleet())
    text = " ".join(parse(page).text)
    assert (
        "judged by the tenant's Conditional Access policies (3 devices), by CA_POLICY "
        "compliant_or_hybrid (1)" in text
    )
    rows = re.findall(r'<tr id="(p-[^"]+)" class="policy">(.*?)</tr>', page)
    cells = [
        (anchor, [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)])
        for anchor, row in rows
    ]
    assert cells == [
        (f"p-{ref.policy_id}", [ref.display_name, str(n), ref.policy_id])
        for ref, n in ((CA06, 3), (CA01, 1), (CA12, 3))
    ]
    device_a = page[page.index("<strong>A</strong>") :]
    device_a = device_a[: device_a.index("</tr>")]
    assert re.findall(
        r'<a href="#(p-[^"]+)">([^<]+)</a>(?: <small>([^<]+)</small>)?', device_a
    ) == [
        (f"p-{CA01.policy_id}", CA01.display_name, "for the users it selects"),
        (f"p-{CA06.policy_id}", CA06.display_name, "for the applications and users it selects"),
    ]


def test_a_report_judged_by_the_setting_alone_has_no_policy_sections() -> None:
    page = report([record(display_name="D"), record("00000000-0000-4000-8000-00000000000e")])
    assert 'class="policy"' not in page and "blocking-policies" not in page
    assert "evaluated under CA_POLICY compliant_or_hybrid (2)" in " ".join(parse(page).text)


def test_policy_names_from_graph_are_escaped() -> None:
    hostile = PolicyRef("id-x", "<script>alert(1)</script>", ("BLOCKED_BY_POLICY",), ())
    page = report([blocked("00000000-0000-4000-8000-00000000000a", hostile)])
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
