"""A value a long-lived worker keeps and loads again at most once per period (the tenant's Intune
settings, the Conditional Access policies in force): evaluation reads it on every device and must
never wait for, nor fail on, the table it comes from."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from shared import logs

log = logging.getLogger("devicemon.reloaded")
T = TypeVar("T")


class Reloaded(Generic[T]):
    """`load()`'s value, loaded again once `ttl` has passed since the last load. Concurrent
    callers share one load (the Functions host runs many invocations on one loop); a load that
    fails or takes longer than `timeout` keeps the value in hand, or `fallback()` when there is
    none, and is logged as `event`; the next attempt waits another `ttl`."""

    def __init__(
        self,
        load: Callable[[], Awaitable[T]],
        *,
        clock: Callable[[], datetime],
        ttl: timedelta,
        fallback: Callable[[], T],
        event: str,
        timeout: float | None = None,
    ) -> None:
        self._load = load
        self._clock = clock
        self._ttl = ttl
        self._fallback = fallback
        self._event = event
        self._timeout = timeout
        self._value: T | None = None
        self._loaded_at: datetime | None = None
        self._lock = asyncio.Lock()

    @property
    def value(self) -> T | None:
        """What is in hand, without loading (None before the first load)."""
        return self._value

    def _fresh(self, now: datetime) -> bool:
        return self._loaded_at is not None and now - self._loaded_at < self._ttl

    async def get(self) -> T:
        now = self._clock()
        if self._value is not None and self._fresh(now):
            return self._value
        async with self._lock:
            if self._value is None or not self._fresh(now):
                try:
                    async with asyncio.timeout(self._timeout):
                        self._value = await self._load()
                except Exception as exc:  # any storage failure: keep what we have
                    logs.event(log, self._event, level=logging.WARNING, error=str(exc) or repr(exc))
                    self._value = self._value if self._value is not None else self._fallback()
                self._loaded_at = now
        return self._value
