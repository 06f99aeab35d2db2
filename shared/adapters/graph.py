"""Graph adapter: devices and Intune records as Graph's JSON, through the msgraph-sdk's pipeline.

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
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
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
from shared.core.observations import Facts, graph_item, may_have_intune_record
from shared.core.snapshots import SnapshotError
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
    # .compliancePolicy: whether a co-managed device's compliance workload is with Intune
    "configurationManagerClientEnabledFeatures",
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

    async def warm(self) -> None:
        """Acquire a token before the first request needs one (a managed identity's first token
        is a round trip of its own): the request adapter builds, and so authenticates, a request
        that is never sent. The credential keeps the token for the requests that follow."""
        info = self._info(Method.GET, "/devices", None, None)
        await self.client.request_adapter.convert_to_native_async(info)


def error_codes(exc: APIError) -> list[str]:
    """Every error code Graph put in the answer, outermost first.

    Graph nests more specific codes in `innererror`, "recursively", and asks apps to "loop through
    all the error codes available" (microsoft-graph-docs-contrib concepts/errors.md): a delta
    token's `resyncRequired` can sit under a generic top-level code. The SDK maps `innerError`
    to a typed object whose own `code` lands in its additional data, and leaves `innererror`
    (the spelling of errors.md) as plain dicts; both are walked."""
    main = getattr(exc, "error", None)
    codes: list[str] = []
    if main is None:
        return codes
    if getattr(main, "code", None):
        codes.append(str(main.code))
    nested: list[Any] = [getattr(main, "inner_error", None)]
    nested.extend(_inner_of(getattr(main, "additional_data", None)))
    seen = 0
    while nested and seen < 32:  # a bound against a pathological answer
        seen += 1
        inner = nested.pop(0)
        if inner is None:
            continue
        data = inner if isinstance(inner, dict) else getattr(inner, "additional_data", None)
        if isinstance(data, dict) and isinstance(data.get("code"), str) and data["code"]:
            codes.append(data["code"])
        nested.extend(_inner_of(data))
    return codes


def _inner_of(data: Any) -> list[Any]:
    if not isinstance(data, dict):
        return []
    return [data[key] for key in ("innererror", "innerError") if isinstance(data.get(key), dict)]


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


# Graph answers 404 for an object that exists when a read lands on a replica that has not seen
# its creation yet, and asks for a retry with back-off (FACTS.md, "404 right after an object is
# created"). A 404 is taken as "deleted" only once it held through these tries (~3 s), or at once
# when the notification itself said the device was deleted.
GONE_CONFIRMATION = RetryPolicy(attempts=3, base_delay=1.0, max_delay=4.0)


class GraphDevices:
    """Reads a device's facts and its Intune records, as Graph's JSON (observations.Facts)."""

    def __init__(
        self,
        graph: GraphJson,
        *,
        intune_enabled: bool,
        gone_confirmation: RetryPolicy = GONE_CONFIRMATION,
    ) -> None:
        self._graph = graph
        self.intune_enabled = intune_enabled
        self._gone = gone_confirmation
        self.device_properties: tuple[str, ...] = tuple(DEVICE_SELECT)

    async def read(
        self,
        object_id: str,
        at: datetime,
        known: Mapping[str, Any] | None = None,
        *,
        gone_expected: bool = False,
    ) -> Facts:
        """The device and, when Intune may be its MDM, its Intune records, read at `at` (`managed`
        None: Intune was not asked). When the stored facts say which device id to look for and
        that Intune may hold it, both are read in parallel: one round trip instead of two."""
        known_id = str(known.get("deviceId") or "") if known else ""
        if known is not None and known_id and self._wants_intune(known):
            device, records = await asyncio.gather(
                self._device(object_id, gone_expected), self._records(known_id)
            )
            if device is None:
                return _gone(object_id, at)
            if device.get("deviceId") == known_id and self._wants_intune(device):
                return Facts(at, device, records, at)
        else:
            device = await self._device(object_id, gone_expected)
            if device is None:
                return _gone(object_id, at)
        if not self._wants_intune(device) or not device.get("deviceId"):
            return Facts(at, device)
        return Facts(at, device, await self._records(str(device["deviceId"])), at)

    async def managed_for(self, device: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...] | None:
        """The device's Intune records; () without a request when Intune cannot be its MDM
        (observations.may_have_intune_record) or it has no device id; None with Intune off."""
        if not self.intune_enabled:
            return None
        device_id = device.get("deviceId")
        if not self._wants_intune(device) or not isinstance(device_id, str) or not device_id:
            return ()
        return await self._records(device_id)

    def _wants_intune(self, device: Mapping[str, Any]) -> bool:
        return self.intune_enabled and may_have_intune_record(device)

    async def _device(self, object_id: str, gone_expected: bool) -> dict[str, Any] | None:
        """The device's JSON, or None once Graph's 404 is confirmed."""
        attempt = 0
        while True:
            attempt += 1
            try:
                data = await self._graph.get(
                    f"/devices/{quote(object_id, safe='')}?$select={_DEVICE_SELECT}"
                )
            except APIError as exc:
                if exc.response_status_code != 404:
                    raise
                if gone_expected or attempt >= self._gone.attempts:
                    return None
                await asyncio.sleep(self._gone.delay(attempt, Transient()))
                continue
            if not isinstance(data, dict):
                raise SnapshotError("a device must be a JSON object")
            return graph_item(data)

    async def _records(self, device_id: str) -> tuple[Mapping[str, Any], ...]:
        # azureADDeviceId is a GUID; quotes are the only thing an OData literal must escape.
        literal = device_id.replace("'", "''")
        query = urlencode(
            {"$filter": f"azureADDeviceId eq '{literal}'", "$select": _MANAGED_SELECT},
            quote_via=quote,
        )
        page = await self._graph.get(f"/deviceManagement/managedDevices?{query}")
        return tuple(
            graph_item(item) for item in (page or {}).get("value", []) if isinstance(item, dict)
        )


def _gone(object_id: str, at: datetime) -> Facts:
    return Facts(at, {"id": object_id, "@removed": {}}, (), at)


async def managed_device_pages(graph: GraphJson) -> AsyncIterator[list[dict[str, Any]]]:
    """Every Intune managed device, page by page: one paged list (`$select` of what evaluation
    reads) instead of one request per device. No `$top`: Intune's own page size is used (1,000
    managed devices), and its `@odata.nextLink` is followed as given (concepts/paging.md: APIs
    differ in page sizes, the next link is opaque)."""
    url: str | None = f"/deviceManagement/managedDevices?$select={_MANAGED_SELECT}"
    while url:
        page = await graph.get(url) or {}
        yield [item for item in page.get("value", []) if isinstance(item, dict)]
        link = page.get("@odata.nextLink")
        url = link if isinstance(link, str) and link else None
