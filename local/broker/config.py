"""Entity configuration: glob patterns mapped to queue/topic/subscription options.

Tests isolate themselves with unique entity names (``device-changes-1a2b3c``), so
entities are not declared one by one: a name is matched against patterns and the
entity is created on first use with the options of the best-matching pattern.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG: dict[str, Any] = {
    "queues": {
        "device-changes*": {
            "requires_session": True,
            "max_delivery_count": 10,
            "duplicate_detection": True,
        },
        "*": {"max_delivery_count": 10},
    },
    "topics": {
        "device-alerts*": {
            "duplicate_detection": True,
            "subscriptions": {
                "teams": {"max_delivery_count": 10},
                "remediation": {"max_delivery_count": 10},
                # Local only: what an organisation's own subscriber sees; the demo and the tests
                # read alerts here while the built-in consumers take theirs.
                "audit": {"max_delivery_count": 10},
            },
        }
    },
}

# Azure Standard tier limit; the SDK sizes its batches from what the link advertises.
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024


class ConfigError(ValueError):
    """The broker configuration is invalid."""


@dataclass(frozen=True, slots=True)
class EntityOptions:
    """Options of a queue or a topic subscription (names follow the Azure properties)."""

    requires_session: bool = False
    max_delivery_count: int = 10
    lock_duration_seconds: float = 30.0
    default_message_ttl_seconds: float | None = None
    dead_lettering_on_message_expiration: bool = False
    # Only meaningful for queues; for topics it is a topic-level option.
    duplicate_detection: bool = False
    duplicate_detection_window_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class TopicOptions:
    duplicate_detection: bool = False
    duplicate_detection_window_seconds: float = 600.0
    subscriptions: dict[str, EntityOptions] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    queues: dict[str, EntityOptions]
    topics: dict[str, TopicOptions]
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE

    def resolve(self, name: str) -> EntityOptions | TopicOptions | None:
        """Options for an entity that does not exist yet, or None if no pattern matches.

        The most specific pattern wins: an exact name, then the pattern with the most
        literal characters (so ``device-alerts*`` beats the catch-all queue ``*``);
        on a tie topics win, as a topic pattern is always deliberate.
        """
        best: tuple[tuple[int, int, int], EntityOptions | TopicOptions] | None = None
        candidates: list[tuple[str, EntityOptions | TopicOptions, int]] = [
            (p, o, 1) for p, o in self.topics.items()
        ]
        candidates += [(p, o, 0) for p, o in self.queues.items()]
        lowered = name.lower()
        for pattern, options, is_topic in candidates:
            if not fnmatch.fnmatchcase(lowered, pattern.lower()):
                continue
            exact = int(not any(ch in pattern for ch in "*?["))
            literal = sum(1 for ch in pattern if ch not in "*?[]")
            rank = (exact, literal, is_topic)
            if best is None or rank > best[0]:
                best = (rank, options)
        return best[1] if best else None


_ENTITY_KEYS = {
    "requires_session": bool,
    "max_delivery_count": int,
    "lock_duration_seconds": (int, float),
    "default_message_ttl_seconds": (int, float),
    "dead_lettering_on_message_expiration": bool,
}
_QUEUE_KEYS = {
    **_ENTITY_KEYS,
    "duplicate_detection": bool,
    "duplicate_detection_window_seconds": (int, float),
}
_TOPIC_KEYS = {
    "duplicate_detection": bool,
    "duplicate_detection_window_seconds": (int, float),
    "subscriptions": dict,
}


def _check_keys(where: str, raw: Any, allowed: dict[str, Any]) -> dict[str, Any]:
    # Unknown keys are errors: a typo'd option silently ignored is a test that lies.
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object")
    for key, value in raw.items():
        if key not in allowed:
            raise ConfigError(f"{where}: unknown option {key!r} (allowed: {sorted(allowed)})")
        if not isinstance(value, allowed[key]) or (
            allowed[key] in (int, (int, float)) and isinstance(value, bool)
        ):
            raise ConfigError(f"{where}: option {key!r} has the wrong type")
    return raw


def _entity_options(where: str, raw: Any, allowed: dict[str, Any]) -> EntityOptions:
    opts = _check_keys(where, raw, allowed)
    result = EntityOptions(**opts)
    if result.max_delivery_count < 1:
        raise ConfigError(f"{where}: max_delivery_count must be >= 1")
    if result.lock_duration_seconds <= 0:
        raise ConfigError(f"{where}: lock_duration_seconds must be > 0")
    return result


def parse_config(raw: dict[str, Any] | None) -> BrokerConfig:
    """Validate a config dict (same shape as ``DEFAULT_CONFIG``); None means the default."""
    raw = DEFAULT_CONFIG if raw is None else raw
    _check_keys("config", raw, {"queues": dict, "topics": dict, "max_message_size": int})
    queues = {
        pattern: _entity_options(f"queues[{pattern!r}]", opts, _QUEUE_KEYS)
        for pattern, opts in raw.get("queues", {}).items()
    }
    topics: dict[str, TopicOptions] = {}
    for pattern, opts in raw.get("topics", {}).items():
        where = f"topics[{pattern!r}]"
        checked = _check_keys(where, opts, _TOPIC_KEYS)
        subs = {}
        for sub_name, sub_opts in checked.get("subscriptions", {}).items():
            if any(ch in sub_name for ch in "*?[]/"):
                raise ConfigError(f"{where}: subscription names must be literal: {sub_name!r}")
            subs[sub_name] = _entity_options(
                f"{where}.subscriptions[{sub_name!r}]", sub_opts, _ENTITY_KEYS
            )
        topics[pattern] = TopicOptions(
            duplicate_detection=checked.get("duplicate_detection", False),
            duplicate_detection_window_seconds=checked.get(
                "duplicate_detection_window_seconds", 600.0
            ),
            subscriptions=subs,
        )
    return BrokerConfig(
        queues=queues,
        topics=topics,
        max_message_size=raw.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE),
    )


def load_config(path: str | Path | None) -> BrokerConfig:
    """Read a JSON config file; None gives the default config."""
    if path is None:
        return parse_config(None)
    with open(path, encoding="utf-8") as fh:
        return parse_config(json.load(fh))
