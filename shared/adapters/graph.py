"""Graph adapter: read one device and its Intune record through the msgraph-sdk's pipeline.

The SDK builds the requests and runs its middleware (auth, telemetry, redirects); the JSON is
parsed by shared.core.snapshots rather than into the SDK's typed models, which cost ~6 ms of CPU per
device and import ~1,200 model modules on first use (msgraph-sdk-python#584): at fleet scale that
is the difference between CPU-bound and latency-bound. Imports msgraph: only the processor, the
sync and the CLI load this module, never the webhook.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as sdk_default_options
from msgraph_core import GraphClientFactory

from shared.adapters.identity import SimulatorCredential, credential
from shared.core.models import DeviceSnapshot, ManagedDeviceSnapshot
from shared.core.snapshots import device_from_json, managed_device_from_json
from shared.retry import RetryPolicy, Transient, retrying
from shared.settings import Settings

log = logging.getLogger("devicemon.graph")
GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
DEVICE_SELECT = [
    "id",
    "deviceId",
    "displayName",
    "accountEnabled",
    "isCompliant",
    "isManaged",
    "trustType",
    "operatingSystem",
    "operatingSystemVersion",
    "approximateLastSignInDateTime",
    "registrationDateTime",
    "mdmAppId",
    "profileType",  # with alternativeSecurityIds: a hybrid join that is still pending
    "alternativeSecurityIds",
    "deviceOwnership",  # Company/Personal, as Intune set it (not implied by the join type)
    "onPremisesSyncEnabled",  # synced from on-premises AD: disabled/enabled there, not in Entra
]
MANAGED_SELECT = [
    "id",
    "azureADDeviceId",
    "complianceState",
    "managementAgent",
    "complianceGracePeriodExpirationDateTime",
    "lastSyncDateTime",
    "userPrincipalName",
]
_DEVICE_SELECT = ",".join(DEVICE_SELECT)
_MANAGED_SELECT = ",".join(MANAGED_SELECT)
_RETRYABLE_STATUS = {429, 500, 502, 503, 504}
_ERRORS: dict[str, Any] = {"XXX": ODataError}


def make_client(settings: Settings) -> GraphServiceClient:
    """A Graph client whose own retry handler is off: shared.retry is the one retry mechanism."""
    cred: Any = (
        SimulatorCredential()
        if settings.graph_credential == "simulator"
        else credential(settings, aio=True)
    )
    auth = AzureIdentityAuthenticationProvider(cred, scopes=GRAPH_SCOPES)
    options = dict(sdk_default_options)
    options[RetryHandlerOption.get_key()] = RetryHandlerOption(
        delay=0, max_retries=0, should_retry=False
    )
    http = GraphClientFactory.create_with_default_middleware(options=options)
    http.timeout = httpx.Timeout(30.0)
    client = GraphServiceClient(request_adapter=GraphRequestAdapter(auth, client=http))
    client.request_adapter.base_url = settings.graph_base_url
    return client


def classify_graph_error(exc: BaseException) -> Transient | None:
    if isinstance(exc, APIError):
        status = exc.response_status_code or 0
        if status not in _RETRYABLE_STATUS:
            return None
        return Transient(retry_after=_retry_after(exc.response_headers))
    if isinstance(exc, httpx.TransportError):
        return Transient()
    return None


def _retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (kiota hands headers over as a dict of str or sets)."""
    for key, value in dict(headers or {}).items():
        if str(key).lower() != "retry-after":
            continue
        raw = next(iter(value), "") if isinstance(value, list | tuple | set) else value
        try:
            return max(0.0, float(str(raw)))
        except ValueError:
            return None  # an HTTP-date: rare from Graph; fall back to our own back-off
    return None


class GraphJson:
    """JSON over the SDK's request adapter: its auth and middleware, our retries and parsing.

    URLs are built here rather than by the request builders: kiota expands its URI templates
    character by character (~3 ms of CPU per request), the busiest code in the processor at
    fleet scale. Absolute URLs (delta and next links) are used as Graph returned them.
    """

    def __init__(self, client: GraphServiceClient, retry: RetryPolicy) -> None:
        self.client = client
        self._retry = retry

    def _info(
        self, method: Method, path_or_url: str, body: Any, headers: dict[str, str] | None
    ) -> RequestInformation:
        info = RequestInformation(method)
        for name, value in (headers or {}).items():
            info.headers.try_add(name, value)
        absolute = path_or_url.startswith(("http://", "https://"))
        info.url = (
            path_or_url if absolute else f"{self.client.request_adapter.base_url}{path_or_url}"
        )
        info.headers.try_add("Accept", "application/json")
        if body is not None:
            info.headers.try_add("Content-Type", "application/json")
            info.content = json.dumps(body).encode()
        return info

    async def request(
        self,
        method: Method,
        path_or_url: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The parsed JSON answer (None for an empty one); APIError for an error status.

        Retried on throttling and server errors; a POST only on 429, when Graph has not acted.
        """
        info = self._info(method, path_or_url, body, headers)

        async def call() -> Any:
            raw = await self.client.request_adapter.send_primitive_async(info, "bytes", _ERRORS)  # type: ignore[func-returns-value]
            return json.loads(raw) if raw else None

        def classify(exc: BaseException) -> Transient | None:
            hint = classify_graph_error(exc)
            if (
                method is Method.POST
                and isinstance(exc, APIError)
                and exc.response_status_code != 429
            ):
                return None
            return hint

        return await retrying(call, classify, self._retry)

    async def get(self, path_or_url: str, headers: dict[str, str] | None = None) -> Any:
        return await self.request(Method.GET, path_or_url, headers=headers)


def error_code(exc: APIError) -> str:
    """Graph's error code (e.g. syncStateNotFound), or '' when the body had none."""
    main = getattr(exc, "error", None)
    return str(getattr(main, "code", "") or "")


def error_text(exc: BaseException) -> str:
    """Graph's own words for an error, for records and logs (never contains credentials)."""
    if isinstance(exc, APIError):
        main = getattr(exc, "error", None)
        message = getattr(main, "message", None) or exc.message or ""
        return f"HTTP {exc.response_status_code} {error_code(exc)}: {message}".strip()
    return f"{type(exc).__name__}: {exc}"


class GraphDevices:
    """Reads the current truth about a device. A 404 from Graph means deleted."""

    def __init__(self, graph: GraphJson, *, intune_enabled: bool) -> None:
        self._graph = graph
        self._intune_enabled = intune_enabled

    async def read(
        self, object_id: str, known_device_id: str | None = None
    ) -> tuple[DeviceSnapshot, ManagedDeviceSnapshot | None]:
        """The device and its Intune record. When the device id is already known (from our own
        state) both are read in parallel: one round trip instead of two."""
        if self._intune_enabled and known_device_id:
            device, managed = await asyncio.gather(
                self._device(object_id), self._managed(known_device_id)
            )
            if device.deleted:
                return device, None
            if device.device_id == known_device_id:
                return device, managed
        else:
            device = await self._device(object_id)
        if device.deleted or not self._intune_enabled or not device.device_id:
            return device, None
        return device, await self._managed(device.device_id)

    async def _device(self, object_id: str) -> DeviceSnapshot:
        try:
            data = await self._graph.get(
                f"/devices/{quote(object_id, safe='')}?$select={_DEVICE_SELECT}"
            )
        except APIError as exc:
            if exc.response_status_code == 404:
                return DeviceSnapshot(object_id=object_id, deleted=True)
            raise
        return device_from_json(data)

    async def _managed(self, device_id: str) -> ManagedDeviceSnapshot | None:
        # azureADDeviceId is a GUID; quotes are the only thing an OData literal must escape.
        literal = device_id.replace("'", "''")
        query = urlencode(
            {"$filter": f"azureADDeviceId eq '{literal}'", "$select": _MANAGED_SELECT},
            quote_via=quote,
        )
        page = await self._graph.get(f"/deviceManagement/managedDevices?{query}")
        records = [managed_device_from_json(item) for item in (page or {}).get("value", [])]
        if not records:
            return None
        # A re-enrolled device can leave an older record behind: the latest check-in is current.
        return max(records, key=lambda m: m.last_sync.isoformat() if m.last_sync else "")
