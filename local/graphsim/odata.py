"""OData plumbing shared by the Graph handlers: responses, errors, $select, $filter, dates.

Everything here is framework-free so `$batch` can run the same handlers in-process.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

# Real Graph answers JSON with these parameters; the SDK strips everything after ';'.
GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)
# Intune (deviceManagement) answers with a plainer content type.
INTUNE_JSON = "application/json; charset=utf-8"

GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def tenant_guid(name: str) -> str:
    """The tenant's id as Graph sends it (a GUID, e.g. `tenantId` in change notifications).

    Tenants here are named by URL prefix; a name that is a GUID is its own id, any other
    name maps to a stable name-based UUID so the same name always gets the same id.
    """
    if GUID_RE.match(name):
        return name.lower()
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"graphsim:tenant:{name}"))


def dumps(value: Any) -> bytes:
    """Compact JSON, as Graph sends it (and cheaper for 100k-device pages)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class GraphRequest:
    """One Graph API call, from HTTP or from inside a `$batch` body."""

    method: str
    path: str  # decoded, relative to /v1.0, always starting with "/"
    query: dict[str, str]  # keys lower-cased: "$select", "$filter", "$deltatoken", ...
    headers: dict[str, str]  # keys lower-cased
    body: bytes | None
    base_url: str  # absolute "http://host:port/{tenant}/v1.0", for nextLink/deltaLink
    in_batch: bool = False

    def json_body(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body)


@dataclass
class GraphResponse:
    status: int
    body: Any = None  # JSON-able value, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = GRAPH_JSON

    def header_items(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.body is not None:
            headers["Content-Type"] = self.content_type
        return headers


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso_z(value: datetime) -> str:
    """Directory style timestamp: second precision, 'Z' ("2024-05-01T10:00:00Z")."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_7(value: datetime) -> str:
    """Subscription style timestamp with 7 fractional digits, as Graph's .NET backend emits."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0Z"


_FRACTION_RE = re.compile(r"(\.\d{1,6})\d*")


def parse_datetime(text: str) -> datetime:
    """Parse an ISO 8601 timestamp as clients send it (Z or offset, up to 7+ fraction digits)."""
    cleaned = _FRACTION_RE.sub(lambda m: m.group(1), text.strip(), count=1)
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    parsed = datetime.fromisoformat(cleaned)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _inner_error(request_id: str, client_request_id: str | None) -> dict[str, Any]:
    inner = {"date": iso_z(now_utc()).rstrip("Z"), "request-id": request_id}
    if client_request_id:
        inner["client-request-id"] = client_request_id
    return inner


def graph_error(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    client_request_id: str | None = None,
    inner: Mapping[str, str] | None = None,
) -> GraphResponse:
    """A Graph style error: {"error": {"code", "message", "innerError"}} (the SDK maps it
    to ODataError with response_status_code). `inner` adds to innerError, e.g. the more
    specific nested "code" errors.md tells clients to look for."""
    request_id = str(uuid.uuid4())
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {**(inner or {}), **_inner_error(request_id, client_request_id)},
        }
    }
    return GraphResponse(status, body, dict(headers or {}))


def intune_error(
    status: int,
    code: str,
    *,
    headers: Mapping[str, str] | None = None,
    client_request_id: str | None = None,
) -> GraphResponse:
    """Intune wraps its own error JSON as a *string* in error.message; clients that show
    the message verbatim print this blob, so the simulator reproduces it."""
    request_id = str(uuid.uuid4())
    inner_message = {
        "_version": 3,
        "Message": (
            f"An error has occurred - Operation ID (for customer support): {uuid.uuid4()} - "
            f"Activity ID: {request_id} - Url: https://fef.msua06.manage.microsoft.com/"
            f"DeviceFE/StatelessDeviceFEService/deviceManagement/managedDevices"
        ),
        "CustomApiErrorPhrase": "",
        "RetryAfter": None,
        "ErrorSourceService": "",
        "HttpHeaders": "{}",
    }
    body = {
        "error": {
            "code": code,
            "message": json.dumps(inner_message, indent=2).replace("\n", "\r\n"),
            "innerError": _inner_error(request_id, client_request_id),
        }
    }
    return GraphResponse(status, body, dict(headers or {}), content_type=INTUNE_JSON)


def status_phrase(status: int) -> str:
    """.NET HttpStatusCode name, as Graph prints it in validation errors ('NotFound')."""
    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return str(status)


class ODataQueryError(ValueError):
    """A query option Graph would refuse with 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_select(
    raw: str | None, known: Mapping[str, str], type_name: str
) -> tuple[str, ...] | None:
    """Resolve $select against known props (case-insensitive, like Graph) -> canonical names.

    `known` maps lower-case name -> canonical name. None means "no $select" (default set).
    """
    if raw is None or not raw.strip():
        return None
    out: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        if not name:
            continue
        canonical = known.get(name.lower())
        if canonical is None:
            raise ODataQueryError(
                "Request_BadRequest",
                f"Could not find a property named '{name}' on type '{type_name}'.",
            )
        if canonical not in out:
            out.append(canonical)
    return tuple(out)


def project(entity: Mapping[str, Any], select: Iterable[str] | None) -> dict[str, Any]:
    """Only the selected props; Graph does not add `id` unless it was selected (outside delta)."""
    if select is None:
        return dict(entity)
    return {name: entity.get(name) for name in select}


# --- $filter: the tiny subset devicemon needs -------------------------------------------

_CLAUSE_RE = re.compile(
    r"^\s*([A-Za-z][A-Za-z0-9]*)\s+eq\s+('(?:[^']|'')*'|true|false|null|-?\d+)\s*$",
    re.IGNORECASE,
)


def parse_filter(
    raw: str | None, known: Mapping[str, str]
) -> list[tuple[str, str | bool | int | None]] | None:
    """`prop eq 'x' [and prop2 eq true ...]` -> [(canonical prop, value)].

    Graph supports far more; anything else is refused as Request_UnsupportedQuery so a
    caller relying on it fails loudly instead of silently getting everything.
    """
    if raw is None or not raw.strip():
        return None
    clauses: list[tuple[str, str | bool | int | None]] = []
    for part in re.split(r"\s+and\s+", raw.strip(), flags=re.IGNORECASE):
        match = _CLAUSE_RE.match(part)
        if match is None:
            raise ODataQueryError(
                "Request_UnsupportedQuery", f"Unsupported or invalid query filter clause: {part}"
            )
        name, literal = match.group(1), match.group(2)
        canonical = known.get(name.lower())
        if canonical is None:
            raise ODataQueryError(
                "Request_BadRequest", f"Could not find a property named '{name}' on this type."
            )
        value: str | bool | int | None
        lowered = literal.lower()
        if literal.startswith("'"):
            value = literal[1:-1].replace("''", "'")
        elif lowered in ("true", "false"):
            value = lowered == "true"
        elif lowered == "null":
            value = None
        else:
            value = int(literal)
        clauses.append((canonical, value))
    return clauses


def matches(entity: Mapping[str, Any], clauses: list[tuple[str, str | bool | int | None]]) -> bool:
    for name, value in clauses:
        actual = entity.get(name)
        if isinstance(value, str) and isinstance(actual, str):
            # Graph string equality on these props is case-insensitive.
            if actual.lower() != value.lower():
                return False
        elif actual != value:
            return False
    return True


def parse_max_page_size(headers: Mapping[str, str]) -> int | None:
    """`Prefer: odata.maxpagesize=N` (possibly among other preferences)."""
    prefer = headers.get("prefer")
    if not prefer:
        return None
    match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer, re.IGNORECASE)
    return int(match.group(1)) if match else None
