"""Small helpers shared by the admin API modules: non-200 answers, JSON bodies, query flags."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .odata import dumps


class Status:
    """A non-200 admin answer."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body


def json_response(status: int, body: Any) -> web.Response:
    return web.Response(status=status, body=dumps(body), content_type="application/json")


async def body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    raw = await request.read()
    if not raw:
        return None
    return await request.json()


def flag(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.lower() in ("1", "true", "yes", "on")
