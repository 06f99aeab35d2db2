"""Table storage rows for DeviceState and DeviceHistory, and their conversions. Pure.

Columns are documented in docs/tables.md; renaming one is a contract change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.core.models import JUDGED_BY_SETTING, Observation, PolicyRef, Transition

STATE_ROW_KEY = "current"
# History RowKeys count down from here so that a partition scan returns the newest row first.
_MAX_VERSION = 10**12 - 1


def history_row_key(version: int) -> str:
    return f"{_MAX_VERSION - version:012d}"


def _join(values: tuple[str, ...]) -> str:
    return ",".join(values)


def _split(value: Any) -> tuple[str, ...]:
    return tuple(v for v in str(value or "").split(",") if v)


def policies_json(policies: tuple[PolicyRef, ...]) -> str:
    """A JSON list of {"id","displayName","reasons","conditionalOn"}: the column and event form."""
    return json.dumps([p.to_json() for p in policies]) if policies else ""


def policies_of(value: Any) -> tuple[PolicyRef, ...]:
    """The policies a column holds; an old row without the column, or an unreadable one, holds
    none (the next evaluation writes them again)."""
    if not value:
        return ()
    try:
        items = json.loads(str(value))
        return tuple(PolicyRef.from_json(item) for item in items)
    except (ValueError, TypeError):
        return ()


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """What both tables say about a device at one version."""

    object_id: str
    version: int
    evaluated_at: datetime
    eligible: bool
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    policy: str
    join_type: str
    compliance: str
    management: str
    display_name: str | None
    device_id: str | None
    trust_type: str | None
    operating_system: str | None
    operating_system_version: str | None
    account_enabled: bool | None
    deleted: bool
    grace_period_expires: datetime | None
    user_principal_name: str | None
    managed_device_id: str | None
    source: str
    correlation_id: str
    fingerprint: str
    # The risk episode and deadlines (shared/core/risk.py) and who judged eligibility; rows
    # written before these columns existed read as none.
    risk_reasons: tuple[str, ...] = ()
    deadline: datetime | None = None
    next_check: datetime | None = None
    compliance_error_since: datetime | None = None
    blocking_policies: tuple[PolicyRef, ...] = ()
    report_only_failures: tuple[PolicyRef, ...] = ()
    judged_by: str = JUDGED_BY_SETTING

    @property
    def at_risk(self) -> bool:
        return bool(self.risk_reasons)

    def columns(self) -> dict[str, Any]:
        return {
            "Version": self.version,
            "EvaluatedAt": self.evaluated_at,
            "Eligible": self.eligible,
            "Reasons": _join(self.reasons),
            "Warnings": _join(self.warnings),
            "Policy": self.policy,
            "JoinType": self.join_type,
            "Compliance": self.compliance,
            "Management": self.management,
            "DisplayName": self.display_name,
            "DeviceId": self.device_id,
            "TrustType": self.trust_type,
            "OperatingSystem": self.operating_system,
            "OperatingSystemVersion": self.operating_system_version,
            "AccountEnabled": self.account_enabled,
            "Deleted": self.deleted,
            "GracePeriodExpires": self.grace_period_expires,
            "UserPrincipalName": self.user_principal_name,
            "ManagedDeviceId": self.managed_device_id,
            "Source": self.source,
            "CorrelationId": self.correlation_id,
            "Fingerprint": self.fingerprint,
            "RiskReasons": _join(self.risk_reasons),
            "Deadline": self.deadline,
            "NextCheckAt": self.next_check,
            "ComplianceErrorSince": self.compliance_error_since,
            "BlockingPolicies": policies_json(self.blocking_policies),
            "ReportOnlyFailures": policies_json(self.report_only_failures),
            "JudgedBy": self.judged_by,
        }

    @classmethod
    def from_columns(cls, object_id: str, row: dict[str, Any]) -> DeviceRecord:
        return cls(
            object_id=object_id,
            version=int(row.get("Version") or 0),
            evaluated_at=row["EvaluatedAt"],
            eligible=bool(row.get("Eligible")),
            reasons=_split(row.get("Reasons")),
            warnings=_split(row.get("Warnings")),
            policy=str(row.get("Policy") or ""),
            join_type=str(row.get("JoinType") or "unknown"),
            compliance=str(row.get("Compliance") or "unknown"),
            management=str(row.get("Management") or "unknown"),
            display_name=row.get("DisplayName"),
            device_id=row.get("DeviceId"),
            trust_type=row.get("TrustType"),
            operating_system=row.get("OperatingSystem"),
            operating_system_version=row.get("OperatingSystemVersion"),
            account_enabled=row.get("AccountEnabled"),
            deleted=bool(row.get("Deleted")),
            grace_period_expires=row.get("GracePeriodExpires"),
            user_principal_name=row.get("UserPrincipalName"),
            managed_device_id=row.get("ManagedDeviceId"),
            source=str(row.get("Source") or ""),
            correlation_id=str(row.get("CorrelationId") or ""),
            fingerprint=str(row.get("Fingerprint") or ""),
            risk_reasons=_split(row.get("RiskReasons")),
            deadline=row.get("Deadline"),
            next_check=row.get("NextCheckAt"),
            compliance_error_since=row.get("ComplianceErrorSince"),
            blocking_policies=policies_of(row.get("BlockingPolicies")),
            report_only_failures=policies_of(row.get("ReportOnlyFailures")),
            judged_by=str(row.get("JudgedBy") or JUDGED_BY_SETTING),
        )


# Table storage holds at most 64 KiB in a string property (32K UTF-16 characters). A snapshot
# that would not fit is not kept: the next partial delta item then re-reads the device.
MAX_SNAPSHOT_CHARS = 30_000


@dataclass(frozen=True, slots=True)
class StateRow:
    """DeviceState: the latest record, when eligibility last changed, an alert not yet confirmed
    published (the outbox that makes a crash between commit and publish harmless), and the last
    full snapshot of the device's facts with when they were observed (`Snapshot`, JSON of
    shared.core.observations.Facts): what a partial delta item is merged onto, and what an older
    observation is compared with."""

    record: DeviceRecord
    last_transition: str
    last_transition_at: datetime
    pending_alert: str = ""
    etag: str | None = None
    snapshot: str = ""
    # The failing compliance policies and settings the last lost alert carried (its
    # data.compliance, JSON), kept while the device stays ineligible: the report shows them
    # without reading Intune for every ineligible device.
    compliance_details: str = ""

    def entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.record.object_id,
            "RowKey": STATE_ROW_KEY,
            **self.record.columns(),
            "LastTransition": self.last_transition,
            "LastTransitionAt": self.last_transition_at,
            "PendingAlert": self.pending_alert,
            "Snapshot": self.snapshot,
            "ComplianceDetails": self.compliance_details,
        }

    @classmethod
    def from_entity(cls, entity: Any) -> StateRow:
        metadata = getattr(entity, "metadata", {}) or {}
        return cls(
            record=DeviceRecord.from_columns(entity["PartitionKey"], dict(entity)),
            last_transition=str(entity.get("LastTransition") or ""),
            last_transition_at=entity.get("LastTransitionAt") or entity["EvaluatedAt"],
            pending_alert=str(entity.get("PendingAlert") or ""),
            etag=metadata.get("etag"),
            snapshot=str(entity.get("Snapshot") or ""),
            compliance_details=str(entity.get("ComplianceDetails") or ""),
        )

    def without_pending(self) -> StateRow:
        return replace(self, pending_alert="")

    def with_snapshot(self, snapshot: str) -> StateRow:
        return replace(self, snapshot=snapshot if len(snapshot) <= MAX_SNAPSHOT_CHARS else "")


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """DeviceHistory: one row per state version, i.e. per observation that changed something.

    Immutable once its version is committed in DeviceState (DeviceStore.write_history)."""

    record: DeviceRecord
    transition: str
    alert_id: str = ""

    def entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.record.object_id,
            "RowKey": history_row_key(self.record.version),
            **self.record.columns(),
            "Transition": self.transition,
            "AlertId": self.alert_id,
        }

    @classmethod
    def from_entity(cls, entity: Any) -> HistoryRow:
        return cls(
            record=DeviceRecord.from_columns(entity["PartitionKey"], dict(entity)),
            transition=str(entity.get("Transition") or ""),
            alert_id=str(entity.get("AlertId") or ""),
        )


def record_of(observation: Observation, version: int, fingerprint: str) -> DeviceRecord:
    device, managed, evaluation = observation.device, observation.managed, observation.evaluation
    return DeviceRecord(
        object_id=device.object_id,
        version=version,
        evaluated_at=observation.observed_at,
        eligible=evaluation.eligible,
        reasons=tuple(r.value for r in evaluation.reasons),
        warnings=tuple(w.value for w in evaluation.warnings),
        policy=evaluation.policy.value,
        join_type=evaluation.join_type.value,
        compliance=evaluation.compliance.value,
        management=evaluation.management.value,
        display_name=device.display_name,
        device_id=device.device_id,
        trust_type=device.trust_type,
        operating_system=device.operating_system,
        operating_system_version=device.operating_system_version,
        account_enabled=device.account_enabled,
        deleted=device.deleted,
        grace_period_expires=evaluation.grace_period_expires,
        user_principal_name=managed.user_principal_name if managed else None,
        managed_device_id=managed.managed_device_id if managed else None,
        source=observation.source.value,
        correlation_id=observation.correlation_id,
        fingerprint=fingerprint,
        risk_reasons=tuple(r.value for r in evaluation.risk_reasons),
        deadline=evaluation.deadline,
        next_check=evaluation.next_check,
        compliance_error_since=evaluation.compliance_error_since,
        blocking_policies=evaluation.blocking_policies,
        report_only_failures=evaluation.report_only_failures,
        judged_by=evaluation.judged_by,
    )


def next_state(
    previous: StateRow | None,
    record: DeviceRecord,
    transition: Transition,
    pending_alert: str,
    snapshot: str = "",
    compliance_details: str = "",
) -> StateRow:
    """The state row after `record`; keeps the previous ETag so the write is optimistic.

    `compliance_details` is what this version's alert said of compliance; without an alert the
    previous version's words stay while the device is still ineligible (they are gone once it
    is eligible: nothing fails any more)."""
    moved = transition in (Transition.FIRST_SEEN, Transition.LOST, Transition.RESTORED)
    if not compliance_details and not moved and previous is not None and not record.eligible:
        compliance_details = previous.compliance_details
    return StateRow(
        record=record,
        last_transition=transition.value if moved or previous is None else previous.last_transition,
        last_transition_at=record.evaluated_at
        if moved or previous is None
        else previous.last_transition_at,
        pending_alert=pending_alert,
        etag=previous.etag if previous else None,
        compliance_details=compliance_details,
    ).with_snapshot(snapshot)


def pending_alert_id(state: StateRow | None) -> str | None:
    """The id of the alert a state row still has to publish (its outbox), if any."""
    if state is None or not state.pending_alert:
        return None
    return str(json.loads(state.pending_alert)["id"])
