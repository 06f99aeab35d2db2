"""Control commands on the `device-changes` queue: run a delta sync, reauthorize or recreate the
subscription. They ride the same queue as device changes (no extra entity to deploy) in one
session of their own, so commands run one at a time, retried and dead-lettered like any message.

Commands name no device. The subscription id they may carry (from a lifecycle notification) is
normalised like every Graph id at the edge, so it compares equal to the id Graph gave devicemon
when the subscription was created, whatever case the notification spelt it in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from shared.core.changes import normalize_graph_id

CONTROL_SESSION = "devicemon-control"
KIND_PROPERTY = "kind"
COMMAND_KIND = "command"
NAMES = frozenset({"sync", "reauthorize", "recreate", "ensure_subscription"})


class CommandError(ValueError):
    """Not a command this version understands."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    reason: str
    requested_at: str
    subscription_id: str = ""
    dedupe_key: str = ""

    def __post_init__(self) -> None:
        # Frozen: normalised once, whoever builds the command (a lifecycle item, from_json).
        object.__setattr__(self, "subscription_id", normalize_graph_id(self.subscription_id))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def message_id(self) -> str:
        key = (
            self.dedupe_key
            or f"{self.name}|{self.reason}|{self.subscription_id}|{self.requested_at}"
        )
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    @classmethod
    def from_json(cls, raw: bytes | str) -> Command:
        try:
            body: Any = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CommandError(f"command body is not JSON: {exc}") from None
        if not isinstance(body, dict) or body.get("name") not in NAMES:
            raise CommandError(
                f"unknown command {body.get('name') if isinstance(body, dict) else body!r}"
            )
        return cls(
            name=str(body["name"]),
            reason=str(body.get("reason") or ""),
            requested_at=str(body.get("requested_at") or ""),
            subscription_id=str(body.get("subscription_id") or ""),
            dedupe_key=str(body.get("dedupe_key") or ""),
        )


def is_command(application_properties: dict[Any, Any] | None) -> bool:
    for key, value in (application_properties or {}).items():
        key_text = key.decode() if isinstance(key, bytes) else str(key)
        value_text = value.decode() if isinstance(value, bytes) else str(value)
        if key_text == KIND_PROPERTY and value_text == COMMAND_KIND:
            return True
    return False
