"""Point the real msgraph-sdk at graphsim: a fake credential and a client factory.

Importing this module imports msgraph (slow, ~2-3 s cold); the simulator itself never does.
"""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory
from msgraph_core.middleware.options import GraphTelemetryHandlerOption

GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
DUMMY_TOKEN = "graphsim-token"  # graphsim checks only that a bearer token is present


class FakeCredential:
    """A TokenCredential that hands out a dummy bearer token (graphsim ignores its value)."""

    def __init__(self, token: str = DUMMY_TOKEN) -> None:
        self.token = token
        self.calls = 0

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.calls += 1
        return AccessToken(self.token, int(time.time()) + 3600)


def make_graph_client(
    graph_url: str,
    *,
    max_retries: int = RetryHandlerOption.DEFAULT_MAX_RETRIES,
    retry_delay: float = RetryHandlerOption.DEFAULT_DELAY,
    credential: Any = None,
) -> GraphServiceClient:
    """A GraphServiceClient with the SDK's default middleware, aimed at `graph_url`.

    retry_delay is the retry handler's base delay added to every back-off; a Retry-After
    header (whole seconds) replaces the back-off. Use retry_delay=0 in tests.
    """
    options = {
        RetryHandlerOption.get_key(): RetryHandlerOption(
            delay=retry_delay, max_retries=max_retries
        ),
        GraphTelemetryHandlerOption.get_key(): GraphTelemetryHandlerOption(),
    }
    http_client = GraphClientFactory.create_with_default_middleware(options=options)  # type: ignore[arg-type]
    auth = AzureIdentityAuthenticationProvider(credential or FakeCredential(), scopes=GRAPH_SCOPES)
    adapter = GraphRequestAdapter(auth, client=http_client)
    client = GraphServiceClient(request_adapter=adapter)
    client.request_adapter.base_url = graph_url
    return client
