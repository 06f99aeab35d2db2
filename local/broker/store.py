"""In-memory message stores: queues, topic subscriptions, dead-letter sub-queues.

What must survive a restart is also written to the journal (``journal``) by ``engine``;
these classes only hold the live state.

Everything here is plain data structures with O(1)/O(log n) operations per message;
delivery to links, locking and timers live in ``engine``.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .codec import Content
from .config import EntityOptions, TopicOptions

if TYPE_CHECKING:
    from .engine import Consumer

DEAD_LETTER_SUFFIX = "/$DeadLetterQueue"


@dataclass(slots=True, eq=False)
class StoredMessage:
    """One message in one store (each subscription holds its own copy)."""

    content: Content
    sequence_number: int
    enqueued_ms: int
    expires_ms: int | None
    delivery_count: int = 0
    deferred: bool = False


class ReadyQueue:
    """Messages available for delivery, handed out in sequence-number order.

    New messages arrive in increasing sequence order, so they live in a deque; messages
    coming back (abandoned, released, lock expired) go to a small heap so they are
    redelivered before newer ones, as Azure does, without an O(n) insertion.
    """

    __slots__ = ("_fresh", "_returned")

    def __init__(self) -> None:
        self._fresh: deque[StoredMessage] = deque()
        self._returned: list[tuple[int, StoredMessage]] = []

    def __len__(self) -> int:
        return len(self._fresh) + len(self._returned)

    def append(self, message: StoredMessage) -> None:
        self._fresh.append(message)

    def put_back(self, message: StoredMessage) -> None:
        heapq.heappush(self._returned, (message.sequence_number, message))

    def pop(self) -> StoredMessage | None:
        returned, fresh = self._returned, self._fresh
        if returned and (not fresh or returned[0][0] < fresh[0].sequence_number):
            return heapq.heappop(returned)[1]
        if fresh:
            return fresh.popleft()
        return None

    def __iter__(self) -> Iterator[StoredMessage]:
        yield from self._fresh
        for _seq, message in self._returned:
            yield message


class SessionState:
    """A message session of a session-enabled store."""

    __slots__ = ("in_flight", "lock_expires_ms", "owner", "ready", "session_id", "state")

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.ready = ReadyQueue()
        self.state: bytes | None = None
        self.owner: Consumer | None = None  # the receiver link holding the session lock
        self.lock_expires_ms = 0
        self.in_flight = 0  # deliveries locked under this session


class DuplicateDetector:
    """Message ids seen within the window; insertion order is expiry order."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._seen: OrderedDict[Any, int] = OrderedDict()

    def restore(self, message_id: Any, expires_ms: int) -> None:
        """Re-record an id from the journal; callers replay ids in expiry order."""
        self._seen[message_id] = expires_ms

    def is_duplicate(self, message_id: Any, now_ms: int) -> bool:
        seen = self._seen
        while seen:
            _oldest, expires = next(iter(seen.items()))
            if expires > now_ms:
                break
            seen.popitem(last=False)
        if message_id in seen:
            return True
        seen[message_id] = now_ms + self.window_ms
        return False


class ScheduledMessages:
    """Messages with a future scheduled enqueue time, by due time."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int]] = []
        self.pending: dict[int, Content] = {}

    def add(self, sequence_number: int, content: Content, due_ms: int) -> None:
        self.pending[sequence_number] = content
        heapq.heappush(self._heap, (due_ms, sequence_number))

    def cancel(self, sequence_number: int) -> None:
        self.pending.pop(sequence_number, None)

    def pop_due(self, now_ms: int) -> list[tuple[int, Content]]:
        due = []
        while self._heap and self._heap[0][0] <= now_ms:
            _due, seq = heapq.heappop(self._heap)
            content = self.pending.pop(seq, None)
            if content is not None:  # else cancelled
                due.append((seq, content))
        return due


class MessageStore:
    """A queue, a topic subscription, or the dead-letter sub-queue of either."""

    def __init__(
        self,
        path: str,
        options: EntityOptions,
        *,
        is_dead_letter: bool = False,
    ) -> None:
        self.path = path
        self.options = options
        self.is_dead_letter = is_dead_letter
        # Azure's dead-letter sub-queues are never session-enabled.
        self.requires_session = options.requires_session and not is_dead_letter
        self.lock_ms = int(options.lock_duration_seconds * 1000)
        self.dead_letter: MessageStore | None = (
            None
            if is_dead_letter
            else MessageStore(path + DEAD_LETTER_SUFFIX, options, is_dead_letter=True)
        )
        self.ready = ReadyQueue()  # non-session stores
        self.sessions: dict[str, SessionState] = {}
        # Unlocked sessions that have messages, oldest first (an ordered set).
        self.available_sessions: dict[str, None] = {}
        self.consumers: list[Consumer] = []
        self.session_waiters: list[Consumer] = []  # next-available receivers
        self.locked: dict[int, StoredMessage] = {}  # by sequence number, for peek
        self.deferred: dict[int, StoredMessage] = {}
        self._next_sequence = 1

    def __repr__(self) -> str:
        return f"<MessageStore {self.path}>"

    def next_sequence(self) -> int:
        seq = self._next_sequence
        self._next_sequence += 1
        return seq

    def restore_sequence(self, used: int) -> None:
        """After a restart, never hand out a sequence number the journal has seen used."""
        self._next_sequence = max(self._next_sequence, used + 1)

    def session(self, session_id: str) -> SessionState:
        state = self.sessions.get(session_id)
        if state is None:
            state = self.sessions[session_id] = SessionState(session_id)
        return state

    def add(self, message: StoredMessage, *, returned: bool = False) -> SessionState | None:
        """Make a message available; returns its session for session stores."""
        if not self.requires_session:
            if returned:
                self.ready.put_back(message)
            else:
                self.ready.append(message)
            return None
        session_id = message.content.session_id or ""
        state = self.session(session_id)
        if returned:
            state.ready.put_back(message)
        else:
            state.ready.append(message)
        if state.owner is None:
            self.available_sessions[session_id] = None
        return state

    def take_available_session(self) -> SessionState | None:
        """Pop the oldest unlocked session that still has messages."""
        while self.available_sessions:
            session_id = next(iter(self.available_sessions))
            del self.available_sessions[session_id]
            state = self.sessions.get(session_id)
            if state is not None and state.owner is None and state.ready:
                return state
        return None

    def forget_if_idle(self, state: SessionState) -> None:
        # Unique session ids would otherwise accumulate forever.
        if state.owner is None and not state.ready and state.in_flight == 0 and state.state is None:
            self.sessions.pop(state.session_id, None)
            self.available_sessions.pop(state.session_id, None)

    def active_messages(self, session_id: str | None = None) -> list[StoredMessage]:
        """Every message still in the store (available, locked, deferred), by sequence."""
        if self.requires_session:
            states = (
                [self.sessions[session_id]]
                if session_id is not None and session_id in self.sessions
                else ([] if session_id is not None else list(self.sessions.values()))
            )
            messages = [m for s in states for m in s.ready]
        else:
            messages = list(self.ready)
        extra = list(self.locked.values()) + list(self.deferred.values())
        if session_id is not None:
            extra = [m for m in extra if m.content.session_id == session_id]
        messages += extra
        messages.sort(key=lambda m: m.sequence_number)
        return messages

    def message_count(self) -> int:
        ready = (
            sum(len(s.ready) for s in self.sessions.values())
            if self.requires_session
            else len(self.ready)
        )
        return ready + len(self.locked) + len(self.deferred)


class Topic:
    """A topic fans every message out to all of its subscriptions."""

    def __init__(self, name: str, options: TopicOptions) -> None:
        self.path = name
        self.options = options
        self.subscriptions = {
            sub.lower(): MessageStore(f"{name}/Subscriptions/{sub}", sub_options)
            for sub, sub_options in options.subscriptions.items()
        }
        self.dedupe = (
            DuplicateDetector(int(options.duplicate_detection_window_seconds * 1000))
            if options.duplicate_detection
            else None
        )
        self.scheduled = ScheduledMessages()
        self._next_sequence = 1

    def __repr__(self) -> str:
        return f"<Topic {self.path}>"

    def next_sequence(self) -> int:
        seq = self._next_sequence
        self._next_sequence += 1
        return seq

    def restore_sequence(self, used: int) -> None:
        self._next_sequence = max(self._next_sequence, used + 1)

    @property
    def stores(self) -> list[MessageStore]:
        return list(self.subscriptions.values())


class Queue(MessageStore):
    """A queue: a store that is also a send target."""

    def __init__(self, name: str, options: EntityOptions) -> None:
        super().__init__(name, options)
        self.dedupe = (
            DuplicateDetector(int(options.duplicate_detection_window_seconds * 1000))
            if options.duplicate_detection
            else None
        )
        self.scheduled = ScheduledMessages()

    @property
    def stores(self) -> list[MessageStore]:
        return [self]
