"""A small FunctionApp exercising every trigger kind the dev host runs (used by test_devhost.py).

Functions record what they received in `recorder` so tests can assert on it. Entity names
come from app settings (%DEVHOST_TEST_QUEUE% ...) so each test run can use fresh entities.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import defaultdict
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

CONNECTION = "DevhostTestServiceBus"
SESSION_WORK_SECONDS = 0.1
SLOW_SECONDS = 0.3


class Recorder:
    """Thread-safe record of invocations (sync functions run on worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: defaultdict[str, list[Any]] = defaultdict(list)
        self._active: defaultdict[str, int] = defaultdict(int)
        self.max_parallel_sessions = 0
        self.session_overlaps: list[str] = []
        self.running = 0
        self.max_running = 0

    def start_work(self) -> None:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)

    def end_work(self) -> None:
        with self._lock:
            self.running -= 1

    def add(self, name: str, item: Any) -> None:
        with self._lock:
            self._calls[name].append(item)

    def get(self, name: str) -> list[Any]:
        with self._lock:
            return list(self._calls[name])

    def enter_session(self, session_id: str) -> None:
        with self._lock:
            if self._active[session_id]:
                self.session_overlaps.append(session_id)
            self._active[session_id] += 1
            busy = sum(1 for count in self._active.values() if count)
            self.max_parallel_sessions = max(self.max_parallel_sessions, busy)

    def leave_session(self, session_id: str) -> None:
        with self._lock:
            self._active[session_id] -= 1

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._active.clear()
            self.max_parallel_sessions = 0
            self.session_overlaps.clear()
            self.running = 0
            self.max_running = 0


recorder = Recorder()


# -- HTTP ------------------------------------------------------------------------------


@app.route(route="devices/{id:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def get_device(req: func.HttpRequest) -> func.HttpResponse:
    payload = {
        "id": req.route_params["id"],
        "method": req.method,
        "url": req.url,
        "params": dict(req.params),
        "x_test": req.headers.get("x-test"),
        "is_request": isinstance(req, func.HttpRequest),
    }
    return func.HttpResponse(
        json.dumps(payload), mimetype="application/json", headers={"x-served-by": "get_device"}
    )


@app.route(route="echo", methods=["POST", "PUT"])  # app default: function-level auth
def echo(req: func.HttpRequest) -> func.HttpResponse:
    recorder.add("echo_thread", threading.current_thread().name)
    return func.HttpResponse(
        req.get_body(),
        status_code=201,
        mimetype=req.headers.get("content-type", "application/octet-stream"),
        headers={"x-method": req.method, "x-len": str(len(req.get_body()))},
    )


@app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> str:
    return "admin ok"


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("internal detail that must not leak")


@app.route(route="files/{*path}", auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("path", ""))


@app.route(route="cookies", auth_level=func.AuthLevel.ANONYMOUS)
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse("hi")
    response.headers.add_header("Set-Cookie", "a=1")
    response.headers.add_header("Set-Cookie", "b=2")
    return response


@app.route(route="nothing", auth_level=func.AuthLevel.ANONYMOUS)
def nothing(req: func.HttpRequest):  # type: ignore[no-untyped-def]  # `-> None` fails indexing
    return None  # the worker cannot encode None for the HTTP output: a failed invocation


@app.route(route="slow", auth_level=func.AuthLevel.ANONYMOUS)
async def slow(req: func.HttpRequest) -> func.HttpResponse:
    recorder.add("slow_started", True)
    await asyncio.sleep(SLOW_SECONDS)
    return func.HttpResponse("finished")


# Never finish on their own: host.json functionTimeout ends them (test_devhost.py). The sync one
# waits for the test to release its thread, which a timeout cannot stop.
hang_release = threading.Event()


@app.route(route="hang-async", auth_level=func.AuthLevel.ANONYMOUS)
async def hang_async(req: func.HttpRequest) -> func.HttpResponse:
    recorder.add("hang_async", "started")
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        recorder.add("hang_async", "cancelled")
        raise
    return func.HttpResponse("never")


@app.route(route="hang-sync", auth_level=func.AuthLevel.ANONYMOUS)
def hang_sync(req: func.HttpRequest) -> func.HttpResponse:
    recorder.add("hang_sync", "started")
    released = hang_release.wait(timeout=60)
    recorder.add("hang_sync", "released" if released else "gave up")
    return func.HttpResponse("late")


@app.route(route="context", auth_level=func.AuthLevel.ANONYMOUS)
async def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(f"{context.function_name} {context.invocation_id}")


# -- Service Bus -----------------------------------------------------------------------


def _describe(msg: func.ServiceBusMessage) -> dict[str, Any]:
    return {
        "body": msg.get_body().decode(),
        "message_id": msg.message_id,
        "session_id": msg.session_id,
        "correlation_id": msg.correlation_id,
        "content_type": msg.content_type,
        "subject": msg.subject,
        "label": msg.label,
        "delivery_count": msg.delivery_count,
        "sequence_number": msg.sequence_number,
        "enqueued_time_utc": msg.enqueued_time_utc,
        "application_properties": msg.application_properties,
        "user_properties": msg.user_properties,
        "lock_token": msg.lock_token,
        "metadata_message_id": (msg.metadata or {}).get("MessageId"),
        "type": type(msg).__name__,
    }


@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="%DEVHOST_TEST_QUEUE%", connection=CONNECTION
)
async def on_queue(msg: func.ServiceBusMessage) -> None:
    recorder.add("on_queue", _describe(msg))
    body = msg.get_body()
    if body == b"poison":
        raise ValueError("poison message")
    if body.startswith(b"slow"):
        recorder.start_work()
        try:
            await asyncio.sleep(SLOW_SECONDS)
        finally:
            recorder.end_work()


@app.service_bus_queue_trigger(
    arg_name="msg",
    queue_name="%DEVHOST_TEST_SESSION_QUEUE%",
    connection=CONNECTION,
    is_sessions_enabled=True,
)
async def on_session(msg: func.ServiceBusMessage) -> None:
    session_id = msg.session_id or ""
    recorder.enter_session(session_id)
    try:
        # Long enough that a second message of the same session would overlap if the host
        # ever ran them concurrently, and that different sessions visibly run in parallel.
        await asyncio.sleep(SESSION_WORK_SECONDS)
        recorder.add("on_session", (session_id, msg.get_body().decode()))
    finally:
        recorder.leave_session(session_id)


@app.service_bus_topic_trigger(
    arg_name="alert",
    topic_name="%DEVHOST_TEST_TOPIC%",
    subscription_name="teams",
    connection=CONNECTION,
)
def on_alert(alert: func.ServiceBusMessage) -> None:  # sync: runs on the thread pool
    recorder.add("on_alert", _describe(alert))


# -- Timer -----------------------------------------------------------------------------


@app.timer_trigger(schedule="* * * * * *", arg_name="timer", run_on_startup=False)
def every_second(timer: func.TimerRequest) -> None:
    recorder.add(
        "every_second",
        {
            "type": type(timer).__name__,
            "past_due": timer.past_due,
            # Declared on azure.functions.timer.TimerRequest (what the worker passes), not the ABC.
            "status": getattr(timer, "schedule_status", None),
        },
    )
