"""AMQP glue: proton endpoint events mapped onto broker operations.

Link kinds, by address:
- client sender to ``<queue|topic>``: publishing;
- client sender to ``$cbs`` / ``<entity>/$management``: requests, answered on the
  client's receiver link with the same address in the same AMQP session;
- client receiver from ``<queue>``, ``<topic>/Subscriptions/<sub>`` (optionally
  ``/$DeadLetterQueue``): a ``Consumer``.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TypeVar

from proton import (
    Connection,
    Delivery,
    Disposition,
    Endpoint,
    Event,
    Link,
    Message,
    Receiver,
    Sender,
    Session,
    symbol,
)

from .codec import CodecError, parse_message, split_batch
from .consumer import (
    SESSION_FILTER,
    Consumer,
    Outcome,
    PublishError,
    error,
    reject_lock_lost,
    settle_delivery,
)
from .engine import Broker
from .management import ManagementNode, cbs_response, management_response
from .namespace import (
    MANAGEMENT_SUFFIX,
    EntityNotAllowed,
    EntityNotFound,
    entity_path,
)
from .store import Queue, Topic

log = logging.getLogger(__name__)
T = TypeVar("T")

CBS_NODE = "$cbs"
OPERATION_TIMEOUT = symbol("com.microsoft:timeout")
# Credit granted to senders; topped up when it falls below half so a busy sender
# never waits for a flow frame.
SENDER_CREDIT = 1000


@dataclass
class InboundLink:
    """A link on which the client sends to the broker."""

    kind: str  # "publish" | "cbs" | "management"
    target: Queue | Topic | None = None
    node: str = ""  # for request links: the node address


@dataclass
class ReplyLink:
    """A link on which the broker answers requests."""

    link: Sender
    address: str
    pending: deque[bytes] = field(default_factory=deque)
    next_tag: int = 0


_REMOTE_OUTCOMES = {
    Disposition.ACCEPTED,
    Disposition.REJECTED,
    Disposition.RELEASED,
    Disposition.MODIFIED,
}


def _need(value: T | None) -> T:
    """Event accessors are Optional in proton's types; for a given event type they
    are always set (a link event has a link)."""
    assert value is not None
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _refuse(link: Link, condition: str, description: str) -> None:
    """Attach-then-detach with an error, which is how Azure refuses a link."""
    link.source.copy(link.remote_source)
    link.target.copy(link.remote_target)
    if link.is_sender:
        link.source.address = entity_path(link.remote_source.address) or "refused"
    link.open()
    link.condition = error(condition, description)
    link.close()


class AmqpHandler:
    """Receives proton events (``on_<event>``) from the server loop."""

    def __init__(self, broker: Broker, *, max_message_size: int) -> None:
        self.broker = broker
        self.management = ManagementNode(broker)
        self.max_message_size = max_message_size
        self._inbound: dict[Link, InboundLink] = {}
        self._consumers: dict[Link, Consumer] = {}
        self._replies: dict[Link, ReplyLink] = {}
        self._reply_index: dict[tuple[Session, str], ReplyLink] = {}
        self._partial: dict[Delivery, bytearray] = {}
        self._connection_links: dict[Connection, set[Link]] = {}

    # ------------------------------------------------------------------ endpoints

    def on_connection_remote_open(self, event: Event) -> None:
        connection = _need(event.connection)
        connection.container = "devicemon-local-broker"
        connection.open()

    def on_session_remote_open(self, event: Event) -> None:
        _need(event.session).open()

    def on_link_remote_open(self, event: Event) -> None:
        link = _need(event.link)
        self._connection_links.setdefault(link.connection, set()).add(link)
        try:
            if link.is_receiver:
                assert isinstance(link, Receiver)
                self._open_inbound(link)
            else:
                assert isinstance(link, Sender)
                self._open_outbound(link)
        except EntityNotFound as exc:
            _refuse(link, "amqp:not-found", str(exc))
        except EntityNotAllowed as exc:
            _refuse(link, "amqp:not-allowed", str(exc))

    def on_link_remote_close(self, event: Event) -> None:
        link = _need(event.link)
        self._drop_link(link)
        if not link.state & Endpoint.LOCAL_CLOSED:
            link.close()

    def on_link_remote_detach(self, event: Event) -> None:
        link = _need(event.link)
        self._drop_link(link)
        if not link.state & Endpoint.LOCAL_CLOSED:
            link.detach()

    def on_session_remote_close(self, event: Event) -> None:
        session = _need(event.session)
        if not session.state & Endpoint.LOCAL_CLOSED:
            session.close()

    def on_connection_remote_close(self, event: Event) -> None:
        connection = _need(event.connection)
        self.connection_lost(connection)
        if not connection.state & Endpoint.LOCAL_CLOSED:
            connection.close()

    def on_transport_error(self, event: Event) -> None:
        # Usually a client that went away mid-conversation; not the broker's problem.
        condition = _need(event.transport).condition
        log.debug("transport error: %s", condition)

    def connection_lost(self, connection: Connection) -> None:
        """Forget every link of a closed or dropped connection."""
        for link in self._connection_links.pop(connection, set()):
            self._drop_link(link, forget=False)

    def _drop_link(self, link: Link, *, forget: bool = True) -> None:
        consumer = self._consumers.pop(link, None)
        if consumer is not None:
            self.broker.remove_consumer(consumer)
        self._inbound.pop(link, None)
        reply = self._replies.pop(link, None)
        if reply is not None:
            key = (link.session, reply.address)
            if self._reply_index.get(key) is reply:
                del self._reply_index[key]
        if self._partial:
            for delivery in [d for d in self._partial if d.link == link]:
                del self._partial[delivery]
        if forget:
            links = self._connection_links.get(link.connection)
            if links is not None:
                links.discard(link)

    # ------------------------------------------------------------------ attach

    def _open_inbound(self, link: Receiver) -> None:
        path = entity_path(link.remote_target.address)
        if path == CBS_NODE:
            inbound = InboundLink("cbs", node=path)
        elif path.endswith(MANAGEMENT_SUFFIX) or path == MANAGEMENT_SUFFIX[1:]:
            inbound = InboundLink("management", node=path)
        else:
            inbound = InboundLink("publish", target=self.broker.namespace.send_target(path))
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.rcv_settle_mode = Link.RCV_FIRST
        link.max_message_size = self.max_message_size
        link.open()
        link.flow(SENDER_CREDIT)
        self._inbound[link] = inbound

    def _open_outbound(self, link: Sender) -> None:
        path = entity_path(link.remote_source.address)
        if path == CBS_NODE or path.endswith(MANAGEMENT_SUFFIX):
            link.source.copy(link.remote_source)
            link.target.copy(link.remote_target)
            link.open()
            reply = ReplyLink(link, path)
            self._replies[link] = reply
            self._reply_index[(link.session, path)] = reply
            return
        store = self.broker.namespace.source(path)
        filters = self._remote_filters(link)
        consumer = Consumer(
            link,
            store,
            receive_and_delete=link.remote_snd_settle_mode == Link.SND_SETTLED,
            name=link.name,
        )
        self._consumers[link] = consumer
        if store.requires_session:
            if SESSION_FILTER not in filters:
                consumer.fail(
                    "amqp:not-allowed",
                    f"It is not possible for an entity that requires sessions to create a "
                    f"non-sessionful message receiver ('{store.path}').",
                )
                return
            session_id = filters[SESSION_FILTER]
            properties = link.remote_properties or {}
            wait = properties.get(OPERATION_TIMEOUT)
            self.broker.add_session_consumer(
                consumer,
                _text(session_id),
                int(wait) if wait is not None else None,
            )
        elif SESSION_FILTER in filters:
            consumer.fail(
                "amqp:not-allowed",
                f"It is not possible for an entity that does not require sessions to create "
                f"a sessionful message receiver ('{store.path}').",
            )
        else:
            self.broker.add_consumer(consumer)

    @staticmethod
    def _remote_filters(link: Link) -> dict[Any, Any]:
        data = link.remote_source.filter
        data.rewind()
        if data.next() is None:
            return {}
        value = data.get_object()
        data.rewind()
        return dict(value) if isinstance(value, dict) else {}

    # ------------------------------------------------------------------ flow & transfers

    def on_link_flow(self, event: Event) -> None:
        link = _need(event.link)
        consumer = self._consumers.get(link)
        if consumer is not None:
            self.broker.credit_changed(consumer)
            return
        reply = self._replies.get(link)
        if reply is not None:
            self._flush_reply(reply)

    def on_delivery(self, event: Event) -> None:
        delivery = _need(event.delivery)
        link = delivery.link
        if link.is_sender:
            self._on_disposition(delivery)
        else:
            assert isinstance(link, Receiver)
            self._on_transfer(link, delivery)

    def _on_disposition(self, delivery: Delivery) -> None:
        """The client settled (or updated) one of our deliveries."""
        token: uuid.UUID | None = getattr(delivery, "lock_token", None)
        if token is None:  # a pre-settled delivery or a management response
            if delivery.settled:
                delivery.settle()
            return
        state = delivery.remote_state
        if state not in _REMOTE_OUTCOMES:
            if delivery.settled:  # settled with no outcome: treat as never processed
                self.broker.settle(token, Outcome.RELEASE, from_link=True)
                delivery.settle()
            return
        remote = delivery.remote
        reason = description = None
        failed = True
        if state == Disposition.ACCEPTED:
            outcome = Outcome.COMPLETE
        elif state == Disposition.REJECTED:
            outcome = Outcome.DEAD_LETTER
            condition = remote.condition
            raw_info: Any = condition.info if condition is not None else None
            info: dict[Any, Any] = dict(raw_info) if isinstance(raw_info, dict) else {}
            reason = _text(info.get("DeadLetterReason"))
            description = _text(info.get("DeadLetterErrorDescription"))
            if description is None and condition is not None:
                description = _text(condition.description)
        elif state == Disposition.RELEASED:
            outcome = Outcome.RELEASE
        elif remote.undeliverable:
            outcome = Outcome.DEFER
        else:
            outcome = Outcome.ABANDON
            failed = remote.failed
        applied = self.broker.settle(
            token,
            outcome,
            reason=reason,
            description=description,
            from_link=True,
            delivery_failed=failed,
        )
        if applied:
            settle_delivery(delivery, outcome)
        else:
            reject_lock_lost(delivery)

    def _on_transfer(self, link: Receiver, delivery: Delivery) -> None:
        if delivery.aborted:
            self._partial.pop(delivery, None)
            delivery.settle()
            return
        if not delivery.readable:
            return
        chunk = link.recv(delivery.pending) or b""
        if delivery.partial:
            self._partial.setdefault(delivery, bytearray()).extend(chunk)
            return
        buffered = self._partial.pop(delivery, None)
        payload = bytes(buffered + chunk) if buffered is not None else chunk
        link.advance()
        inbound = self._inbound.get(link)
        if inbound is None:
            delivery.settle()
        elif inbound.kind == "publish":
            assert inbound.target is not None
            self._publish(inbound.target, delivery, payload)
        else:
            self._request(link, inbound, delivery, payload)
        if link.credit < SENDER_CREDIT // 2 and link.state & Endpoint.LOCAL_ACTIVE:
            link.flow(SENDER_CREDIT - link.credit)

    def _publish(self, target: Queue | Topic, delivery: Delivery, payload: bytes) -> None:
        try:
            inner = split_batch(payload)
            # For a batch the messages count, not the batch envelope: the SDK sizes its batches
            # that way (ServiceBusMessageBatch) and Azure accepts what it builds.
            size = sum(len(p) for p in inner) if inner else len(payload)
            if size > self.max_message_size:
                # proton advertises the limit but does not enforce it; Azure does.
                raise PublishError(
                    "amqp:link:message-size-exceeded",
                    f"The received message (size: {size} bytes) exceeds the limit "
                    f"({self.max_message_size} bytes) currently allowed on the link.",
                )
            contents = [parse_message(p) for p in inner] if inner else [parse_message(payload)]
            self.broker.publish(target, contents)
            state = Disposition.ACCEPTED
        except CodecError as exc:
            delivery.local.condition = error("amqp:decode-error", str(exc))
            state = Disposition.REJECTED
        except PublishError as exc:
            delivery.local.condition = error(exc.condition, exc.description)
            state = Disposition.REJECTED
        if not delivery.settled:  # i.e. not pre-settled by the client
            delivery.update(state)
        delivery.settle()

    # ------------------------------------------------------------------ request/response

    def _request(
        self, link: Receiver, inbound: InboundLink, delivery: Delivery, payload: bytes
    ) -> None:
        request = Message()
        try:
            request.decode(payload)
        except Exception:  # a malformed request is the client's problem, not a crash
            log.warning("undecodable request on %s", inbound.node, exc_info=True)
            delivery.update(Disposition.REJECTED)
            delivery.settle()
            return
        delivery.update(Disposition.ACCEPTED)
        delivery.settle()
        if inbound.kind == "cbs":
            response = cbs_response(request)
        else:
            entity = inbound.node[: -len(MANAGEMENT_SUFFIX)]
            response = management_response(request, self.management.handle(entity, request))
        reply_to = entity_path(request.reply_to) if request.reply_to else inbound.node
        self._send_reply(link.session, reply_to, inbound.node, response)

    def _send_reply(self, session: Session, reply_to: str, node: str, response: Message) -> None:
        reply = self._reply_index.get((session, reply_to)) or self._reply_index.get((session, node))
        if reply is None:
            # Fall back to any link for this node on the same connection.
            for candidate in self._replies.values():
                if candidate.address in (reply_to, node) and (
                    candidate.link.connection == session.connection
                ):
                    reply = candidate
                    break
        if reply is None:
            log.debug("no reply link for %s; response dropped", reply_to)
            return
        reply.pending.append(bytes(response.encode()))
        self._flush_reply(reply)

    @staticmethod
    def _flush_reply(reply: ReplyLink) -> None:
        link = reply.link
        while reply.pending and link.credit > 0:
            reply.next_tag += 1
            delivery = link.delivery(str(reply.next_tag))
            link.send(reply.pending.popleft())
            link.advance()
            # Pre-settled: the SDK's management receiver never settles responses.
            delivery.settle()
