"""The entity namespace: address parsing and create-on-first-use entity lookup."""

from __future__ import annotations

from .config import BrokerConfig, TopicOptions
from .store import DEAD_LETTER_SUFFIX, MessageStore, Queue, Topic

MANAGEMENT_SUFFIX = "/$management"


class EntityNotFound(LookupError):
    """No entity exists or can be created under this name (AMQP ``amqp:not-found``)."""


class EntityNotAllowed(ValueError):
    """The address names something that cannot be used this way (``amqp:not-allowed``)."""


def entity_path(address: str | None) -> str:
    """Strip the ``amqps://host:port/`` prefix the SDK puts on link addresses."""
    if not address:
        return ""
    if "://" in address:
        address = address.split("://", 1)[1]
        address = address.split("/", 1)[1] if "/" in address else ""
    return address.strip("/")


class Namespace:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.queues: dict[str, Queue] = {}
        self.topics: dict[str, Topic] = {}

    def _entity(self, name: str) -> Queue | Topic:
        """The queue or topic called ``name``, created from config patterns if needed."""
        key = name.lower()  # Azure entity names are case-insensitive
        existing: Queue | Topic | None = self.queues.get(key) or self.topics.get(key)
        if existing is not None:
            return existing
        if not name or "/" in name or name.startswith("$"):
            raise EntityNotFound(f"The messaging entity '{name}' could not be found.")
        options = self.config.resolve(name)
        if options is None:
            raise EntityNotFound(
                f"The messaging entity '{name}' could not be found "
                "(no queue or topic pattern in the broker config matches it)."
            )
        if isinstance(options, TopicOptions):
            topic = self.topics[key] = Topic(name, options)
            return topic
        queue = self.queues[key] = Queue(name, options)
        return queue

    def send_target(self, path: str) -> Queue | Topic:
        """Resolve the target of a sender link (a queue or a topic)."""
        if "/" in path:
            raise EntityNotAllowed(
                f"Cannot send to '{path}': only queues and topics accept messages."
            )
        return self._entity(path)

    def source(self, path: str) -> MessageStore:
        """Resolve the source of a receiver link (queue, subscription, or their DLQ)."""
        dead_letter = False
        if path.lower().endswith(DEAD_LETTER_SUFFIX.lower()):
            dead_letter = True
            path = path[: -len(DEAD_LETTER_SUFFIX)]
        parts = path.split("/")
        store: MessageStore
        if len(parts) == 1:
            entity = self._entity(parts[0])
            if not isinstance(entity, Queue):
                raise EntityNotAllowed(
                    f"'{parts[0]}' is a topic: receive from '{parts[0]}/Subscriptions/<name>'."
                )
            store = entity
        elif len(parts) == 3 and parts[1].lower() == "subscriptions":
            entity = self._entity(parts[0])
            if not isinstance(entity, Topic):
                raise EntityNotFound(f"The messaging entity '{path}' could not be found.")
            sub = entity.subscriptions.get(parts[2].lower())
            if sub is None:
                raise EntityNotFound(
                    f"The messaging entity '{path}' could not be found "
                    f"(topic '{entity.path}' has subscriptions {sorted(entity.subscriptions)})."
                )
            store = sub
        else:
            raise EntityNotFound(f"The messaging entity '{path}' could not be found.")
        if dead_letter:
            assert store.dead_letter is not None
            return store.dead_letter
        return store

    def management_target(self, path: str) -> Queue | Topic | MessageStore:
        """The entity addressed by ``<entity>/$management`` (sender or receiver side)."""
        if "/" not in path:
            return self._entity(path)
        return self.source(path)
