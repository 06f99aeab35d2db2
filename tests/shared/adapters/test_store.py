"""DeviceHistory rows are immutable once committed: DeviceStore.write_history through Azurite and
the real azure-data-tables SDK (issue 17 item 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.store import DeviceStore, HistoryConflict, StateConflict
from shared.core.models import Transition
from shared.core.records import DeviceRecord, HistoryRow, StateRow, next_state
from shared.runtime import Runtime

OBJECT_ID = "3f2c0b8e-1d7a-4c1e-9a51-0a7e6b2f9c11"
T0 = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=UTC)


def record(version: int, *, eligible: bool = True, minutes: int = 0) -> DeviceRecord:
    return DeviceRecord(
        object_id=OBJECT_ID,
        version=version,
        evaluated_at=T0 + timedelta(minutes=minutes),
        eligible=eligible,
        reasons=() if eligible else ("NOT_COMPLIANT",),
        warnings=(),
        policy="compliant_or_hybrid",
        join_type="entra_joined",
        compliance="compliant" if eligible else "noncompliant",
        management="intune",
        display_name="LAPTOP-0042",
        device_id="6fa60d52-01e7-4b18-8055-4759461fc16b",
        trust_type="AzureAd",
        operating_system="Windows",
        operating_system_version="10.0.22631.4460",
        account_enabled=True,
        deleted=False,
        grace_period_expires=None,
        user_principal_name=None,  # None columns are not stored: compared as absent
        managed_device_id=None,
        source="sync",
        correlation_id=f"c{version}-{minutes}",
        fingerprint=f"f{version}-{eligible}",
    )


def first_seen(minutes: int = 0) -> HistoryRow:
    return HistoryRow(record(1, minutes=minutes), Transition.FIRST_SEEN.value)


def lost(minutes: int = 0) -> HistoryRow:
    return HistoryRow(record(2, eligible=False, minutes=minutes), Transition.LOST.value, "alert-2")


@pytest.fixture
async def store(runtime: Runtime) -> AsyncIterator[DeviceStore]:
    yield await runtime.store()


async def commit(store: DeviceStore, row: HistoryRow) -> StateRow:
    """What the pipeline does after the history write: move the state row to the row's version."""
    previous = await store.get_state(OBJECT_ID)
    return await store.commit_state(
        next_state(previous, row.record, Transition(row.transition), "")
    )


async def stored(store: DeviceStore, version: int) -> HistoryRow | None:
    return await store.get_history_row(OBJECT_ID, version)


async def test_a_committed_history_row_is_never_overwritten_with_other_content(
    store: DeviceStore,
) -> None:
    original = first_seen()
    await store.write_history(original)
    await commit(store, original)

    # The shape of issue 17: a first sighting of an already known device, observed later.
    with pytest.raises(HistoryConflict) as raised:
        await store.write_history(first_seen(minutes=5))

    assert (raised.value.version, raised.value.committed_version) == (1, 1)
    assert await stored(store, 1) == original
    # Any column counts, not only the time.
    with pytest.raises(HistoryConflict):
        await store.write_history(replace(original, alert_id="another-alert"))
    assert await stored(store, 1) == original


async def test_writing_the_same_content_again_is_an_idempotent_no_op(store: DeviceStore) -> None:
    original = first_seen()
    await store.write_history(original)
    await store.write_history(original)  # before the commit: a retried create
    await commit(store, original)
    await store.write_history(original)  # and after it

    assert [row async for row in store.history(OBJECT_ID)] == [original]


@pytest.mark.parametrize("state_version", [0, 1], ids=["first_sighting", "later_version"])
async def test_an_uncommitted_row_is_replaced_by_the_retry(
    store: DeviceStore, state_version: int
) -> None:
    """A crash between the history write and the state commit leaves a row the retry replaces."""
    if state_version:
        await store.write_history(first_seen())
        await commit(store, first_seen())
    make = first_seen if state_version == 0 else lost
    leftover, retry = make(minutes=1), make(minutes=2)
    await store.write_history(leftover)

    await store.write_history(retry)
    await commit(store, retry)

    assert await stored(store, state_version + 1) == retry
    with pytest.raises(HistoryConflict):  # and from now on it is committed
        await store.write_history(leftover)


async def test_the_next_versions_row_proves_a_row_committed_even_without_a_state_row(
    store: DeviceStore,
) -> None:
    # DeviceState lost (say, deleted by hand) while the timeline stayed: version 1 is still
    # committed, because version 2 exists and is only ever written after 1 was committed.
    await store.write_history(first_seen())
    await store.write_history(lost())
    assert await store.get_state(OBJECT_ID) is None

    with pytest.raises(HistoryConflict):
        await store.write_history(first_seen(minutes=9))
    assert await stored(store, 1) == first_seen()


class RacedStore(DeviceStore):
    """Another attempt replaces the leftover while this one decides whether it may."""

    def __init__(self, inner: DeviceStore, other: HistoryRow) -> None:
        self.__dict__.update(inner.__dict__)
        self._other = other
        self._inner = inner

    async def _committed_version(self, object_id: str) -> int:
        await self._inner.write_history(self._other)
        return await super()._committed_version(object_id)


async def test_a_replacement_is_guarded_by_the_rows_etag(store: DeviceStore) -> None:
    await store.write_history(first_seen(minutes=1))  # a leftover of a crashed attempt
    other = first_seen(minutes=2)
    raced = RacedStore(store, other)

    with pytest.raises(StateConflict):
        await raced.write_history(first_seen(minutes=3))

    assert await stored(store, 1) == other  # the first replacement stands; the pipeline retries
