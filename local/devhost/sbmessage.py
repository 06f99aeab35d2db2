"""Turning a received azure-servicebus message into the azure.functions.ServiceBusMessage
the Python worker would pass, including the trigger metadata behind `.metadata`."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from azure.functions.meta import Datum
from azure.functions.servicebus import ServiceBusMessage
from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus.amqp import AmqpMessageBodyType

_VIA_PARTITION_KEY = b"x-opt-via-partition-key"


def message_body(message: ServiceBusReceivedMessage) -> bytes:
    """Body bytes; data sections are concatenated, value/sequence bodies are JSON-encoded."""
    body_type = message.body_type
    if body_type == AmqpMessageBodyType.DATA:
        return b"".join(bytes(part) for part in message.body)
    value = message.body
    if body_type == AmqpMessageBodyType.SEQUENCE:
        value = list(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(_jsonable(value)).encode("utf-8")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _jsonable(value: Any) -> Any:
    """What a property value looks like after the host's JSON hop to the worker."""
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value).hex()
    if isinstance(value, dt.datetime):
        return _utc_text(value)
    if isinstance(value, uuid.UUID | Decimal | dt.timedelta):
        return str(value)
    if isinstance(value, Mapping):
        return {str(_text(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def application_properties(message: ServiceBusReceivedMessage) -> dict[str, Any]:
    """Application properties with str keys and JSON-compatible values."""
    props = message.application_properties or {}
    return {str(_text(k)): _jsonable(v) for k, v in props.items()}


def _utc_text(moment: dt.datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timespan_text(delta: dt.timedelta) -> str:
    """.NET TimeSpan text ([d.]hh:mm:ss[.fffffff]) as the host serializes TimeToLive."""
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if delta.microseconds:
        text += f".{delta.microseconds:06d}0"
    return f"{days}.{text}" if days else text


def _via_partition_key(message: ServiceBusReceivedMessage) -> str | None:
    annotations = message.raw_amqp_message.annotations or {}
    return _text(annotations.get(_VIA_PARTITION_KEY))


def to_functions_message(
    message: ServiceBusReceivedMessage,
    *,
    locked_until: dt.datetime | None = None,
    function_name: str = "",
) -> ServiceBusMessage:
    """The azure.functions.ServiceBusMessage for `message`, populated like the host does.

    `label` is filled from the subject (the v5 extension keeps Label as Subject's alias) and
    `user_properties` equals `application_properties`, as the host sends both.
    """
    body = message_body(message)
    props = application_properties(message)
    lock_token = _text(message.lock_token)
    locked = locked_until or message.locked_until_utc
    state = int(message.state) if message.state is not None else None
    time_to_live = message.time_to_live
    # The AMQP header counts *previous* failed deliveries (0 on the first); the .NET SDK
    # behind the host adds one for received messages, so functions see 1 on first delivery.
    raw_count = message.delivery_count
    delivery_count = raw_count + 1 if raw_count is not None else None
    fields: dict[str, Any] = {
        "ContentType": message.content_type,
        "CorrelationId": _text(message.correlation_id),
        "DeadLetterErrorDescription": message.dead_letter_error_description,
        "DeadLetterReason": message.dead_letter_reason,
        "DeadLetterSource": message.dead_letter_source,
        "DeliveryCount": delivery_count,
        "EnqueuedSequenceNumber": message.enqueued_sequence_number,
        "EnqueuedTimeUtc": message.enqueued_time_utc,
        "ExpiresAtUtc": message.expires_at_utc,
        "Label": message.subject,
        "LockedUntil": locked,
        "LockToken": lock_token,
        "MessageId": _text(message.message_id),
        "PartitionKey": message.partition_key,
        "ReplyTo": message.reply_to,
        "ReplyToSessionId": message.reply_to_session_id,
        "ScheduledEnqueueTimeUtc": message.scheduled_enqueue_time_utc,
        "SequenceNumber": message.sequence_number,
        "SessionId": message.session_id,
        "State": state,
        "Subject": message.subject,
        "TimeToLive": time_to_live,
        "To": message.to,
        "TransactionPartitionKey": _via_partition_key(message),
    }
    metadata = _trigger_metadata(fields, props, function_name)
    return ServiceBusMessage(
        body=body,
        trigger_metadata=metadata,
        application_properties=props,
        content_type=fields["ContentType"],
        correlation_id=fields["CorrelationId"],
        dead_letter_error_description=fields["DeadLetterErrorDescription"],
        dead_letter_reason=fields["DeadLetterReason"],
        dead_letter_source=fields["DeadLetterSource"],
        delivery_count=fields["DeliveryCount"],
        enqueued_sequence_number=fields["EnqueuedSequenceNumber"],
        enqueued_time_utc=fields["EnqueuedTimeUtc"],
        expires_at_utc=fields["ExpiresAtUtc"],
        label=fields["Label"],
        locked_until=locked,
        lock_token=lock_token,
        message_id=fields["MessageId"] or "",
        partition_key=fields["PartitionKey"],
        reply_to=fields["ReplyTo"],
        reply_to_session_id=fields["ReplyToSessionId"],
        scheduled_enqueue_time_utc=fields["ScheduledEnqueueTimeUtc"],
        sequence_number=fields["SequenceNumber"],
        session_id=fields["SessionId"],
        state=state,
        subject=fields["Subject"],
        time_to_live=time_to_live,
        to=fields["To"],
        transaction_partition_key=fields["TransactionPartitionKey"],
        user_properties=props,
    )


def _trigger_metadata(
    fields: Mapping[str, Any], props: dict[str, Any], function_name: str
) -> dict[str, Datum]:
    """Trigger metadata as the worker receives it (typed Datums), for `message.metadata`."""
    metadata: dict[str, Datum] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, dt.datetime):
            metadata[key] = Datum(json.dumps(_utc_text(value)), "json")
        elif isinstance(value, dt.timedelta):
            metadata[key] = Datum(_timespan_text(value), "string")
        elif isinstance(value, bool):
            metadata[key] = Datum(json.dumps(value), "json")
        elif isinstance(value, int):
            metadata[key] = Datum(value, "int")
        else:
            metadata[key] = Datum(str(value), "string")
    metadata["UserProperties"] = Datum(json.dumps(props), "json")
    metadata["ApplicationProperties"] = Datum(json.dumps(props), "json")
    now = dt.datetime.now(dt.UTC)
    metadata["sys"] = Datum(
        json.dumps(
            {"MethodName": function_name, "UtcNow": _utc_text(now), "RandGuid": str(uuid.uuid4())}
        ),
        "json",
    )
    return metadata
