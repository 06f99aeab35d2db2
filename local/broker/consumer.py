"""Receiver links (``Consumer``), message locks, settlement outcomes and AMQP errors.

These are the broker's view of the proton objects it hands messages to; the
decisions about what to deliver and when live in ``engine``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import Enum

from proton import Condition, Delivery, Disposition, Sender, symbol

from .store import MessageStore, SessionState, StoredMessage

SESSION_FILTER = symbol("com.microsoft:session-filter")
SESSION_LOCKED_UNTIL = symbol("com.microsoft:locked-until-utc")
# .NET ticks at the Unix epoch: the SDK reads locked-until-utc as a DateTime tick count.
DOTNET_EPOCH_TICKS = 621355968000000000

# Azure waits this long for a next-available session when the client gave no timeout.
DEFAULT_SESSION_WAIT_MS = 60_000

ERR_LOCK_LOST = "com.microsoft:message-lock-lost"
ERR_SESSION_LOCK_LOST = "com.microsoft:session-lock-lost"
ERR_SESSION_CANNOT_BE_LOCKED = "com.microsoft:session-cannot-be-locked"
ERR_TIMEOUT = "com.microsoft:timeout"


class Outcome(Enum):
    COMPLETE = "complete"
    ABANDON = "abandon"  # delivery failed: delivery count + 1
    RELEASE = "release"  # never processed: no delivery count
    DEAD_LETTER = "dead-letter"
    DEFER = "defer"


class PublishError(ValueError):
    """A message the entity refuses (the sender gets a rejected disposition)."""

    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


def error(name: str, description: str) -> Condition:
    """An AMQP error carrying an info map: the SDK indexes the info field
    unconditionally in some paths, and proton omits it when empty."""
    return Condition(name, description, {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())})


def now_ms() -> int:
    return int(time.time() * 1000)


class Consumer:
    """A receiver link attached to a queue, subscription or dead-letter queue."""

    def __init__(
        self,
        link: Sender,
        store: MessageStore,
        *,
        receive_and_delete: bool,
        name: str,
    ) -> None:
        self.link = link
        self.store = store
        self.receive_and_delete = receive_and_delete
        self.name = name
        self.session: SessionState | None = None
        self.locks: dict[uuid.UUID, Lock] = {}
        self.closed = False
        self.opened = False

    def __repr__(self) -> str:
        return f"<Consumer {self.name} on {self.store.path}>"

    @property
    def credit(self) -> int:
        return 0 if self.closed or not self.opened else self.link.credit

    def open(self, session_id: str | None = None, locked_until_ms: int | None = None) -> None:
        """Answer the attach; for sessions, tell the SDK which session it got."""
        link = self.link
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        if session_id is not None:
            # The SDK reads the granted session id back from the source filter.
            link.source.filter.clear()
            link.source.filter.put_dict({SESSION_FILTER: session_id})
            assert locked_until_ms is not None
            link.properties = {
                SESSION_LOCKED_UNTIL: DOTNET_EPOCH_TICKS + locked_until_ms * 10_000,
            }
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        link.open()
        self.opened = True

    def fail(self, condition: str, description: str) -> None:
        """Refuse or end the link with an error, as Azure does (attach then detach)."""
        if self.closed:
            return
        link = self.link
        if not self.opened:
            link.source.copy(link.remote_source)
            # A different address keeps the SDK from reading a session grant off it.
            link.source.address = self.store.path
            link.target.copy(link.remote_target)
            link.open()
        link.condition = error(condition, description)
        link.close()
        self.closed = True


@dataclass(slots=True, eq=False)
class Lock:
    """A peek-lock on a delivered message, identified by its lock token."""

    token: uuid.UUID
    message: StoredMessage
    store: MessageStore
    session: SessionState | None
    consumer: Consumer | None
    delivery: Delivery | None
    expires_ms: int


def settle_delivery(delivery: Delivery, outcome: Outcome) -> None:
    """Echo the applied outcome: the SDK checks the echo matches what it asked for."""
    state = {
        Outcome.COMPLETE: Disposition.ACCEPTED,
        Outcome.ABANDON: Disposition.MODIFIED,
        Outcome.DEFER: Disposition.MODIFIED,
        Outcome.RELEASE: Disposition.RELEASED,
        Outcome.DEAD_LETTER: Disposition.REJECTED,
    }[outcome]
    delivery.update(state)
    delivery.settle()


def reject_lock_lost(delivery: Delivery) -> None:
    delivery.local.condition = error(
        ERR_LOCK_LOST,
        "The lock supplied is invalid. Either the lock expired, or the message has "
        "already been removed from the queue.",
    )
    delivery.update(Disposition.REJECTED)
    delivery.settle()
