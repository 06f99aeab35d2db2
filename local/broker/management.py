"""Request/response nodes: ``$cbs`` (token put) and ``<entity>/$management`` operations.

Management traffic is low volume, so requests and responses go through proton's
generic ``Message`` codec rather than the byte-level hot path.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proton import UNDESCRIBED, Array, Data, Message, symbol, timestamp

from .codec import encode_delivery, parse_message
from .consumer import Outcome, PublishError
from .engine import Broker
from .namespace import EntityNotAllowed, EntityNotFound
from .store import MessageStore, Queue, StoredMessage, Topic

log = logging.getLogger(__name__)

OK, ACCEPTED, NO_CONTENT = 200, 202, 204
BAD_REQUEST, NOT_FOUND, GONE, NOT_IMPLEMENTED = 400, 404, 410, 501

_DISPOSITIONS = {
    "completed": Outcome.COMPLETE,
    "abandoned": Outcome.ABANDON,
    "suspended": Outcome.DEAD_LETTER,
    "defered": Outcome.DEFER,  # sic: the service's spelling
    "deferred": Outcome.DEFER,
}


@dataclass
class Response:
    status: int
    description: str = ""
    body: Any = None
    error_condition: str | None = None


class RequestError(Exception):
    def __init__(self, status: int, condition: str, description: str) -> None:
        super().__init__(description)
        self.response = Response(status, description, error_condition=condition)


# proton's stubs type the descriptor as data, but UNDESCRIBED is what it expects.
_UNDESCRIBED: Any = UNDESCRIBED


def _elements(value: Any) -> list[Any]:
    """AMQP arrays decode to proton ``Array``; lists stay lists."""
    if value is None:
        return []
    if isinstance(value, Array):
        return list(value.elements)
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _timestamps(values: list[int]) -> Array:
    return Array(_UNDESCRIBED, Data.TIMESTAMP, *[timestamp(v) for v in values])


def cbs_response(request: Message) -> Message:
    """Accept any token: the local broker does no authorization."""
    return Message(
        correlation_id=request.id,
        properties={"status-code": ACCEPTED, "status-description": "Accepted"},
    )


def management_response(request: Message, response: Response) -> Message:
    properties: dict[str, Any] = {
        "statusCode": response.status,
        "statusDescription": response.description,
    }
    if response.error_condition is not None:
        properties["errorCondition"] = symbol(response.error_condition)
    return Message(correlation_id=request.id, properties=properties, body=response.body)


class ManagementNode:
    """Executes ``com.microsoft:*`` operations against one broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._ops: dict[str, Callable[[Any, dict[str, Any]], Response]] = {
            "com.microsoft:renew-lock": self._renew_lock,
            "com.microsoft:update-disposition": self._update_disposition,
            "com.microsoft:renew-session-lock": self._renew_session_lock,
            "com.microsoft:get-session-state": self._get_session_state,
            "com.microsoft:set-session-state": self._set_session_state,
            "com.microsoft:peek-message": self._peek,
            "com.microsoft:receive-by-sequence-number": self._receive_by_sequence_number,
            "com.microsoft:schedule-message": self._schedule,
            "com.microsoft:cancel-scheduled-message": self._cancel_scheduled,
            "com.microsoft:get-message-sessions": self._list_sessions,
        }

    def handle(self, entity_path: str, request: Message) -> Response:
        properties: dict[Any, Any] = dict(request.properties or {})
        operation = str(properties.get("operation", ""))
        op = self._ops.get(operation)
        if op is None:
            return Response(
                NOT_IMPLEMENTED,
                f"Operation '{operation}' is not supported by the local broker.",
                error_condition="amqp:not-implemented",
            )
        try:
            entity = self.broker.namespace.management_target(entity_path)
        except EntityNotFound as exc:
            return Response(NOT_FOUND, str(exc), error_condition="amqp:not-found")
        except EntityNotAllowed as exc:
            return Response(BAD_REQUEST, str(exc), error_condition="amqp:not-allowed")
        body = request.body if isinstance(request.body, dict) else {}
        try:
            return op(entity, {str(k): v for k, v in body.items()})
        except RequestError as exc:
            return exc.response
        except PublishError as exc:
            return Response(BAD_REQUEST, exc.description, error_condition=exc.condition)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _store(entity: Any) -> MessageStore:
        if not isinstance(entity, MessageStore):
            raise RequestError(
                BAD_REQUEST, "amqp:not-allowed", "This operation needs a queue or subscription."
            )
        return entity

    @staticmethod
    def _target(entity: Any) -> Queue | Topic:
        if not isinstance(entity, (Queue, Topic)):
            raise RequestError(
                BAD_REQUEST, "amqp:not-allowed", "This operation needs a queue or topic."
            )
        return entity

    @staticmethod
    def _session_id(body: dict[str, Any]) -> str:
        session_id = body.get("session-id")
        if not isinstance(session_id, str):
            raise RequestError(
                BAD_REQUEST, "com.microsoft:argument-error", "session-id is required"
            )
        return session_id

    @staticmethod
    def _tokens(body: dict[str, Any]) -> list[uuid.UUID]:
        tokens = []
        for raw in _elements(body.get("lock-tokens")):
            tokens.append(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))
        return tokens

    def _owned_session(self, store: MessageStore, body: dict[str, Any]) -> str:
        session_id = self._session_id(body)
        state = store.sessions.get(session_id)
        if state is None or state.owner is None:
            raise RequestError(
                GONE,
                "com.microsoft:session-lock-lost",
                f"The session lock was lost for session '{session_id}'. Accept the session again.",
            )
        return session_id

    @staticmethod
    def _encode(message: StoredMessage, locked_until: int | None = None) -> bytes:
        return encode_delivery(
            message.content,
            sequence_number=message.sequence_number,
            enqueued_ms=message.enqueued_ms,
            delivery_count=message.delivery_count,
            locked_until_ms=locked_until,
            message_state=1 if message.deferred else 0,
        )

    # ------------------------------------------------------------------ operations

    def _renew_lock(self, entity: Any, body: dict[str, Any]) -> Response:
        expirations = []
        for token in self._tokens(body):
            expires = self.broker.renew_lock(token)
            if expires is None:
                raise RequestError(
                    GONE,
                    "com.microsoft:message-lock-lost",
                    "The lock supplied is invalid. Either the lock expired, or the message "
                    "has already been removed from the queue.",
                )
            expirations.append(expires)
        return Response(OK, "OK", body={"expirations": _timestamps(expirations)})

    def _update_disposition(self, entity: Any, body: dict[str, Any]) -> Response:
        outcome = _DISPOSITIONS.get(str(body.get("disposition-status", "")))
        if outcome is None:
            raise RequestError(
                BAD_REQUEST, "com.microsoft:argument-error", "unknown disposition-status"
            )
        reason = body.get("deadletter-reason") or None
        description = body.get("deadletter-description") or None
        lost = [
            token
            for token in self._tokens(body)
            if not self.broker.settle(token, outcome, reason=reason, description=description)
        ]
        if lost:
            raise RequestError(
                GONE,
                "com.microsoft:message-lock-lost",
                "The lock supplied is invalid. Either the lock expired, or the message "
                "has already been removed from the queue.",
            )
        return Response(OK, "OK", body={})

    def _renew_session_lock(self, entity: Any, body: dict[str, Any]) -> Response:
        store = self._store(entity)
        session_id = self._owned_session(store, body)
        expires = self.broker.renew_session_lock(store, session_id)
        assert expires is not None
        return Response(OK, "OK", body={"expiration": timestamp(expires)})

    def _get_session_state(self, entity: Any, body: dict[str, Any]) -> Response:
        store = self._store(entity)
        session_id = self._owned_session(store, body)
        state = store.sessions[session_id].state
        return Response(OK, "OK", body={"session-state": state})

    def _set_session_state(self, entity: Any, body: dict[str, Any]) -> Response:
        store = self._store(entity)
        session_id = self._owned_session(store, body)
        raw = body.get("session-state")
        self.broker.set_session_state(store, session_id, None if raw is None else bytes(raw))
        return Response(OK, "OK", body={})

    def _peek(self, entity: Any, body: dict[str, Any]) -> Response:
        store = self._store(entity)
        from_seq = int(body.get("from-sequence-number") or 0)
        count = int(body.get("message-count") or 1)
        session_id = body.get("session-id")
        messages = [
            m
            for m in store.active_messages(session_id if isinstance(session_id, str) else None)
            if m.sequence_number >= from_seq
        ][:count]
        if not messages:
            return Response(NO_CONTENT, "No messages to peek")
        return Response(
            OK, "OK", body={"messages": [{"message": self._encode(m)} for m in messages]}
        )

    def _receive_by_sequence_number(self, entity: Any, body: dict[str, Any]) -> Response:
        store = self._store(entity)
        sequence_numbers = [int(s) for s in _elements(body.get("sequence-numbers"))]
        session_id = body.get("session-id")
        received = self.broker.receive_deferred(
            store,
            sequence_numbers,
            receive_and_delete=int(body.get("receiver-settle-mode", 1)) == 0,
            session_id=session_id if isinstance(session_id, str) else None,
        )
        if received is None:
            raise RequestError(
                NOT_FOUND,
                "com.microsoft:message-not-found",
                "Failed to retrieve the deferred message(s): not found.",
            )
        out = []
        for message, token, locked_until in received:
            item: dict[str, Any] = {"message": self._encode(message, locked_until)}
            if token is not None:
                item["lock-token"] = token
            out.append(item)
        return Response(OK, "OK", body={"messages": out})

    def _schedule(self, entity: Any, body: dict[str, Any]) -> Response:
        target = self._target(entity)
        contents = []
        for item in _elements(body.get("messages")):
            raw = item.get("message") if isinstance(item, dict) else None
            if raw is None:
                raise RequestError(BAD_REQUEST, "com.microsoft:argument-error", "missing message")
            contents.append(parse_message(bytes(raw)))
        numbers = self.broker.publish(target, contents)
        return Response(
            OK, "OK", body={"sequence-numbers": Array(_UNDESCRIBED, Data.LONG, *numbers)}
        )

    def _cancel_scheduled(self, entity: Any, body: dict[str, Any]) -> Response:
        target = self._target(entity)
        numbers = [int(s) for s in _elements(body.get("sequence-numbers"))]
        self.broker.cancel_scheduled(target, numbers)
        return Response(OK, "OK", body={})

    def _list_sessions(self, entity: Any, body: dict[str, Any]) -> Response:
        store = self._store(entity)
        skip = int(body.get("skip") or 0)
        top = int(body.get("top") or 100)
        ids = [sid for sid, state in store.sessions.items() if state.ready or state.state]
        page = ids[skip : skip + top]
        if not page:
            return Response(NO_CONTENT, "No sessions")
        return Response(OK, "OK", body={"skip": skip + len(page), "sessions-ids": page})
