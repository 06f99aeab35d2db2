"""What every Service Bus trigger does with a message it can never process: say so, then raise.

Raising abandons the message; Service Bus dead-letters it after the entity's max delivery count.
The reason travels in this log event, keyed by message id (docs/reliability.md).
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import logs


def log_poison(log: logging.Logger, msg: func.ServiceBusMessage, reason: str) -> None:
    logs.event(
        log,
        "message_poison",
        level=logging.ERROR,
        message_id=msg.message_id,
        delivery_count=msg.delivery_count,
        reason=reason,
    )
