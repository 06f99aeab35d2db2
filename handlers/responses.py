"""HTTP pieces the Graph-facing routes share: the validation handshake, JSON errors, body limits,
and the answers for a body over the limit and for work that could not be queued."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared import logs

log = logging.getLogger("devicemon.http")

# Graph's tokens are about 120 characters ("Validation: Testing client application reachability
# for subscription Request-Id: <guid>"); no limit is documented, so the cap is generous. It keeps
# the anonymous routes from echoing whatever bulk a caller puts in the query string.
MAX_VALIDATION_TOKEN_CHARS = 1024
# The echo and the errors are text the caller chose: browsers must not sniff them into HTML.
NOSNIFF = {"X-Content-Type-Options": "nosniff"}
# A Content-Length of 19 digits or more is over any limit; int() of thousands of digits raises.
_MAX_LENGTH_DIGITS = 18


def validation_response(req: func.HttpRequest) -> func.HttpResponse | None:
    """Graph's subscription handshake: echo the (already URL-decoded) token as text/plain."""
    token = req.params.get("validationToken")
    if token is None:
        return None
    route = req.url.split("?", 1)[0]
    if len(token) > MAX_VALIDATION_TOKEN_CHARS or not _is_utf8_text(token):
        logs.event(
            log, "validation_rejected", level=logging.WARNING, route=route, length=len(token)
        )
        return json_error(
            400,
            "invalidValidationToken",
            f"validationToken must be text of at most {MAX_VALIDATION_TOKEN_CHARS} characters",
        )
    logs.event(log, "validation_handshake", route=route)
    return func.HttpResponse(token, status_code=200, mimetype="text/plain", headers=dict(NOSNIFF))


def json_error(status: int, code: str, message: str) -> func.HttpResponse:
    body = json.dumps({"error": {"code": code, "message": message}})
    return func.HttpResponse(
        body, status_code=status, mimetype="application/json", headers=dict(NOSNIFF)
    )


def payload_too_large(logger: logging.Logger, event: str, limit: int) -> func.HttpResponse:
    logs.event(logger, event, level=logging.WARNING, outcome="too_large")
    return json_error(413, "payloadTooLarge", f"body exceeds {limit} bytes")


def enqueue_failed(
    logger: logging.Logger, exc: Exception, count: int, what: str
) -> func.HttpResponse:
    """Not durably queued: a 5xx makes Graph deliver again, where a 202 would lose the work.

    `what` names the work in the message ("the notifications", "the lifecycle work")."""
    logs.event(logger, "enqueue_failed", level=logging.ERROR, error=type(exc).__name__, count=count)
    return json_error(503, "enqueueFailed", f"could not queue {what}; retry later")


def body_within_limit(req: func.HttpRequest, limit: int) -> bytes | None:
    """The body, or None when it is over `limit` bytes.

    The declared Content-Length is checked before the body is touched. In Azure the Functions
    host has buffered the body by then: FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (infra/, the same
    value as MAX_NOTIFICATION_BYTES) makes the host refuse it before reading; the dev host checks
    Content-Length before reading too. A body without a usable declared length is measured.
    """
    declared = (req.headers.get("content-length") or "").strip()
    # isascii(): str.isdigit() accepts digits such as "²" that int() refuses.
    if (
        declared.isascii()
        and declared.isdigit()
        and (len(declared) > _MAX_LENGTH_DIGITS or int(declared) > limit)
    ):
        return None
    body = req.get_body()
    return body if len(body) <= limit else None


def _is_utf8_text(text: str) -> bool:
    """False for lone surrogates (from undecodable bytes), which no response body can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
