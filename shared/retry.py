"""Retries with capped exponential back-off that honour Retry-After.

One mechanism for every transient failure we retry in-process (Graph 429/5xx, network errors).
`set_testing(True)` (or DEVICEMON_RETRY_TESTING=1 for subprocesses) keeps the attempts but turns
every delay into zero, so tests exercise the retry paths without sleeping.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
_testing = os.environ.get("DEVICEMON_RETRY_TESTING", "") == "1"


def set_testing(on: bool) -> None:
    global _testing
    _testing = on


class RetriesExhausted(Exception):
    """A transient failure outlived its retries; the caller decides (e.g. abandon the message)."""


@dataclass(frozen=True, slots=True)
class Transient:
    """A retryable failure; retry_after is the server's hint in seconds, if it gave one."""

    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    # A server asking for more than this is not worth holding a message lock for: give up and
    # let the queue redeliver later.
    max_retry_after: float = 30.0

    def delay(self, attempt: int, hint: Transient) -> float:
        if _testing:
            return 0.0
        if hint.retry_after is not None:
            return hint.retry_after
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return backoff * (0.5 + random.random() / 2)  # jitter spreads a throttled fleet's retries


async def retrying(
    call: Callable[[], Awaitable[T]],
    classify: Callable[[BaseException], Transient | None],
    policy: RetryPolicy,
) -> T:
    """Run `call`; on a failure `classify` calls transient, wait and try again."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except Exception as exc:
            hint = classify(exc)
            if hint is None:
                raise
            if attempt >= policy.attempts:
                raise RetriesExhausted(f"gave up after {attempt} attempts: {exc}") from exc
            if hint.retry_after is not None and hint.retry_after > policy.max_retry_after:
                raise RetriesExhausted(
                    f"server asked to wait {hint.retry_after:.0f}s, more than we hold a lock: {exc}"
                ) from exc
            await asyncio.sleep(policy.delay(attempt, hint))


# Across deliveries: a device change that failed for a reason that may pass (Graph or storage
# down, throttled past what a lock is worth) is scheduled again later instead of being abandoned,
# which Service Bus would redeliver at once and dead-letter after ten quick failures.
# 10 s, 20 s, 40 s, 80 s, 160 s, then every 5 minutes: about 40 minutes over 12 attempts.
MAX_REDELIVERIES = 12


def redelivery_delay(attempt: int) -> float:
    """Seconds before the `attempt`-th rescheduled try (1-based); 0 under the testing switch."""
    if _testing:
        return 0.0
    return float(min(300, 10 * 2 ** (attempt - 1)))
