"""HTTP pieces the Graph-facing routes share: the validation handshake, JSON errors, body limits."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared import logs

log = logging.getLogger("devicemon.http")


def validation_response(req: func.HttpRequest) -> func.HttpResponse | None:
    """Graph's subscription handshake: echo the (already URL-decoded) token as text/plain."""
    token = req.params.get("validationToken")
    if token is None:
        return None
    logs.event(log, "validation_handshake", route=req.url.split("?", 1)[0])
    return func.HttpResponse(token, status_code=200, mimetype="text/plain")


def json_error(status: int, code: str, message: str) -> func.HttpResponse:
    body = json.dumps({"error": {"code": code, "message": message}})
    return func.HttpResponse(body, status_code=status, mimetype="application/json")


def body_within_limit(req: func.HttpRequest, limit: int) -> bytes | None:
    declared = req.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    body = req.get_body()
    return body if len(body) <= limit else None
