"""The broker's journal: what it acknowledged, on disk, so a killed broker loses nothing.

Service Bus never loses a message it has accepted, so a local stand-in that keeps them only in
memory makes fault tests measure the emulator instead of the code under test. With a journal
the broker writes every change of durable state (messages of every store, dead-letter queues,
scheduled messages, duplicate-detection ids, session state, sequence numbers) to SQLite in WAL
mode, and commits *before* any byte that acknowledges the change leaves for the client: the
server commits at the top of every socket write (``Journal.commit``), so the accepted
disposition of a send, the settlement of a complete or dead-letter, the response of a
schedule / cancel / set-session-state request are all answered after their transaction.

Changes are buffered as "the current state of this row" rather than as a log: a whole
``send_messages`` batch (one AMQP transfer) and everything else that happened in the same turn
of the event loop go into one transaction, and a message sent and completed within one turn
never reaches the disk at all.

What is deliberately not journaled: locks (message and session). After a restart every
message that was locked is available again with the delivery count it had, as after a lock
expiry in Azure (which would also count that delivery).

Durability is against the death of the broker process (SIGKILL included): a WAL commit is in
the operating system's file cache when ``commit`` returns. It is not synced to the device on
every commit (``synchronous=NORMAL``), so a power cut could lose the last commits; the local
stack's fault tests kill processes, not machines.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .codec import Content, encode_stored, parse_message

if TYPE_CHECKING:
    from .store import MessageStore, Queue, StoredMessage, Topic

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Expired duplicate-detection ids are deleted at most this often (they are already ignored
# on replay; this only bounds the table).
PRUNE_INTERVAL_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    store TEXT NOT NULL,
    seq INTEGER NOT NULL,
    content BLOB NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    delivery_count INTEGER NOT NULL,
    deferred INTEGER NOT NULL,
    PRIMARY KEY (store, seq)
);
CREATE TABLE IF NOT EXISTS scheduled (
    entity TEXT NOT NULL,
    seq INTEGER NOT NULL,
    content BLOB NOT NULL,
    due_ms INTEGER NOT NULL,
    PRIMARY KEY (entity, seq)
);
CREATE TABLE IF NOT EXISTS dedupe (
    entity TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (entity, message_id)
);
CREATE INDEX IF NOT EXISTS dedupe_expiry ON dedupe (expires_ms);
CREATE TABLE IF NOT EXISTS session_state (
    store TEXT NOT NULL,
    session_id TEXT NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (store, session_id)
);
CREATE TABLE IF NOT EXISTS sequences (
    path TEXT PRIMARY KEY,
    used INTEGER NOT NULL
);
"""


class JournalError(RuntimeError):
    """The journal cannot be opened, replayed or written."""


@dataclass(frozen=True, slots=True)
class JournaledMessage:
    store: str
    seq: int
    content: Content
    enqueued_ms: int
    expires_ms: int | None
    delivery_count: int
    deferred: bool


def id_key(message_id: Any) -> str | None:
    """A message id as journal text, typed so ``"1"`` and ``1`` stay different ids.

    The codec decodes ids to str, int (bools included), bytes or UUID; anything else is not
    journaled (it would not come back equal).
    """
    if isinstance(message_id, str):
        return "s:" + message_id
    if isinstance(message_id, int):
        return f"i:{int(message_id)}"
    if isinstance(message_id, bytes):
        return "b:" + message_id.hex()
    if isinstance(message_id, uuid.UUID):
        return "u:" + str(message_id)
    return None


def id_from_key(key: str) -> Any:
    kind, value = key[:2], key[2:]
    if kind == "s:":
        return value
    if kind == "i:":
        return int(value)
    if kind == "b:":
        return bytes.fromhex(value)
    if kind == "u:":
        return uuid.UUID(value)
    raise JournalError(f"unknown message id key {key!r}")


class Journal:
    """No journal: the in-memory broker. Every hook is a no-op.

    The engine calls these hooks right after it changes the state they name; a journal
    records the change and makes it durable in ``commit``.
    """

    def added(self, store: MessageStore, message: StoredMessage) -> None:
        """A message was put into a store (publish, dead-letter move, scheduled and due)."""

    def changed(self, store: MessageStore, message: StoredMessage) -> None:
        """A stored message's delivery count or deferred flag changed."""

    def removed(self, store: MessageStore, message: StoredMessage) -> None:
        """A message left a store (completed, received-and-deleted, moved, expired)."""

    def scheduled(self, target: Queue | Topic, seq: int, content: Content, due_ms: int) -> None:
        """A message was scheduled for later enqueueing."""

    def unscheduled(self, target: Queue | Topic, seq: int) -> None:
        """A scheduled message was cancelled or became due."""

    def seen(self, target: Queue | Topic, message_id: Any, expires_ms: int) -> None:
        """Duplicate detection recorded a message id until ``expires_ms``."""

    def session_state(self, store: MessageStore, session_id: str, state: bytes | None) -> None:
        """A session's state was set (None clears it)."""

    def sequence(self, path: str, used: int) -> None:
        """Sequence number ``used`` was handed out by the entity or store at ``path``."""

    def commit(self) -> None:
        """Make everything recorded so far durable (called before any output is sent)."""

    def close(self) -> None:
        """Commit and release the journal."""


class SqliteJournal(Journal):
    """The journal in one SQLite file (WAL mode), owned exclusively by one broker."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Autocommit mode: transactions are opened explicitly in ``commit``.
            # No busy wait: the only other holder of the lock would be a live second broker
            # (a killed one releases it with its process), which should fail at once.
            # Not tied to a thread: a Server may be built in one thread and served in another;
            # only one of them uses the journal at any time.
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=0, check_same_thread=False
            )
            # Exclusive: a second broker on the same file fails at start instead of two
            # brokers silently overwriting each other's state. The OS lock goes with the
            # process, so a killed broker never blocks its successor.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"{self.path}: cannot use WAL mode (got {mode!r})")
            # Durable when the process dies, without an fsync per commit (see module doc).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA journal_size_limit=67108864")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise JournalError(
                    f"{self.path}: journal schema {version}, this broker writes {SCHEMA_VERSION}"
                )
            # A write transaction now takes the exclusive lock (kept until close).
            self._db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot open the broker journal: {exc}") from exc
        self._new: dict[tuple[str, int], StoredMessage] = {}
        self._changed: dict[tuple[str, int], StoredMessage] = {}
        self._removed: set[tuple[str, int]] = set()
        self._sched_new: dict[tuple[str, int], tuple[Content, int]] = {}
        self._sched_removed: set[tuple[str, int]] = set()
        self._seen: dict[tuple[str, str], int] = {}
        self._session_states: dict[tuple[str, str], bytes | None] = {}
        self._sequences: dict[str, int] = {}
        self._dirty = False
        self._broken = False
        self._next_prune_ms = 0
        self.commits = 0  # transactions written, for tests and measurements

    # ------------------------------------------------------------------ hooks

    def added(self, store: MessageStore, message: StoredMessage) -> None:
        self._new[(store.path, message.sequence_number)] = message
        self._dirty = True

    def changed(self, store: MessageStore, message: StoredMessage) -> None:
        key = (store.path, message.sequence_number)
        if key not in self._new:  # a new row is written with its current fields anyway
            self._changed[key] = message
            self._dirty = True

    def removed(self, store: MessageStore, message: StoredMessage) -> None:
        key = (store.path, message.sequence_number)
        self._changed.pop(key, None)
        if self._new.pop(key, None) is None:  # not on disk yet: nothing to delete
            self._removed.add(key)
            self._dirty = True

    def scheduled(self, target: Queue | Topic, seq: int, content: Content, due_ms: int) -> None:
        self._sched_new[(target.path, seq)] = (content, due_ms)
        self._dirty = True

    def unscheduled(self, target: Queue | Topic, seq: int) -> None:
        key = (target.path, seq)
        if self._sched_new.pop(key, None) is None:
            self._sched_removed.add(key)
            self._dirty = True

    def seen(self, target: Queue | Topic, message_id: Any, expires_ms: int) -> None:
        key = id_key(message_id)
        if key is not None:
            self._seen[(target.path, key)] = expires_ms
            self._dirty = True

    def session_state(self, store: MessageStore, session_id: str, state: bytes | None) -> None:
        self._session_states[(store.path, session_id)] = state
        self._dirty = True

    def sequence(self, path: str, used: int) -> None:
        if used > self._sequences.get(path, 0):
            self._sequences[path] = used
            self._dirty = True

    # ------------------------------------------------------------------ writing

    def commit(self) -> None:
        if not self._dirty:
            return
        if self._broken:
            # A failed commit must never be followed by an acknowledgement of anything.
            raise JournalError(f"{self.path}: an earlier journal write failed")
        db = self._db
        encoded: dict[int, bytes] = {}  # a topic's copies share one Content: encode it once

        def blob(content: Content) -> bytes:
            data = encoded.get(id(content))
            if data is None:
                data = encoded[id(content)] = encode_stored(content)
            return data

        try:
            db.execute("BEGIN")
            if self._new:
                db.executemany(
                    "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            path,
                            seq,
                            blob(m.content),
                            m.enqueued_ms,
                            m.expires_ms,
                            m.delivery_count,
                            int(m.deferred),
                        )
                        for (path, seq), m in self._new.items()
                    ],
                )
            if self._changed:
                db.executemany(
                    "UPDATE messages SET delivery_count = ?, deferred = ? "
                    "WHERE store = ? AND seq = ?",
                    [
                        (m.delivery_count, int(m.deferred), path, seq)
                        for (path, seq), m in self._changed.items()
                    ],
                )
            if self._removed:
                db.executemany("DELETE FROM messages WHERE store = ? AND seq = ?", self._removed)
            if self._sched_new:
                db.executemany(
                    "INSERT OR REPLACE INTO scheduled VALUES (?, ?, ?, ?)",
                    [
                        (path, seq, blob(content), due)
                        for (path, seq), (content, due) in self._sched_new.items()
                    ],
                )
            if self._sched_removed:
                db.executemany(
                    "DELETE FROM scheduled WHERE entity = ? AND seq = ?", self._sched_removed
                )
            if self._seen:
                db.executemany(
                    "INSERT OR REPLACE INTO dedupe VALUES (?, ?, ?)",
                    [(path, key, expires) for (path, key), expires in self._seen.items()],
                )
            if self._session_states:
                db.executemany(
                    "DELETE FROM session_state WHERE store = ? AND session_id = ?",
                    [k for k, v in self._session_states.items() if v is None],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO session_state VALUES (?, ?, ?)",
                    [(p, s, v) for (p, s), v in self._session_states.items() if v is not None],
                )
            if self._sequences:
                db.executemany(
                    "INSERT INTO sequences VALUES (?, ?) ON CONFLICT (path) "
                    "DO UPDATE SET used = max(used, excluded.used)",
                    list(self._sequences.items()),
                )
            now = int(time.time() * 1000)
            if now >= self._next_prune_ms:
                self._next_prune_ms = now + PRUNE_INTERVAL_MS
                db.execute("DELETE FROM dedupe WHERE expires_ms <= ?", (now,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._broken = True
            raise JournalError(f"{self.path}: journal write failed: {exc}") from exc
        self.commits += 1
        self._new.clear()
        self._changed.clear()
        self._removed.clear()
        self._sched_new.clear()
        self._sched_removed.clear()
        self._seen.clear()
        self._session_states.clear()
        self._sequences.clear()
        self._dirty = False

    def close(self) -> None:
        try:
            if not self._broken:
                self.commit()
        finally:
            self._db.close()

    # ------------------------------------------------------------------ replay

    def sequences(self) -> Iterator[tuple[str, int]]:
        yield from self._db.execute("SELECT path, used FROM sequences")

    def messages(self) -> Iterator[JournaledMessage]:
        """Every stored message, each store's in sequence order (FIFO is kept)."""
        for row in self._db.execute(
            "SELECT store, seq, content, enqueued_ms, expires_ms, delivery_count, deferred "
            "FROM messages ORDER BY store, seq"
        ):
            store, seq, content, enqueued, expires, count, deferred = row
            yield JournaledMessage(
                store, seq, parse_message(content), enqueued, expires, count, bool(deferred)
            )

    def scheduled_messages(self) -> Iterator[tuple[str, int, Content, int]]:
        for entity, seq, content, due in self._db.execute(
            "SELECT entity, seq, content, due_ms FROM scheduled ORDER BY entity, seq"
        ):
            yield entity, seq, parse_message(content), due

    def seen_ids(self, now_ms: int) -> Iterator[tuple[str, Any, int]]:
        """Duplicate-detection ids still within their window, in expiry order."""
        for entity, key, expires in self._db.execute(
            "SELECT entity, message_id, expires_ms FROM dedupe WHERE expires_ms > ? "
            "ORDER BY expires_ms",
            (now_ms,),
        ):
            yield entity, id_from_key(key), expires

    def session_states(self) -> Iterator[tuple[str, str, bytes]]:
        for store, session_id, state in self._db.execute(
            "SELECT store, session_id, state FROM session_state"
        ):
            yield store, session_id, bytes(state)
