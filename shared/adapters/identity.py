"""Credentials: managed identity in Azure (DefaultAzureCredential), a static token for the local
Graph simulator. One credential per process and flavour, shared by every client."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from azure.core.credentials import AccessToken

from shared.settings import Settings


@cache
def _default_credential(client_id: str | None, aio: bool) -> Any:
    if aio:
        from azure.identity.aio import DefaultAzureCredential as AioCredential

        return AioCredential(managed_identity_client_id=client_id)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id)


def credential(settings: Settings, *, aio: bool) -> Any:
    """The identity-based credential; AZURE_CLIENT_ID selects a user-assigned managed identity."""
    return _default_credential(settings.managed_identity_client_id, aio)


class SimulatorCredential:
    """An async TokenCredential for the local Graph simulator, which checks no signatures.

    Never used against Azure: settings only select it with GRAPH_CREDENTIAL=simulator.
    """

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken("simulator-token", int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> SimulatorCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
