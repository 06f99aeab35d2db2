"""Per-tenant fault injection: fixed latency and error rules (429/500/503/...).

A rule fires for the next `count` matching requests, or for a `fraction` of them (both:
a fraction until `count` have fired). Rules are checked per *logical* request: inside a
`$batch` each item is matched on its own, so a 200 batch can carry 429 items. A rule
without `path`/`route` never matches the outer `/$batch` POST itself; name it explicitly
(route "/$batch") to throttle whole batches.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from .entities import EntityError
from .odata import GraphResponse, graph_error, intune_error

DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    # throttling.md's sample response: this code and message, and an innerError with
    # "code": "429", "message": "Please retry after", "status": "429" (THROTTLING_INNER).
    429: ("TooManyRequests", "Please retry again later."),
    500: ("generalException", "General exception while processing."),
    502: ("badGateway", "Bad gateway."),
    503: ("serviceNotAvailable", "Service unavailable."),
    504: ("gatewayTimeout", "Gateway timeout."),
}
THROTTLING_INNER = {"code": "429", "message": "Please retry after", "status": "429"}


@dataclass
class FaultRule:
    status: int
    count: int | None = None  # remaining firings; None = unlimited
    fraction: float | None = None
    # Seconds; None = no Retry-After header. Fractions are sent as given: throttling.md's
    # sample response has "Retry-After: 2.128".
    retry_after: float | None = None
    path: str | None = None  # regex searched in the request path (relative to /v1.0)
    route: str | None = None  # exact route template, e.g. "/devices/{id}"
    method: str | None = None
    code: str | None = None
    message: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    hits: int = 0
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        allowed = {
            "status",
            "count",
            "fraction",
            "retryAfter",
            "path",
            "route",
            "method",
            "code",
            "message",
        }
        unknown = set(data) - allowed
        if unknown:
            raise EntityError(f"unknown fault rule fields: {sorted(unknown)}")
        status = data.get("status", 429)
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise EntityError("status must be an HTTP error status (400-599)")
        count = data.get("count")
        fraction = data.get("fraction")
        if count is None and fraction is None:
            raise EntityError("a fault rule needs count and/or fraction")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise EntityError("count must be a positive integer")
        if fraction is not None and (
            not isinstance(fraction, int | float) or not 0 < fraction <= 1
        ):
            raise EntityError("fraction must be in (0, 1]")
        retry_after = data.get("retryAfter")
        if retry_after is not None and (
            not isinstance(retry_after, int | float)
            or isinstance(retry_after, bool)
            or retry_after < 0
        ):
            raise EntityError("retryAfter must be a non-negative number of seconds or null")
        path = data.get("path")
        try:
            regex = re.compile(path, re.IGNORECASE) if path else None
        except re.error as exc:
            raise EntityError(f"path is not a valid regex: {exc}") from exc
        method = data.get("method")
        return cls(
            status=status,
            count=count,
            fraction=float(fraction) if fraction is not None else None,
            retry_after=retry_after,
            path=path,
            route=data.get("route"),
            method=method.upper() if isinstance(method, str) else None,
            code=data.get("code"),
            message=data.get("message"),
            _regex=regex,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "remaining": self.count,
            "fraction": self.fraction,
            "retryAfter": self.retry_after,
            "path": self.path,
            "route": self.route,
            "method": self.method,
            "code": self.code,
            "message": self.message,
            "hits": self.hits,
        }

    def applies(self, method: str, path: str, route: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.route is not None:
            return self.route.lower() == route.lower()
        if self._regex is not None:
            return self._regex.search(path) is not None
        return route != "/$batch"


def _seconds(value: float) -> str:
    """2 -> "2", 2.128 -> "2.128": whole seconds stay integers, fractions are kept."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class FaultInjector:
    def __init__(self, seed: int = 0) -> None:
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.rules: list[FaultRule] = []
        self._rng = random.Random(seed)

    def set_latency(self, ms: float, jitter_ms: float = 0.0) -> None:
        if ms < 0 or jitter_ms < 0:
            raise EntityError("latency must be >= 0")
        self.latency_ms, self.jitter_ms = float(ms), float(jitter_ms)

    def delay_seconds(self) -> float:
        if self.latency_ms <= 0 and self.jitter_ms <= 0:
            return 0.0
        return (self.latency_ms + self._rng.uniform(0, self.jitter_ms)) / 1000.0

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()
        self.latency_ms = self.jitter_ms = 0.0

    def check(
        self, method: str, path: str, route: str, client_request_id: str | None
    ) -> GraphResponse | None:
        """The injected error response for this request, or None to serve it normally."""
        for rule in self.rules:
            if not rule.applies(method, path, route):
                continue
            if rule.fraction is not None and self._rng.random() >= rule.fraction:
                continue
            if rule.count is not None:
                rule.count -= 1
            rule.hits += 1
            return self._response(rule, path, client_request_id)
        return None

    @staticmethod
    def _response(rule: FaultRule, path: str, client_request_id: str | None) -> GraphResponse:
        default_code, default_message = DEFAULT_ERRORS.get(
            rule.status, ("UnknownError", "Injected fault.")
        )
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = _seconds(rule.retry_after)
        code = rule.code or default_code
        if path.lower().startswith("/devicemanagement") and rule.message is None:
            # Intune errors wrap their own JSON in error.message.
            return intune_error(
                rule.status, code, headers=headers, client_request_id=client_request_id
            )
        inner = THROTTLING_INNER if rule.status == 429 and rule.message is None else None
        return graph_error(
            rule.status,
            code,
            rule.message or default_message,
            headers=headers,
            client_request_id=client_request_id,
            inner=inner,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "latencyMs": self.latency_ms,
            "jitterMs": self.jitter_ms,
            "rules": [rule.to_json() for rule in self.rules],
        }
