"""Each tenant's clock: real time plus an offset the tests move forward.

Graph measures a delta token's age (7 days for directory objects) and a subscription's
expiry on its own clock; tests cannot wait a week, so they advance this one
(`POST /_sim/{tenant}/clock/advance`). Everything the simulator decides by time for a tenant
reads `TenantClock.now()`, never the wall clock directly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .entities import EntityError
from .odata import now_utc


class TenantClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return now_utc() + self.offset

    def advance(self, seconds: float) -> datetime:
        """Move forward (never back: Graph's clock does not run backwards)."""
        if seconds < 0:
            raise EntityError("the clock only moves forward (seconds must be >= 0)")
        self.offset += timedelta(seconds=seconds)
        return self.now()

    def to_json(self) -> dict[str, object]:
        return {"now": self.now().isoformat(), "offsetSeconds": self.offset.total_seconds()}
