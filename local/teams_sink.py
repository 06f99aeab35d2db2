"""A local stand-in for Teams Workflows webhooks ("When a Teams webhook request is received").

Each hook is a path, `POST /workflows/{hook}`; the sink checks the body has the Workflows shape
(a `message` with an Adaptive Card attachment), records it and answers 202 like Workflows. Tests
and the demo script answers per hook: 429 with Retry-After, 5xx, a permanent 4xx with an error
text, once or for good.

    async with TeamsSink() as sink:
        url = sink.url("t1")                       # TEAMS_WEBHOOK_URL
        sink.script("t1", Reply(429, retry_after="1"), Reply(503))   # then 202 again
        sink.set_default("t2", Reply(400, "Flow is disabled"))
        sink.posts("t1")                           # accepted messages, in order

`python -m local.teams_sink --port 8124` runs it standalone (GET /_sink/{hook}/posts to read).
The demo helpers at the end print the cards and remediation decisions the demo produced.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from local.graphsim.admin import AsyncSimAdmin
    from shared.runtime import Runtime

CARD_TYPE = "application/vnd.microsoft.card.adaptive"


@dataclass(frozen=True)
class Reply:
    status: int = 202
    body: str = ""
    retry_after: str | None = None


@dataclass
class Attempt:
    status: int
    payload: Any


@dataclass
class _Hook:
    script: deque[Reply] = field(default_factory=deque)
    default: Reply = field(default_factory=Reply)
    attempts: list[Attempt] = field(default_factory=list)
    printed: int = 0


def shape_error(payload: Any) -> str | None:
    """Why a body is not what a Workflows webhook flow accepts, or None."""
    if not isinstance(payload, dict) or payload.get("type") != "message":
        return "body must be a message: {'type': 'message', 'attachments': [...]}"
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "message has no attachments"
    for item in attachments:
        if not isinstance(item, dict) or item.get("contentType") != CARD_TYPE:
            return f"attachment contentType must be {CARD_TYPE}"
        content = item.get("content")
        if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
            return "attachment content must be an AdaptiveCard"
        if not content.get("version"):
            return "AdaptiveCard has no version"
    return None


class TeamsSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._hooks: dict[str, _Hook] = defaultdict(_Hook)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # -- control ---------------------------------------------------------------------------

    def url(self, hook: str = "default") -> str:
        if self.port is None:
            raise RuntimeError("TeamsSink is not started")
        return f"http://{self._host}:{self.port}/workflows/{hook}"

    def script(self, hook: str, *replies: Reply) -> None:
        """Answer the next posts to `hook` with these replies, in order, then the default."""
        self._hooks[hook].script.extend(replies)

    def set_default(self, hook: str, reply: Reply) -> None:
        self._hooks[hook].default = reply

    def attempts(self, hook: str = "default") -> list[Attempt]:
        return list(self._hooks[hook].attempts)

    def posts(self, hook: str = "default") -> list[dict[str, Any]]:
        """The messages the hook accepted (2xx), oldest first."""
        return [a.payload for a in self._hooks[hook].attempts if 200 <= a.status < 300]

    def cards(self, hook: str = "default") -> list[dict[str, Any]]:
        return [a["content"] for p in self.posts(hook) for a in p["attachments"]]

    # -- server ----------------------------------------------------------------------------

    async def _workflow(self, request: web.Request) -> web.Response:
        hook = self._hooks[request.match_info["hook"]]
        try:
            payload = json.loads(await request.read())
        except ValueError:
            payload = None
        reply = hook.script.popleft() if hook.script else hook.default
        problem = shape_error(payload)
        if problem is not None and 200 <= reply.status < 300:
            reply = Reply(
                400, json.dumps({"error": {"code": "InvalidRequest", "message": problem}})
            )
        hook.attempts.append(Attempt(reply.status, payload))
        headers = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
        return web.Response(status=reply.status, text=reply.body, headers=headers)

    async def _read(self, request: web.Request) -> web.Response:
        return web.json_response({"posts": self.posts(request.match_info["hook"])})

    async def start(self) -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/workflows/{hook}", self._workflow)
        app.router.add_get("/_sink/{hook}/posts", self._read)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TeamsSink:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- for the demo ----------------------------------------------------------------------

    def take_new_cards(self, hook: str = "default") -> list[dict[str, Any]]:
        """Cards accepted since the last call (a cursor per hook)."""
        state = self._hooks[hook]
        accepted = [a for a in state.attempts if 200 <= a.status < 300]
        fresh = accepted[state.printed :]
        state.printed = len(accepted)
        return [a["content"] for attempt in fresh for a in attempt.payload["attachments"]]


def describe_card(card: dict[str, Any]) -> str:
    """One line for a card: its coloured banner's label and title (see shared/consumers/teams_cards.py)."""
    banner: dict[str, Any] = next(
        (b for b in card.get("body", []) if b.get("type") == "Container"), {}
    )
    lines = [i.get("text", "") for i in banner.get("items", []) if i.get("type") == "TextBlock"]
    links = [
        a.get("title", "") for a in card.get("actions", []) if a.get("type") == "Action.OpenUrl"
    ]
    suffix = f"  [{' | '.join(links)}]" if links else ""
    # A lost card for compliance names what fails and the fix (teams_cards.compliance_blocks).
    texts = [b.get("text", "") for b in card.get("body", []) if b.get("type") == "TextBlock"]
    fixes = [
        f"\n      {texts[i - 1].strip('*')} {texts[i]}"
        for i in range(1, len(texts))
        if texts[i].startswith("Fix: ")
    ][:1]
    return " ".join(lines) + suffix + "".join(fixes)


def demo_env(sink: TeamsSink, hook: str = "demo") -> dict[str, str]:
    """App settings that point the Teams and remediation consumers at the local stack."""
    return {
        "TEAMS_WEBHOOK_URL": sink.url(hook),
        "TEAMS_FLAP_WINDOW_MINUTES": "60",
        "TEAMS_FLAP_THRESHOLD": "4",
        "TEAMS_MASS_WINDOW_MINUTES": "10",
        "TEAMS_MASS_THRESHOLD": "25",
        "REMEDIATION_MODE": "on",
        "REMEDIATION_MAX_ACTIONS_PER_HOUR": "20",
    }


async def wait_for_cards(
    sink: TeamsSink, count: int, hook: str = "demo", within: float = 30
) -> None:
    """Until `count` cards in total were accepted on `hook` (TimeoutError after `within` s)."""
    deadline = asyncio.get_running_loop().time() + within
    while len(sink.cards(hook)) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"expected {count} Teams cards, got {len(sink.cards(hook))}")
        await asyncio.sleep(0.05)


def print_new_cards(sink: TeamsSink, hook: str = "demo", say: Callable[[str], None] = print) -> int:
    """Print one line per card Teams received since the last call; returns how many."""
    cards = sink.take_new_cards(hook)
    for card in cards:
        say(f"    Teams card: {describe_card(card)}")
    return len(cards)


async def print_remediation(
    runtime: Runtime,
    devices: dict[str, str],
    sim: AsyncSimAdmin,
    say: Callable[[str], None] = print,
) -> None:
    """Each device's remediation decisions (name -> object id), then Graph's syncDevice calls."""
    remediator = await runtime.remediator()
    say("\nRemediation (RemediationLog, newest first)")
    for name, object_id in devices.items():
        for entry in await remediator.history(object_id):
            say(f"  {name}: {entry.outcome.value:<12} {entry.reason}")
    calls = (await sim.sync_device_calls())["calls"]
    names = ", ".join(c.get("deviceName") or c["managedDeviceId"] for c in calls) or "none"
    say(f"  Intune syncDevice calls seen by the Graph simulator: {len(calls)} ({names})")


async def _serve(port: int) -> None:
    async with TeamsSink(port=port) as sink:
        print(f"teams sink listening on {sink.url('{hook}')}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8124)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
