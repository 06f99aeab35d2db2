"""Read one managed device's failing compliance policies and settings from Intune, bounded.

One GET of `deviceManagement/managedDevices/{id}/deviceCompliancePolicyStates` answers the policy
states with their settingStates inline (the documented shape); a failing policy that comes without
them costs one more GET of `.../deviceCompliancePolicyStates/{stateId}/settingStates`. Typical cost
per alert: 1 request; docs/compliance-details.md compares it with Intune's report exports.

Never raises for Graph's sake: a missing permission, a vanished device, throttling, an outage or
a slow answer come back as details that are `unavailable`, with the reason, so the alert that
asked can still be sent. Goes through the same GraphJson (SDK pipeline, shared retries) as every
other Graph read.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import httpx
from kiota_abstractions.api_error import APIError

from shared.adapters.graph import GraphJson, error_text
from shared.core.compliance_details import (
    GRAPH_ERROR,
    INVALID_RESPONSE,
    NOT_FOUND,
    PERMISSION_MISSING,
    THROTTLED,
    TIMEOUT,
    ComplianceDetails,
    parse_policy_states,
    policies_needing_setting_states,
    unavailable,
)
from shared.retry import RetriesExhausted

log = logging.getLogger("devicemon.compliance")
# Least privilege for these reads (docs/compliance-details.md): the deviceconfig workload serves
# them, and its reads are documented with DeviceManagementConfiguration.Read.All.
PERMISSION = "DeviceManagementConfiguration.Read.All"
DEFAULT_TIMEOUT = 20.0  # seconds for the whole read, retries included
MAX_PAGES = (
    5  # a device has a handful of policies; more pages than this is not worth an alert's wait
)
MAX_SETTING_READS = 10  # failing policies whose settings are read one by one, at most


def _path(managed_device_id: str) -> str:
    return (
        f"/deviceManagement/managedDevices/{quote(managed_device_id, safe='')}"
        "/deviceCompliancePolicyStates"
    )


async def _policy_states(graph: GraphJson, managed_device_id: str) -> Any:
    """The list answer, its pages joined; a non-list answer is returned as it came."""
    page = await graph.get(_path(managed_device_id))
    if not isinstance(page, dict) or not isinstance(page.get("value"), list):
        return page
    items = list(page["value"])
    pages = 1
    while (link := page.get("@odata.nextLink")) and pages < MAX_PAGES:
        page = await graph.get(str(link))
        pages += 1
        if not isinstance(page, dict) or not isinstance(page.get("value"), list):
            return page
        items.extend(page["value"])
    if page.get("@odata.nextLink"):
        log.warning("compliance policy states of %s cut at %d pages", managed_device_id, pages)
    return {"value": items}


async def _read(graph: GraphJson, managed_device_id: str) -> ComplianceDetails:
    body = await _policy_states(graph, managed_device_id)
    missing = policies_needing_setting_states(body)[:MAX_SETTING_READS]
    answers = await asyncio.gather(
        *(
            graph.get(f"{_path(managed_device_id)}/{quote(policy_id, safe='')}/settingStates")
            for policy_id in missing
        )
    )
    return parse_policy_states(body, dict(zip(missing, answers, strict=True)))


def _from_status(status: int, text: str) -> ComplianceDetails:
    if status == 403:
        return unavailable(
            PERMISSION_MISSING, f"Intune refused the read ({text}); grant {PERMISSION}."
        )
    if status == 404:
        return unavailable(NOT_FOUND, f"Intune no longer knows the managed device ({text}).")
    if status == 429:
        return unavailable(THROTTLED, f"Intune throttled the read ({text}).")
    return unavailable(GRAPH_ERROR, text)


async def read_compliance_details(
    graph: GraphJson, managed_device_id: str, *, within: float = DEFAULT_TIMEOUT
) -> ComplianceDetails:
    """The failing policies and settings of one Intune managed device (its Intune id, not the
    Entra device id), or details that say why they could not be read."""
    try:
        async with asyncio.timeout(within):
            return await _read(graph, managed_device_id)
    except TimeoutError:
        return unavailable(TIMEOUT, f"Intune did not answer within {within:g} s.")
    except RetriesExhausted as exc:
        cause = exc.__cause__
        if isinstance(cause, APIError):
            return _from_status(cause.response_status_code or 0, error_text(cause))
        return unavailable(GRAPH_ERROR, f"Intune could not be reached: {exc}")
    except APIError as exc:
        return _from_status(exc.response_status_code or 0, error_text(exc))
    except (httpx.HTTPError, ValueError) as exc:
        # ValueError: a body that is not JSON (json.JSONDecodeError is one).
        reason = INVALID_RESPONSE if isinstance(exc, ValueError) else GRAPH_ERROR
        return unavailable(reason, error_text(exc))
