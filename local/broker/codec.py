"""Byte-level AMQP 1.0 message handling for the hot path.

Messages are stored as the raw bytes of their immutable sections (properties,
application-properties, body, footer) so that what a receiver gets is exactly what
the sender wrote: re-encoding through a generic codec would silently change value
types (e.g. an ``int`` application property coming back as a ``long``). Only the
header and the message annotations, which the broker owns on delivery, are
re-encoded, by hand, which is also much faster than a general-purpose encoder.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, replace
from typing import Any

# Section descriptor codes (AMQP 1.0 part 3.2).
HEADER = 0x70
DELIVERY_ANNOTATIONS = 0x71
MESSAGE_ANNOTATIONS = 0x72
PROPERTIES = 0x73
APPLICATION_PROPERTIES = 0x74
DATA = 0x75
AMQP_SEQUENCE = 0x76
AMQP_VALUE = 0x77
FOOTER = 0x78

_SECTION_SYMBOLS = {
    b"amqp:header:list": HEADER,
    b"amqp:delivery-annotations:map": DELIVERY_ANNOTATIONS,
    b"amqp:message-annotations:map": MESSAGE_ANNOTATIONS,
    b"amqp:properties:list": PROPERTIES,
    b"amqp:application-properties:map": APPLICATION_PROPERTIES,
    b"amqp:data:binary": DATA,
    b"amqp:amqp-sequence:list": AMQP_SEQUENCE,
    b"amqp:value:*": AMQP_VALUE,
    b"amqp:footer:map": FOOTER,
}

# Width of fixed-size encodings, indexed by the format code's high nibble (0x4_..0x9_).
_FIXED_WIDTH = {0x4: 0, 0x5: 1, 0x6: 2, 0x7: 4, 0x8: 8, 0x9: 16}

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")
_I16 = struct.Struct(">h")


class CodecError(ValueError):
    """The bytes are not a well-formed AMQP encoding."""


def skip_value(buf: bytes, pos: int) -> int:
    """Return the offset just past the encoded value starting at ``pos``.

    Every AMQP format code encodes its own width in the high nibble, so values can be
    skipped without decoding them.
    """
    try:
        code = buf[pos]
        if code == 0x00:  # described: descriptor then value
            return skip_value(buf, skip_value(buf, pos + 1))
        high = code >> 4
        width = _FIXED_WIDTH.get(high)
        if width is not None:
            end = pos + 1 + width
        elif high in (0xA, 0xC, 0xE):
            end = pos + 2 + buf[pos + 1]
        elif high in (0xB, 0xD, 0xF):
            end = pos + 5 + _U32.unpack_from(buf, pos + 1)[0]
        else:
            raise CodecError(f"invalid format code 0x{code:02x}")
    except (IndexError, struct.error) as exc:
        raise CodecError("truncated encoding") from exc
    if end > len(buf):
        raise CodecError("truncated encoding")
    return end


def _section_code(buf: bytes, pos: int) -> tuple[int, int]:
    """Return (section code, offset of the section's value) for a section at ``pos``."""
    if buf[pos] != 0x00:
        raise CodecError("message section is not a described type")
    code = buf[pos + 1]
    if code == 0x53:
        return buf[pos + 2], pos + 3
    if code == 0x80:
        return _U64.unpack_from(buf, pos + 2)[0], pos + 10
    if code in (0xA3, 0xB3):
        end = skip_value(buf, pos + 1)
        name = bytes(buf[pos + 3 : end]) if code == 0xA3 else bytes(buf[pos + 6 : end])
        if name in _SECTION_SYMBOLS:
            return _SECTION_SYMBOLS[name], end
    raise CodecError("unknown message section descriptor")


def iter_sections(buf: bytes) -> list[tuple[int, int, int, int]]:
    """Split an encoded message into (code, start, value_start, end) per section."""
    sections = []
    pos = 0
    size = len(buf)
    while pos < size:
        code, value_pos = _section_code(buf, pos)
        if not HEADER <= code <= FOOTER:
            raise CodecError(f"unknown message section 0x{code:x}")
        end = skip_value(buf, value_pos)
        sections.append((code, pos, value_pos, end))
        pos = end
    return sections


def decode_value(buf: bytes, pos: int) -> tuple[Any, int]:
    """Decode one primitive value (the types used in headers/properties/annotations).

    Compound values are returned as their raw bytes: the broker never needs to look
    inside them.
    """
    code = buf[pos]
    p = pos + 1
    if code == 0x40:
        return None, p
    if code == 0x41:
        return True, p
    if code == 0x42:
        return False, p
    if code == 0x56:
        return buf[p] != 0, p + 1
    if code in (0x43, 0x44):
        return 0, p
    if code in (0x50, 0x52, 0x53):
        return buf[p], p + 1
    if code in (0x51, 0x54, 0x55):
        return struct.unpack_from(">b", buf, p)[0], p + 1
    if code == 0x60:
        return _U16.unpack_from(buf, p)[0], p + 2
    if code == 0x61:
        return _I16.unpack_from(buf, p)[0], p + 2
    if code == 0x70:
        return _U32.unpack_from(buf, p)[0], p + 4
    if code == 0x71:
        return _I32.unpack_from(buf, p)[0], p + 4
    if code == 0x80:
        return _U64.unpack_from(buf, p)[0], p + 8
    if code in (0x81, 0x83):
        return _I64.unpack_from(buf, p)[0], p + 8
    if code == 0x98:
        return uuid.UUID(bytes=bytes(buf[p : p + 16])), p + 16
    if code == 0xA0:
        n = buf[p]
        return bytes(buf[p + 1 : p + 1 + n]), p + 1 + n
    if code == 0xB0:
        n = _U32.unpack_from(buf, p)[0]
        return bytes(buf[p + 4 : p + 4 + n]), p + 4 + n
    if code in (0xA1, 0xA3):
        n = buf[p]
        return bytes(buf[p + 1 : p + 1 + n]).decode("utf-8", "replace"), p + 1 + n
    if code in (0xB1, 0xB3):
        n = _U32.unpack_from(buf, p)[0]
        return bytes(buf[p + 4 : p + 4 + n]).decode("utf-8", "replace"), p + 4 + n
    end = skip_value(buf, pos)
    return bytes(buf[pos:end]), end


def decode_list(buf: bytes, pos: int) -> list[Any]:
    """Decode a list of primitive values (header and properties sections)."""
    code = buf[pos]
    if code == 0x45:
        return []
    if code == 0xC0:
        count, p = buf[pos + 2], pos + 3
    elif code == 0xD0:
        count, p = _U32.unpack_from(buf, pos + 5)[0], pos + 9
    else:
        raise CodecError("expected a list")
    items = []
    for _ in range(count):
        value, p = decode_value(buf, p)
        items.append(value)
    return items


def iter_map_entries(buf: bytes, pos: int) -> list[tuple[Any, int, int]]:
    """Return (decoded key, entry start, entry end) for each entry of a map at ``pos``.

    Entry bytes (key and value) can then be copied verbatim into a rebuilt map.
    """
    code = buf[pos]
    if code == 0xC1:
        count, p = buf[pos + 2], pos + 3
    elif code == 0xD1:
        count, p = _U32.unpack_from(buf, pos + 5)[0], pos + 9
    else:
        raise CodecError("expected a map")
    entries = []
    for _ in range(count // 2):
        key, value_pos = decode_value(buf, p)
        end = skip_value(buf, value_pos)
        entries.append((key, p, end))
        p = end
    return entries


# ---------------------------------------------------------------------------------
# Encoding helpers (only what the broker writes itself)


def enc_symbol(value: str) -> bytes:
    raw = value.encode()
    if len(raw) < 256:
        return b"\xa3" + bytes((len(raw),)) + raw
    return b"\xb3" + _U32.pack(len(raw)) + raw


def enc_string(value: str) -> bytes:
    raw = value.encode()
    if len(raw) < 256:
        return b"\xa1" + bytes((len(raw),)) + raw
    return b"\xb1" + _U32.pack(len(raw)) + raw


def enc_timestamp(ms: int) -> bytes:
    return b"\x83" + _I64.pack(ms)


def enc_long(value: int) -> bytes:
    return b"\x81" + _I64.pack(value)


def enc_int(value: int) -> bytes:
    return b"\x71" + _I32.pack(value)


def enc_uint(value: int) -> bytes:
    return b"\x70" + _U32.pack(value)


def enc_map(entries: bytes, count: int) -> bytes:
    """A map32 from pre-encoded entries; ``count`` is keys plus values."""
    return b"\xd1" + _U32.pack(len(entries) + 4) + _U32.pack(count) + entries


def enc_section(code: int, value: bytes) -> bytes:
    return b"\x00\x53" + bytes((code,)) + value


def _enc_opt_bool(value: bool | None) -> bytes:
    if value is None:
        return b"\x40"
    return b"\x41" if value else b"\x42"


def encode_header(
    durable: bool | None,
    priority: int | None,
    ttl_ms: int | None,
    first_acquirer: bool | None,
    delivery_count: int,
) -> bytes:
    body = (
        _enc_opt_bool(durable)
        + (b"\x40" if priority is None else b"\x50" + bytes((priority & 0xFF,)))
        + (b"\x40" if ttl_ms is None else enc_uint(ttl_ms & 0xFFFFFFFF))
        + _enc_opt_bool(first_acquirer)
        + enc_uint(delivery_count)
    )
    return enc_section(HEADER, b"\xc0" + bytes((len(body) + 1, 5)) + body)


# ---------------------------------------------------------------------------------
# Message model


@dataclass(frozen=True, slots=True)
class Content:
    """The immutable part of a message, shared by every copy (topic fan-out, DLQ)."""

    message_id: Any
    session_id: str | None
    durable: bool | None
    priority: int | None
    ttl_ms: int | None
    first_acquirer: bool | None
    annotations: bytes  # sender-supplied annotation entries, broker-owned keys removed
    annotation_count: int
    properties: bytes  # raw properties section (b"" if absent)
    application_properties: bytes  # raw application-properties section (b"" if absent)
    body: bytes  # raw body sections and footer
    scheduled_ms: int | None


# Annotations the broker sets itself on delivery; a sender's values are discarded
# (e.g. when re-sending a received message) so they can't shadow the broker's.
BROKER_ANNOTATIONS = frozenset(
    {
        "x-opt-enqueued-time",
        "x-opt-sequence-number",
        "x-opt-locked-until",
        "x-opt-lock-token",
        "x-opt-message-state",
        "x-opt-deadletter-source",
        "x-opt-enqueue-sequence-number",
    }
)


def parse_message(buf: bytes) -> Content:
    """Parse one encoded (non-batch) message into stored form."""
    durable = priority = ttl = first_acquirer = None
    annotations = b""
    annotation_count = 0
    properties = app_properties = b""
    message_id: Any = None
    session_id: str | None = None
    scheduled: int | None = None
    body_start: int | None = None
    for code, start, value_pos, end in iter_sections(buf):
        if code == HEADER:
            fields = decode_list(buf, value_pos) + [None] * 5
            durable, priority, ttl, first_acquirer = fields[0], fields[1], fields[2], fields[3]
        elif code == MESSAGE_ANNOTATIONS:
            kept = []
            for key, entry_start, entry_end in iter_map_entries(buf, value_pos):
                if key == "x-opt-scheduled-enqueue-time":
                    scheduled, _ = decode_value(buf, skip_value(buf, entry_start))
                if key in BROKER_ANNOTATIONS:
                    continue
                kept.append(bytes(buf[entry_start:entry_end]))
            annotations = b"".join(kept)
            annotation_count = 2 * len(kept)
        elif code == PROPERTIES:
            properties = bytes(buf[start:end])
            fields = decode_list(buf, value_pos) + [None] * 13
            message_id = fields[0]
            session_id = fields[10] if isinstance(fields[10], str) else None
        elif code == APPLICATION_PROPERTIES:
            app_properties = bytes(buf[start:end])
        elif code >= DATA and body_start is None:
            body_start = start
        # delivery annotations are per-hop and intentionally dropped
    body = bytes(buf[body_start:]) if body_start is not None else b""
    return Content(
        message_id=message_id,
        session_id=session_id,
        durable=durable,
        priority=priority,
        ttl_ms=ttl,
        first_acquirer=first_acquirer,
        annotations=annotations,
        annotation_count=annotation_count,
        properties=properties,
        application_properties=app_properties,
        body=body,
        scheduled_ms=scheduled if isinstance(scheduled, int) and scheduled > 0 else None,
    )


def encode_stored(content: Content) -> bytes:
    """Encode ``content`` so that ``parse_message`` gives it back unchanged (the journal's form).

    Only what ``Content`` holds is written: the header fields (delivery count is stored apart),
    the sender's annotations (which carry a scheduled enqueue time, if any), and the raw
    properties, application properties and body sections as received.
    """
    parts = [
        encode_header(content.durable, content.priority, content.ttl_ms, content.first_acquirer, 0)
    ]
    if content.annotation_count:
        parts.append(
            enc_section(MESSAGE_ANNOTATIONS, enc_map(content.annotations, content.annotation_count))
        )
    parts += (content.properties, content.application_properties, content.body)
    return b"".join(parts)


def _looks_like_message(buf: bytes) -> bool:
    try:
        sections = iter_sections(buf)
    except CodecError:
        return False
    return bool(sections)


def split_batch(buf: bytes) -> list[bytes] | None:
    """Return the inner messages if ``buf`` is a batch envelope, else None.

    The SDK sends ``send_messages([...])`` and ``ServiceBusMessageBatch`` as message
    format 0x80013700, whose data sections each hold a complete encoded message.
    proton-python does not expose the message format, so it is recognised by content:
    a body made only of data sections that all parse as whole AMQP messages.
    """
    sections = iter_sections(buf)
    payloads: list[bytes] = []
    for code, _start, value_pos, end in sections:
        if code in (HEADER, DELIVERY_ANNOTATIONS, MESSAGE_ANNOTATIONS, PROPERTIES, FOOTER):
            continue
        if code != DATA:
            return None
        tag = buf[value_pos]
        offset = value_pos + (2 if tag == 0xA0 else 5)
        payloads.append(bytes(buf[offset:end]))
    if not payloads or not all(p[:2] == b"\x00\x53" and _looks_like_message(p) for p in payloads):
        return None
    return payloads


def with_application_properties(content: Content, extra: dict[str, str | None]) -> Content:
    """A copy of ``content`` with string application properties set (dead-lettering)."""
    entries: list[bytes] = []
    if content.application_properties:
        raw = content.application_properties
        _code, value_pos = _section_code(raw, 0)
        for key, start, end in iter_map_entries(raw, value_pos):
            if key not in extra:
                entries.append(bytes(raw[start:end]))
    for key, value in extra.items():
        entries.append(enc_string(key) + (b"\x40" if value is None else enc_string(value)))
    app = enc_section(APPLICATION_PROPERTIES, enc_map(b"".join(entries), 2 * len(entries)))
    return replace(content, application_properties=app)


_KEY_ENQUEUED_TIME = enc_symbol("x-opt-enqueued-time")
_KEY_SEQUENCE_NUMBER = enc_symbol("x-opt-sequence-number")
_KEY_LOCKED_UNTIL = enc_symbol("x-opt-locked-until")
_KEY_MESSAGE_STATE = enc_symbol("x-opt-message-state")


def encode_delivery(
    content: Content,
    *,
    sequence_number: int,
    enqueued_ms: int,
    delivery_count: int,
    locked_until_ms: int | None,
    message_state: int = 0,
) -> bytes:
    """Encode a message as delivered to a receiver, with Service Bus annotations."""
    annotations = (
        content.annotations
        + _KEY_ENQUEUED_TIME
        + enc_timestamp(enqueued_ms)
        + _KEY_SEQUENCE_NUMBER
        + enc_long(sequence_number)
    )
    count = content.annotation_count + 4
    if locked_until_ms is not None:
        annotations += _KEY_LOCKED_UNTIL + enc_timestamp(locked_until_ms)
        count += 2
    if message_state:
        annotations += _KEY_MESSAGE_STATE + enc_int(message_state)
        count += 2
    return b"".join(
        (
            encode_header(
                content.durable,
                content.priority,
                content.ttl_ms,
                content.first_acquirer,
                delivery_count,
            ),
            enc_section(MESSAGE_ANNOTATIONS, enc_map(annotations, count)),
            content.properties,
            content.application_properties,
            content.body,
        )
    )
