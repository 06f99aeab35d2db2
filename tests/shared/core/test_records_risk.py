"""The risk, deadline and policy columns of DeviceState and DeviceHistory (docs/tables.md): what
is written reads back the same, and rows written before the columns existed read as none."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.core.models import JUDGED_BY_POLICIES, JUDGED_BY_SETTING, PolicyRef
from shared.core.records import DeviceRecord, HistoryRow, StateRow, policies_of
from tests.shared.views.fleet_data import T0, record

BLOCKING = PolicyRef("p-1", "Require compliant (Windows)", ("NOT_COMPLIANT",), ("users",))
REPORT_ONLY = PolicyRef("p-2", "Hybrid for admins (report-only)", ("NOT_HYBRID_JOINED",), ())


def at_risk() -> DeviceRecord:
    return record(
        risk_reasons=("GRACE_PERIOD_ENDING", "CHECKIN_OVERDUE"),
        deadline=T0 + timedelta(days=2),
        next_check=T0 + timedelta(days=2),
        compliance_error_since=T0 - timedelta(hours=1),
        blocking_policies=(BLOCKING,),
        report_only_failures=(REPORT_ONLY,),
        judged_by=JUDGED_BY_POLICIES,
    )


@pytest.mark.parametrize("written", [at_risk(), record()])
def test_both_tables_read_back_what_was_written(written: DeviceRecord) -> None:
    state = StateRow(written, "first_seen", T0)
    assert StateRow.from_entity(state.entity()).record == written
    history = HistoryRow(written, "at_risk", "alert")
    assert HistoryRow.from_entity(history.entity()) == history


def test_the_policy_columns_are_the_event_s_json_shape() -> None:
    columns = at_risk().columns()
    assert columns["RiskReasons"] == "GRACE_PERIOD_ENDING,CHECKIN_OVERDUE"
    assert columns["BlockingPolicies"] == (
        '[{"id": "p-1", "displayName": "Require compliant (Windows)", '
        '"reasons": ["NOT_COMPLIANT"], "conditionalOn": ["users"]}]'
    )
    assert columns["JudgedBy"] == "ca_policies"
    assert record().columns()["BlockingPolicies"] == ""


def test_a_row_written_before_the_columns_existed_reads_as_none() -> None:
    old: dict[str, Any] = {
        k: v
        for k, v in record().columns().items()
        if k
        not in {
            "RiskReasons",
            "Deadline",
            "NextCheckAt",
            "ComplianceErrorSince",
            "BlockingPolicies",
            "ReportOnlyFailures",
            "JudgedBy",
        }
    }
    read = DeviceRecord.from_columns("d", old)
    assert (read.risk_reasons, read.deadline, read.next_check, read.compliance_error_since) == (
        (),
        None,
        None,
        None,
    )
    assert (read.blocking_policies, read.report_only_failures) == ((), ())
    assert read.judged_by == JUDGED_BY_SETTING
    assert not read.at_risk


@pytest.mark.parametrize("column", ["not json", "{}", "[1]", '[{"id": 1}]x'])
def test_an_unreadable_policy_column_holds_no_policies(column: str) -> None:
    assert policies_of(column) == ()
