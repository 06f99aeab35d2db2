"""Devices, timelines and fleet summaries as JSON: the read API's bodies and the CLI's --json.
Pure. The shapes are a contract, described in docs/openapi.yaml (the tests validate against it).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from shared.core.compliance_details import ComplianceDetails
from shared.core.events import explained_by_compliance
from shared.core.models import PolicyRef
from shared.core.records import DeviceRecord, HistoryRow, StateRow, pending_alert_id
from shared.views.fleet import Counts, DayPoint, FleetSummary, record_os_label


def iso(value: datetime | None) -> str | None:
    """UTC, ISO 8601 with a Z, as Graph and the alerts write timestamps."""
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def record_json(record: DeviceRecord) -> dict[str, Any]:
    return {
        "objectId": record.object_id,
        "deviceId": record.device_id,
        "displayName": record.display_name,
        "eligible": record.eligible,
        "reasons": list(record.reasons),
        "warnings": list(record.warnings),
        "policy": record.policy,
        "joinType": record.join_type,
        "trustType": record.trust_type,
        "compliance": record.compliance,
        "management": record.management,
        "operatingSystem": record.operating_system,
        "operatingSystemVersion": record.operating_system_version,
        "os": record_os_label(record),
        "accountEnabled": record.account_enabled,
        "deleted": record.deleted,
        "gracePeriodExpires": iso(record.grace_period_expires),
        "userPrincipalName": record.user_principal_name,
        "managedDeviceId": record.managed_device_id,
        "version": record.version,
        "evaluatedAt": iso(record.evaluated_at),
        "source": record.source,
        "correlationId": record.correlation_id or None,
        "judgedBy": record.judged_by,
        "blockingPolicies": refs_json(record.blocking_policies),
        "reportOnlyFailures": refs_json(record.report_only_failures),
        "riskReasons": list(record.risk_reasons),
        "deadline": iso(record.deadline),
    }


def state_json(state: StateRow) -> dict[str, Any]:
    return {
        **record_json(state.record),
        "lastTransition": state.last_transition,
        "lastTransitionAt": iso(state.last_transition_at),
    }


def history_json(row: HistoryRow, pending_alert_id: str | None = None) -> dict[str, Any]:
    """`alertStatus` says whether the row's alert went out: an alert id alone is not proof,
    since the alert may still sit in DeviceState's outbox (its publish failed; the sweep retries)."""
    status = None
    if row.alert_id:
        status = "pending" if row.alert_id == pending_alert_id else "published"
    return {
        **record_json(row.record),
        "transition": row.transition,
        "alertId": row.alert_id or None,
        "alertStatus": status,
    }


def compliance_target(record: DeviceRecord) -> str | None:
    """The Intune managed device id whose failing compliance policies and settings say why this
    device is ineligible, or None when Intune has nothing to explain (read for that one device,
    when asked about it)."""
    if record.eligible or record.deleted or not record.managed_device_id:
        return None
    if not explained_by_compliance(record.reasons, record.warnings):
        return None
    return record.managed_device_id


def device_detail_json(
    state: StateRow,
    history: list[HistoryRow],
    truncated: bool,
    compliance: ComplianceDetails | None = None,
) -> dict[str, Any]:
    """`compliance`, when given: the failing policies and settings with a sentence and a fix
    each (an unknown setting as Intune names it), or why Intune could not be read; the same
    shape as an alert's data.compliance."""
    pending = pending_alert_id(state)
    out = {
        "device": {**state_json(state), "pendingAlertId": pending},
        "history": [history_json(r, pending) for r in history],
        "historyTruncated": truncated,
    }
    if compliance is not None:
        out["compliance"] = compliance.to_json()
    return out


def counts_json(counts: Counts) -> dict[str, Any]:
    return {
        "devices": counts.devices,
        "eligible": counts.eligible,
        "ineligible": counts.ineligible,
        "eligiblePercent": counts.eligible_percent,
    }


def _ranked(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def summary_json(summary: FleetSummary) -> dict[str, Any]:
    return {
        **counts_json(summary.overall),
        "deleted": summary.deleted,
        "policies": _ranked(summary.policies),
        "byJoinType": {k: counts_json(v) for k, v in summary.by_join_type.items()},
        "byOs": {k: counts_json(v) for k, v in summary.by_os.items()},
        "byReason": _ranked(summary.by_reason),
        "byWarning": _ranked(summary.by_warning),
        "judgedBy": _ranked(summary.judged_by),
        "byBlockingPolicy": _policy_counts(summary.by_blocking_policy, summary.policy_names),
        "byReportOnlyFailure": _policy_counts(summary.by_report_only, summary.policy_names),
    }


def _policy_counts(counter: Counter[str], names: dict[str, str]) -> list[dict[str, Any]]:
    """[{"id", "displayName", "devices"}], most devices first."""
    return [
        {"id": policy_id, "displayName": names.get(policy_id, ""), "devices": n}
        for policy_id, n in _ranked(counter).items()
    ]


def refs_json(policies: tuple[PolicyRef, ...]) -> list[dict[str, Any]]:
    return [p.to_json() for p in policies]


def series_json(points: list[DayPoint]) -> list[dict[str, Any]]:
    return [
        {"day": p.day.isoformat(), "eligible": p.eligible, "ineligible": p.ineligible}
        for p in points
    ]
