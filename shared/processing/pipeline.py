"""One device change, end to end: facts → evaluate → compare → history + state → alert.

The facts come with the change (a delta item, the Intune list: shared/core/observations.py), merged
onto the last full snapshot when the item is partial, or are re-read from Graph for a bare hint;
an observation older than the stored one changes nothing.

Crash-safety, step by step (each is tested by failing it):
1. history row for version N+1 is written (keyed by version); a row that exists is kept when it
   holds the same content, replaced only while uncommitted (the state row is below N+1), and
   never overwritten once committed (HistoryConflict; see shared/adapters/store.py);
2. the state row moves to N+1 under its ETag, carrying the alert as `PendingAlert` (an outbox);
3. the alert is published with its deterministic id as message id (the topic drops duplicates);
4. `PendingAlert` is cleared.
A crash before 2 leaves an uncommitted history row that the retry replaces; a crash after 2
leaves a pending alert that the next attempt for the device publishes first. So a redelivered
message can neither lose the alert nor raise it twice. A device that never changes again would
keep its pending alert forever: before 2 the alert is also held in the PendingAlerts index
(shared/adapters/pending_alerts.py), which the sweep timer reads to publish what is left behind; the
index row is released after 4.

The same outbox carries at_risk and at_risk_cleared (shared/core/events.py). When the evaluation's
`next_check` differs from the stored `NextCheckAt`, the deadline scheduler is told before the
state commit (even when nothing else changed, then only the state row's NextCheckAt moves): a crash
in between leaves the old NextCheckAt, so the retry tells the scheduler again, which must be
idempotent. Never told the other way round, a device could miss its deadline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared import logs
from shared.adapters.store import HistoryConflict, StateConflict
from shared.core.changes import DeviceChange
from shared.core.compliance_details import ComplianceDetails
from shared.core.evaluation import EvaluationOptions, evaluate, fingerprint
from shared.core.events import (
    EVENT_TYPES,
    PreviousVerdict,
    build_alert,
    compliance_details_for,
    predecessor_verdict,
    transition_of,
    verdict_of,
    wants_predecessor,
    with_compliance,
)
from shared.core.models import (
    DeviceSnapshot,
    Evaluation,
    ManagedDeviceSnapshot,
    Observation,
    Transition,
    utc_now,
)
from shared.core.observations import (
    Facts,
    ObservationError,
    plan,
    same_facts,
    snapshots,
    with_held_intune,
)
from shared.core.policy_eligibility import CompiledPolicySet
from shared.core.records import (
    DeviceRecord,
    HistoryRow,
    StateRow,
    next_state,
    pending_alert_id,
    record_of,
)
from shared.core.tenant_settings import TenantSettings
from shared.processing.ports import (
    ComplianceReader,
    DeadlineScheduler,
    DeviceReader,
    Outbox,
    Publisher,
    StateStore,
)

log = logging.getLogger("devicemon.pipeline")
MAX_CONFLICT_RETRIES = 5


@dataclass(frozen=True, slots=True)
class Outcome:
    device_id: str
    transition: Transition | None  # None: nothing known about a device that is already gone
    version: int
    eligible: bool | None
    reasons: tuple[str, ...] = ()
    alert_id: str | None = None


def _stored_facts(state: StateRow | None) -> Facts | None:
    """The last full facts the state row holds; None for a row written before snapshots were
    kept, or one that cannot be read (the next change then re-reads the device, as a hint does)."""
    if state is None or not state.snapshot:
        return None
    try:
        return Facts.from_json(state.snapshot)
    except ObservationError:
        return None


def _with_identity_of(device: DeviceSnapshot, known: DeviceRecord) -> DeviceSnapshot:
    """A deleted device keeps the name, join and OS we last saw, so its alert says what it was."""
    return replace(
        device,
        device_id=known.device_id,
        display_name=known.display_name,
        trust_type=known.trust_type,
        operating_system=known.operating_system,
        operating_system_version=known.operating_system_version,
        account_enabled=known.account_enabled,
    )


class Pipeline:
    def __init__(
        self,
        *,
        graph: DeviceReader,
        store: StateStore,
        publisher: Publisher,
        outbox: Outbox,
        options: EvaluationOptions,
        event_source: str,
        clock: Callable[[], datetime] = utc_now,
        compliance: ComplianceReader | None = None,
        tenant: Callable[[], Awaitable[TenantSettings]] | None = None,
        scheduler: DeadlineScheduler | None = None,
        policies: Callable[[], Awaitable[CompiledPolicySet | None]] | None = None,
    ) -> None:
        self._graph = graph
        self._store = store
        self._publisher = publisher
        self._outbox = outbox
        self._options = options
        self._event_source = event_source
        self._clock = clock
        self._compliance = compliance
        # The tenant's Intune compliance settings in effect (shared.adapters.tenant_settings).
        self._tenant = tenant
        self._scheduler = scheduler
        # The tenant's compiled CA policies; None (or a callable answering None) leaves the
        # CA_POLICY setting to judge.
        self._policies = policies

    async def process(self, change: DeviceChange) -> Outcome:
        started = time.perf_counter()
        # Compliance details read by an attempt that lost a state conflict, by alert id: the
        # retry raises the same alert and does not ask Intune again.
        read: dict[str, ComplianceDetails] = {}
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                outcome = await self._attempt(change, read)
            except StateConflict:
                logs.event(
                    log,
                    "state_conflict",
                    device_id=change.device_id,
                    correlation_id=change.correlation_id,
                )
                continue
            logs.event(
                log,
                "device_evaluated",
                device_id=change.device_id,
                correlation_id=change.correlation_id,
                source=change.source.value,
                transition=outcome.transition.value if outcome.transition else "ignored",
                eligible=outcome.eligible,
                reasons=outcome.reasons,
                version=outcome.version,
                alert_id=outcome.alert_id,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            return outcome
        raise StateConflict(
            f"device {change.device_id}: state changed under us {MAX_CONFLICT_RETRIES} times"
        )

    async def _facts(
        self, change: DeviceChange, stored: Facts | None, deleted: bool
    ) -> Facts | None:
        """The facts to evaluate, None when the change is older than what is stored. A bare
        hint, or a partial item with nothing to merge onto, is re-read from Graph; Intune is read
        only when the facts in hand do not already say it (observations.with_held_intune) and
        Intune may be the device's MDM."""
        decided = plan(
            change.facts, stored, stored_deleted=deleted, required=self._graph.device_properties
        )
        if decided.stale:
            return None
        if decided.facts is not None:
            facts = decided.facts
        else:
            facts = await self._graph.read(
                change.device_id,
                self._clock(),
                stored.device if stored is not None and not deleted else None,
                gone_expected=change.change_type == "deleted",
            )
            facts = with_held_intune(facts, stored, deleted)
        if not self._graph.intune_enabled:
            facts = replace(facts, managed=None, managed_at=None)
        elif facts.managed is None and not facts.removed:
            managed = await self._graph.managed_for(facts.device)
            facts = replace(facts, managed=managed, managed_at=self._clock())
        # The change's id is the normalised one (shared/core/changes.py); the record and its
        # table keys follow it, whatever spelling the source used.
        return replace(facts, device={**facts.device, "id": change.device_id})

    async def _attempt(self, change: DeviceChange, read: dict[str, ComplianceDetails]) -> Outcome:
        state = await self._store.get_state(change.device_id)
        if state is not None and state.pending_alert:
            state = await self.publish_pending(state, change.correlation_id)
        previous = state.record if state else None
        stored = _stored_facts(state)
        deleted = bool(previous and previous.deleted) or bool(stored and stored.removed)
        facts = await self._facts(change, stored, deleted)
        if facts is None:
            logs.event(
                log,
                "observation_stale",
                device_id=change.device_id,
                correlation_id=change.correlation_id,
                observed_at=change.facts.observed_at.isoformat() if change.facts else None,
            )
            assert previous is not None
            return Outcome(
                change.device_id,
                Transition.UNCHANGED,
                previous.version,
                previous.eligible,
                previous.reasons,
            )
        device, managed = snapshots(facts)
        if device.deleted and previous is None:
            # Nothing to compare with and nothing to say about it: not worth a row.
            return Outcome(change.device_id, None, 0, None)
        if device.deleted and previous is not None:
            device = _with_identity_of(device, previous)

        observed_at = self._clock()
        options = self._options
        if self._tenant is not None:
            options = replace(options, tenant=await self._tenant())
        policies = await self._policies() if self._policies is not None else None
        evaluation = evaluate(
            device,
            managed,
            options,
            observed_at,
            device_json=facts.device if policies is not None else None,
            policies=policies,
            compliance_error_since=previous.compliance_error_since if previous else None,
        )
        digest = fingerprint(device, managed, evaluation)
        predecessor = None
        if previous is None and wants_predecessor(device, evaluation):
            predecessor = await self._predecessor(device)
        transition = transition_of(previous, evaluation, digest, predecessor)
        if transition is Transition.UNCHANGED:
            assert previous is not None and state is not None
            kept = state
            if not same_facts(facts, stored):
                # Nothing to record, but the facts moved (a sign-in time, a property the verdict
                # does not read yet): the snapshot the next partial item merges onto must hold
                # them, or a later merge would bring an old value back.
                kept = kept.with_snapshot(facts.to_json())
            if evaluation.next_check != previous.next_check:
                # Only the schedule moved (a check-in pushed the validity deadline back, a
                # warning time was reached): no history row, but the scheduler and NextCheckAt.
                await self._schedule(change.device_id, evaluation.next_check, previous.next_check)
                kept = replace(kept, record=replace(kept.record, next_check=evaluation.next_check))
            if kept is not state:
                await self._store.commit_state(kept)
            return Outcome(
                change.device_id, transition, previous.version, previous.eligible, previous.reasons
            )

        version = previous.version + 1 if previous else 1
        observation = Observation(
            device, managed, evaluation, observed_at, change.source, change.correlation_id
        )
        alert = None
        before = verdict_of(previous) if previous is not None else predecessor
        if transition in EVENT_TYPES and before is not None:
            alert = build_alert(
                transition=transition,
                version=version,
                device=device,
                managed=managed,
                evaluation=evaluation,
                previous=before,
                source=change.source,
                detected_at=observed_at,
                correlation_id=change.correlation_id,
                event_source=self._event_source,
                at_risk_lead=options.at_risk_lead,
            )
            alert = await self._with_compliance(alert, transition, evaluation, managed, read)
        record = record_of(observation, version, digest)
        alert_id = alert["id"] if alert else None
        try:
            await self._store.write_history(HistoryRow(record, transition.value, alert_id or ""))
        except HistoryConflict as exc:
            if record.object_id == change.device_id and exc.committed_version >= version:
                # The state moved past the version we read (another attempt committed it): the
                # committed row stays as it is and a fresh read starts from it.
                raise StateConflict(str(exc)) from exc
            # We read another key's state, or the state lags its own history: no re-read fixes
            # that. Fail the message (retried, then dead-lettered); the committed row is kept.
            raise
        if alert is not None:
            await self._outbox.hold(change.device_id, alert["id"], alert["type"], observed_at)
        before_check = previous.next_check if previous else None
        if evaluation.next_check != before_check:
            await self._schedule(change.device_id, evaluation.next_check, before_check)
        compliance = alert["data"].get("compliance") if alert else None
        committed = await self._store.commit_state(
            next_state(
                state,
                record,
                transition,
                json.dumps(alert) if alert else "",
                facts.to_json(),
                json.dumps(compliance) if compliance else "",
            )
        )
        if alert is not None:
            await self.publish_pending(committed, change.correlation_id)
        return Outcome(
            change.device_id, transition, version, evaluation.eligible, record.reasons, alert_id
        )

    async def _schedule(
        self, object_id: str, due: datetime | None, previous_due: datetime | None
    ) -> None:
        if self._scheduler is None:
            return
        await self._scheduler.schedule(object_id, due, previous_due)
        logs.event(
            log,
            "deadline_scheduled",
            device_id=object_id,
            due=due.isoformat() if due else None,
            previous_due=previous_due.isoformat() if previous_due else None,
        )

    async def _with_compliance(
        self,
        alert: dict[str, Any],
        transition: Transition,
        evaluation: Evaluation,
        managed: ManagedDeviceSnapshot | None,
        read: dict[str, ComplianceDetails],
    ) -> dict[str, Any]:
        """The alert with the device's failing compliance policies and settings, read before the
        alert goes into the outbox: a redelivery republishes what was stored, never a second read
        that could say something else (docs/reliability.md)."""
        managed_id = compliance_details_for(transition, evaluation, managed)
        if self._compliance is None or managed_id is None:
            return alert
        details = read.get(alert["id"])
        if details is None:
            details = read[alert["id"]] = await self._compliance(managed_id)
            logs.event(
                log,
                "compliance_details_read",
                device_id=alert["data"]["device"]["objectId"],
                alert_id=alert["id"],
                failing_settings=len(details.failing_settings),
                unavailable=details.unavailable,
            )
        return with_compliance(alert, details)

    async def _predecessor(self, device: DeviceSnapshot) -> PreviousVerdict | None:
        """What devicemon last knew of this device under another object id, the same deviceId
        (events.wants_predecessor: asked only for a Pending first sighting). A query on a column
        that is not a key is a table scan; it runs for those first sightings alone."""
        rows, _ = await self._store.page_states(
            "DeviceId eq @deviceId", {"deviceId": device.device_id}, top=10
        )
        records = []
        for row in rows:
            if row.record.object_id == device.object_id:
                continue
            records.append(row.record)
            if row.record.deleted:
                # The verdict before the deletion is the one that says what access was lost.
                records += [h.record async for h in self._store.history(row.record.object_id, 3)]
        return predecessor_verdict(device.object_id, records)

    async def publish_pending(self, state: StateRow, correlation_id: str = "") -> StateRow:
        """Publish the alert the state row holds, clear it, release its index row."""
        alert = json.loads(state.pending_alert)
        object_id = state.record.object_id
        await self._publisher.publish(alert)
        logs.event(
            log,
            "alert_published",
            device_id=object_id,
            correlation_id=correlation_id or state.record.correlation_id,
            alert_id=alert["id"],
            type=alert["type"],
        )
        try:
            cleared = await self._store.commit_state(state.without_pending())
        except StateConflict:
            # Another writer moved the row on; whatever it holds now is handled by a re-read.
            fresh = await self._store.get_state(object_id)
            cleared = fresh if fresh is not None else state.without_pending()
        if pending_alert_id(cleared) != alert["id"]:
            await self._outbox.release(object_id, alert["id"])
        return cleared
