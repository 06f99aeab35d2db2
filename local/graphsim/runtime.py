"""The simulator object: tenants by URL prefix, each with its state and services."""

from __future__ import annotations

import zlib

import aiohttp

from .delta import DeltaEngine
from .faults import FaultInjector
from .state import TenantState
from .subscriptions import SubscriptionService


class TenantRuntime:
    """Everything one tenant owns; dropped as a whole."""

    def __init__(self, name: str, sim: Simulator) -> None:
        self.state = TenantState(name)
        # Seeded from the name so fractional faults replay identically run after run.
        self.faults = FaultInjector(seed=zlib.crc32(name.encode()))
        self.subscriptions = SubscriptionService(self.state, sim.session)
        self.delta = DeltaEngine(self.state)

    async def close(self) -> None:
        await self.subscriptions.hub.close()


class Simulator:
    def __init__(self) -> None:
        self.tenants: dict[str, TenantRuntime] = {}
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """One outbound HTTP session for handshakes and notifications (created lazily on
        the server's event loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256),
                headers={"User-Agent": "graphsim-notifications/1.0"},
            )
        return self._session

    def get(self, name: str) -> TenantRuntime | None:
        return self.tenants.get(name)

    def ensure(self, name: str) -> TenantRuntime:
        runtime = self.tenants.get(name)
        if runtime is None:
            runtime = TenantRuntime(name, self)
            self.tenants[name] = runtime
        return runtime

    async def drop(self, name: str) -> bool:
        runtime = self.tenants.pop(name, None)
        if runtime is None:
            return False
        await runtime.close()
        return True

    async def close(self) -> None:
        for name in list(self.tenants):
            await self.drop(name)
        if self._session is not None:
            await self._session.close()
