"""Broker semantics: publishing, delivery to receiver links, locks, sessions, timers.

Single-threaded by design: every method is called from the one event loop, so no
locking is needed and the state below is always consistent between events.

Every change of durable state is reported to ``self.journal`` right where it happens (the
in-memory default journal ignores them); ``restore`` rebuilds the stores from a journal.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import uuid

from .codec import Content, encode_delivery, with_application_properties
from .config import BrokerConfig
from .consumer import (
    DEFAULT_SESSION_WAIT_MS,
    ERR_SESSION_CANNOT_BE_LOCKED,
    ERR_SESSION_LOCK_LOST,
    ERR_TIMEOUT,
    Consumer,
    Lock,
    Outcome,
    PublishError,
    now_ms,
    settle_delivery,
)
from .journal import Journal, JournalError, SqliteJournal
from .namespace import EntityNotAllowed, EntityNotFound, Namespace
from .store import MessageStore, Queue, ReadyQueue, SessionState, StoredMessage, Topic

log = logging.getLogger(__name__)

MAX_DELIVERY_COUNT_REASON = "MaxDeliveryCountExceeded"
TTL_EXPIRED_REASON = "TTLExpiredException"
SESSION_ID_MISSING_REASON = "SessionIdIsMissing"


class Broker:
    def __init__(self, config: BrokerConfig, journal: Journal | None = None) -> None:
        self.namespace = Namespace(config)
        self.journal = journal if journal is not None else Journal()
        self.locks: dict[uuid.UUID, Lock] = {}
        self._lock_expiry: list[tuple[int, uuid.UUID]] = []
        self._session_expiry: list[tuple[int, int, SessionState, MessageStore]] = []
        self._waiter_deadlines: list[tuple[int, int, Consumer]] = []
        self._tiebreak = itertools.count()
        self._scheduled_targets: set[Queue | Topic] = set()

    # ------------------------------------------------------------------ publishing

    def publish(self, target: Queue | Topic, contents: list[Content]) -> list[int]:
        """Store messages sent to a queue or topic; returns their sequence numbers.

        A duplicate (by message id, on entities with duplicate detection) is accepted
        and dropped, exactly as Azure does; its returned sequence number is 0.
        """
        if isinstance(target, Queue) and target.requires_session:
            for content in contents:
                if not content.session_id:
                    raise PublishError(
                        "amqp:invalid-field",
                        f"The SessionId was not set on a message, and it cannot be sent to "
                        f"the entity '{target.path}'. Entities that have session support "
                        "enabled can only receive messages that have a non-empty SessionId.",
                    )
        now = now_ms()
        sequence_numbers = []
        for content in contents:
            dedupe = target.dedupe
            if dedupe is not None and content.message_id is not None:
                if dedupe.is_duplicate(content.message_id, now):
                    sequence_numbers.append(0)
                    continue
                self.journal.seen(target, content.message_id, now + dedupe.window_ms)
            seq = target.next_sequence()
            self.journal.sequence(target.path, seq)
            sequence_numbers.append(seq)
            if content.scheduled_ms is not None and content.scheduled_ms > now:
                target.scheduled.add(seq, content, content.scheduled_ms)
                self.journal.scheduled(target, seq, content, content.scheduled_ms)
                self._scheduled_targets.add(target)
                continue
            self._enqueue(target, seq, content, now)
        return sequence_numbers

    def cancel_scheduled(self, target: Queue | Topic, sequence_numbers: list[int]) -> None:
        for seq in sequence_numbers:
            target.scheduled.cancel(seq)
            self.journal.unscheduled(target, seq)

    def _enqueue(self, target: Queue | Topic, seq: int, content: Content, now: int) -> None:
        for store in target.stores:
            ttl = content.ttl_ms
            default_ttl = store.options.default_message_ttl_seconds
            if default_ttl is not None:
                ttl = min(ttl, int(default_ttl * 1000)) if ttl else int(default_ttl * 1000)
            message = StoredMessage(content, seq, now, now + ttl if ttl else None)
            self.journal.added(store, message)
            if store.requires_session and not content.session_id:
                # Only reachable for subscriptions (queues reject the send); Azure
                # dead-letters such messages on session-enabled subscriptions.
                self._dead_letter(
                    store, message, SESSION_ID_MISSING_REASON, "The message has no SessionId."
                )
                continue
            self._make_available(store, message, returned=False)

    # ------------------------------------------------------------------ delivery

    def _make_available(
        self, store: MessageStore, message: StoredMessage, *, returned: bool
    ) -> None:
        state = store.add(message, returned=returned)
        if state is None:
            self._dispatch(store)
        elif state.owner is not None:
            self._dispatch_session(store, state)
        else:
            self._serve_session_waiters(store)

    def _dispatch(self, store: MessageStore) -> None:
        """Hand available messages to receivers with credit, round robin."""
        consumers = store.consumers
        while store.ready and consumers:
            progressed = False
            for consumer in consumers:
                if consumer.credit <= 0:
                    continue
                message = self._next_live(store, store.ready)
                if message is None:
                    return
                self._send(consumer, message, None)
                progressed = True
            if not progressed:
                return

    def _dispatch_session(self, store: MessageStore, state: SessionState) -> None:
        owner = state.owner
        if owner is None:
            return
        while owner.credit > 0 and state.owner is owner:
            message = self._next_live(store, state.ready)
            if message is None:
                return
            self._send(owner, message, state)

    def _next_live(self, store: MessageStore, ready: ReadyQueue) -> StoredMessage | None:
        """Pop the next message that has not expired; expired ones are removed."""
        now = now_ms()
        while True:
            message = ready.pop()
            if message is None:
                return None
            if message.expires_ms is None or message.expires_ms > now:
                return message
            self._expire(store, message)

    def _expire(self, store: MessageStore, message: StoredMessage) -> None:
        if store.options.dead_lettering_on_message_expiration and not store.is_dead_letter:
            self._dead_letter(
                store, message, TTL_EXPIRED_REASON, "The message expired and was dead lettered."
            )
        else:
            self.journal.removed(store, message)

    def _send(self, consumer: Consumer, message: StoredMessage, state: SessionState | None) -> None:
        store = consumer.store
        now = now_ms()
        if consumer.receive_and_delete:
            locked_until = None
        elif state is not None:
            locked_until = state.lock_expires_ms
        else:
            locked_until = now + store.lock_ms
        payload = encode_delivery(
            message.content,
            sequence_number=message.sequence_number,
            enqueued_ms=message.enqueued_ms,
            delivery_count=message.delivery_count,
            locked_until_ms=locked_until,
        )
        # The SDK derives the lock token as UUID(bytes_le=delivery_tag).
        tag = os.urandom(16)
        link = consumer.link
        delivery = link.delivery(tag)  # type: ignore[arg-type]
        link.send(payload)
        link.advance()
        if consumer.receive_and_delete or locked_until is None:
            # Gone from the store before the delivery leaves (the journal commits first),
            # so a restart cannot hand it out a second time.
            self.journal.removed(store, message)
            delivery.settle()
            if state is not None:
                store.forget_if_idle(state)
            return
        token = uuid.UUID(bytes_le=tag)
        # Kept in the delivery's record and read back when the client settles.
        delivery.lock_token = token  # type: ignore[attr-defined]
        lock = Lock(token, message, store, state, consumer, delivery, locked_until)
        self.locks[token] = lock
        consumer.locks[token] = lock
        store.locked[message.sequence_number] = message
        if state is not None:
            state.in_flight += 1  # session messages are locked by the session lock
        else:
            heapq.heappush(self._lock_expiry, (locked_until, token))

    # ------------------------------------------------------------------ consumers

    def add_consumer(self, consumer: Consumer) -> None:
        consumer.open()
        consumer.store.consumers.append(consumer)

    def add_session_consumer(
        self, consumer: Consumer, session_id: str | None, wait_ms: int | None
    ) -> None:
        """Lock a specific session, or the next available one (waiting if none is)."""
        store = consumer.store
        if session_id is not None:
            state = store.session(session_id)
            if state.owner is not None:
                consumer.fail(
                    ERR_SESSION_CANNOT_BE_LOCKED,
                    f"The requested session '{session_id}' cannot be accepted. "
                    "It may be locked by another receiver.",
                )
                return
            self._grant_session(consumer, state)
            return
        state_or_none = store.take_available_session()
        if state_or_none is not None:
            self._grant_session(consumer, state_or_none)
            return
        store.session_waiters.append(consumer)
        deadline = now_ms() + (wait_ms if wait_ms is not None else DEFAULT_SESSION_WAIT_MS)
        heapq.heappush(self._waiter_deadlines, (deadline, next(self._tiebreak), consumer))

    def _grant_session(self, consumer: Consumer, state: SessionState) -> None:
        store = consumer.store
        store.available_sessions.pop(state.session_id, None)
        state.owner = consumer
        state.lock_expires_ms = now_ms() + store.lock_ms
        consumer.session = state
        heapq.heappush(
            self._session_expiry, (state.lock_expires_ms, next(self._tiebreak), state, store)
        )
        consumer.open(state.session_id, state.lock_expires_ms)
        self._dispatch_session(store, state)

    def _serve_session_waiters(self, store: MessageStore) -> None:
        while store.session_waiters:
            state = store.take_available_session()
            if state is None:
                return
            self._grant_session(store.session_waiters.pop(0), state)

    def credit_changed(self, consumer: Consumer) -> None:
        if consumer.closed:
            return
        if consumer.session is not None:
            self._dispatch_session(consumer.store, consumer.session)
        elif not consumer.store.requires_session:
            self._dispatch(consumer.store)
        link = consumer.link
        if link.drain_mode and consumer.opened and not consumer.closed:
            link.drained()  # nothing left to send: give the drained credit back

    def remove_consumer(self, consumer: Consumer) -> None:
        """The receiver link is gone (detached, or its connection dropped)."""
        consumer.closed = True
        store = consumer.store
        if consumer in store.consumers:
            store.consumers.remove(consumer)
        if consumer in store.session_waiters:
            store.session_waiters.remove(consumer)
        if consumer.session is not None:
            self._release_session(consumer)
        self._forget_locks(consumer)

    def _forget_locks(self, consumer: Consumer) -> None:
        # Azure keeps message locks after the link goes away (they can still be settled
        # through $management, or expire): only the link-side delivery is dropped.
        for lock in consumer.locks.values():
            lock.consumer = None
            lock.delivery = None
        consumer.locks.clear()

    def _release_session(self, consumer: Consumer) -> None:
        state = consumer.session
        assert state is not None
        store = consumer.store
        consumer.session = None
        state.owner = None
        # Messages still locked under the session come back: their lock is gone.
        for lock in list(consumer.locks.values()):
            if lock.session is state:
                self._unlock(lock)
                lock.delivery = None
                self._return(store, lock.message, count_delivery=True)
        if state.ready:
            store.available_sessions[state.session_id] = None
            self._serve_session_waiters(store)
        store.forget_if_idle(state)

    # ------------------------------------------------------------------ settlement

    def _unlock(self, lock: Lock) -> None:
        self.locks.pop(lock.token, None)
        lock.store.locked.pop(lock.message.sequence_number, None)
        if lock.consumer is not None:
            lock.consumer.locks.pop(lock.token, None)
        if lock.session is not None:
            lock.session.in_flight -= 1

    def settle(
        self,
        token: uuid.UUID,
        outcome: Outcome,
        *,
        reason: str | None = None,
        description: str | None = None,
        from_link: bool = False,
        delivery_failed: bool = True,
    ) -> bool:
        """Apply a settlement to a locked message; False if the lock is gone."""
        lock = self.locks.get(token)
        if lock is None:
            return False
        self._unlock(lock)
        message, store, state = lock.message, lock.store, lock.session
        if not from_link and lock.delivery is not None:
            # Settled through $management: close out the link-side delivery too.
            settle_delivery(lock.delivery, outcome)
        lock.delivery = None
        if outcome is Outcome.COMPLETE:
            # Unlocked above, so in memory it is already gone; only the journal needs telling.
            self.journal.removed(store, message)
        elif outcome is Outcome.DEAD_LETTER:
            self._dead_letter(store, message, reason, description)
        elif outcome is Outcome.DEFER:
            message.deferred = True
            store.deferred[message.sequence_number] = message
            self.journal.changed(store, message)
        else:
            count = outcome is Outcome.ABANDON and delivery_failed
            if message.deferred:
                # An abandoned deferred message stays deferred (as in Azure).
                if count:
                    message.delivery_count += 1
                    self.journal.changed(store, message)
                store.deferred[message.sequence_number] = message
            else:
                self._return(store, message, count_delivery=count)
        if state is not None:
            store.forget_if_idle(state)
        return True

    def _return(self, store: MessageStore, message: StoredMessage, *, count_delivery: bool) -> None:
        """Put a message back after a failed delivery, or dead-letter it if exhausted."""
        if count_delivery:
            message.delivery_count += 1
            self.journal.changed(store, message)
        if message.delivery_count >= store.options.max_delivery_count and not store.is_dead_letter:
            self._dead_letter(
                store,
                message,
                MAX_DELIVERY_COUNT_REASON,
                f"Message could not be consumed after {store.options.max_delivery_count} "
                "delivery attempts.",
            )
            return
        self._make_available(store, message, returned=True)

    def _dead_letter(
        self,
        store: MessageStore,
        message: StoredMessage,
        reason: str | None,
        description: str | None,
    ) -> None:
        dlq = store.dead_letter
        if dlq is None:  # already in a dead-letter queue: keep it there
            self._make_available(store, message, returned=True)
            return
        props: dict[str, str | None] = {}
        if reason is not None:
            props["DeadLetterReason"] = reason
        if description is not None:
            props["DeadLetterErrorDescription"] = description
        content = with_application_properties(message.content, props) if props else message.content
        moved = StoredMessage(
            content,
            dlq.next_sequence(),
            message.enqueued_ms,
            None,  # messages in a dead-letter queue do not expire
            message.delivery_count,
        )
        # One commit holds both halves of the move: never in both queues, never in neither.
        self.journal.removed(store, message)
        self.journal.sequence(dlq.path, moved.sequence_number)
        self.journal.added(dlq, moved)
        self._make_available(dlq, moved, returned=False)

    # ------------------------------------------------------------------ management ops

    def renew_lock(self, token: uuid.UUID) -> int | None:
        lock = self.locks.get(token)
        if lock is None or lock.session is not None:
            return None
        lock.expires_ms = now_ms() + lock.store.lock_ms
        heapq.heappush(self._lock_expiry, (lock.expires_ms, token))
        return lock.expires_ms

    def renew_session_lock(self, store: MessageStore, session_id: str) -> int | None:
        state = store.sessions.get(session_id)
        if state is None or state.owner is None:
            return None
        state.lock_expires_ms = now_ms() + store.lock_ms
        heapq.heappush(
            self._session_expiry, (state.lock_expires_ms, next(self._tiebreak), state, store)
        )
        return state.lock_expires_ms

    def receive_deferred(
        self,
        store: MessageStore,
        sequence_numbers: list[int],
        *,
        receive_and_delete: bool,
        session_id: str | None,
    ) -> list[tuple[StoredMessage, uuid.UUID | None, int | None]] | None:
        """Take deferred messages by sequence number; None if any is missing."""
        messages = []
        for seq in sequence_numbers:
            message = store.deferred.get(seq)
            if message is None or (
                session_id is not None and message.content.session_id != session_id
            ):
                return None
            messages.append(message)
        result: list[tuple[StoredMessage, uuid.UUID | None, int | None]] = []
        now = now_ms()
        for message in messages:
            del store.deferred[message.sequence_number]
            if receive_and_delete:
                self.journal.removed(store, message)
                result.append((message, None, None))
                continue
            # Not tied to a link (it came over $management) nor to the session lock:
            # a plain timed lock, settled through $management by the SDK.
            token = uuid.uuid4()
            expires = now + store.lock_ms
            self.locks[token] = Lock(token, message, store, None, None, None, expires)
            store.locked[message.sequence_number] = message
            heapq.heappush(self._lock_expiry, (expires, token))
            result.append((message, token, expires))
        return result

    def set_session_state(self, store: MessageStore, session_id: str, state: bytes | None) -> None:
        store.session(session_id).state = state
        self.journal.session_state(store, session_id, state)

    # ------------------------------------------------------------------ restart

    def restore(self, journal: SqliteJournal) -> int:
        """Rebuild queues, subscriptions, dead-letter queues, scheduled messages, duplicate
        detection and session state from a journal; returns how many messages came back.

        Called before the server accepts connections, so no receiver can be waiting and
        nothing is dispatched. Locks are not journaled: a message locked when the broker died
        is simply available again, with the delivery count it had.
        """
        namespace = self.namespace
        now = now_ms()

        def resolve(path: str) -> Queue | Topic | MessageStore:
            try:
                # A bare name is a queue or topic (senders' view); anything longer is a
                # subscription or a dead-letter queue (receivers' view).
                return namespace.send_target(path) if "/" not in path else namespace.source(path)
            except (EntityNotFound, EntityNotAllowed) as exc:
                raise JournalError(
                    f"the journal holds state for '{path}', which the broker config no longer "
                    f"allows: {exc} (use the config the journal was written with, or a new "
                    "journal)"
                ) from exc

        for path, used in journal.sequences():
            resolve(path).restore_sequence(used)
        count = 0
        for row in journal.messages():
            store = resolve(row.store)
            if not isinstance(store, MessageStore):
                raise JournalError(f"the journal stores messages in '{row.store}', a topic")
            message = StoredMessage(
                row.content,
                row.seq,
                row.enqueued_ms,
                row.expires_ms,
                row.delivery_count,
                row.deferred,
            )
            if message.deferred:
                store.deferred[message.sequence_number] = message
            else:
                store.add(message)
            count += 1
        for path, seq, content, due in journal.scheduled_messages():
            target = resolve(path)
            if not isinstance(target, (Queue, Topic)):
                raise JournalError(f"the journal schedules messages on '{path}'")
            target.scheduled.add(seq, content, due)
            self._scheduled_targets.add(target)
        for path, message_id, expires in journal.seen_ids(now):
            target = resolve(path)
            dedupe = target.dedupe if isinstance(target, (Queue, Topic)) else None
            if dedupe is not None:  # else the config turned duplicate detection off
                dedupe.restore(message_id, expires)
        for path, session_id, state in journal.session_states():
            store = resolve(path)
            if isinstance(store, MessageStore):
                store.session(session_id).state = state
        return count

    # ------------------------------------------------------------------ timers

    def tick(self) -> None:
        """Expire locks, session locks and session waits; enqueue due scheduled messages."""
        now = now_ms()
        expiry = self._lock_expiry
        while expiry and expiry[0][0] <= now:
            _expires, token = heapq.heappop(expiry)
            lock = self.locks.get(token)
            if lock is None or lock.expires_ms > now:  # settled, or renewed
                continue
            self._unlock(lock)
            lock.delivery = None  # the client will get lock-lost if it settles it
            message = lock.message
            if message.deferred:
                message.delivery_count += 1
                self.journal.changed(lock.store, message)
                lock.store.deferred[message.sequence_number] = message
            else:
                self._return(lock.store, message, count_delivery=True)

        sessions = self._session_expiry
        while sessions and sessions[0][0] <= now:
            _expires, _n, state, _store = heapq.heappop(sessions)
            owner = state.owner
            if owner is None or state.lock_expires_ms > now:
                continue
            self._release_session(owner)
            owner.fail(ERR_SESSION_LOCK_LOST, "The session lock has expired.")

        waiters = self._waiter_deadlines
        while waiters and waiters[0][0] <= now:
            _deadline, _n, consumer = heapq.heappop(waiters)
            store = consumer.store
            if consumer.session is None and consumer in store.session_waiters:
                store.session_waiters.remove(consumer)
                consumer.fail(
                    ERR_TIMEOUT,
                    f"The operation did not complete within the allocated time for "
                    f"object session on '{store.path}': no session is available.",
                )

        if self._scheduled_targets:
            for target in list(self._scheduled_targets):
                for seq, content in target.scheduled.pop_due(now):
                    self.journal.unscheduled(target, seq)
                    self._enqueue(target, seq, content, now)
                if not target.scheduled.pending:
                    self._scheduled_targets.discard(target)
