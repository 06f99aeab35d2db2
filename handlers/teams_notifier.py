"""Service Bus trigger on `device-alerts` / subscription `teams`: post the alert to Teams (lost,
restored, at_risk and at_risk_cleared cards, or a mass-event summary; docs/teams.md).

Returning completes the message; raising abandons it. A permanent rejection by Teams raises
`TeamsRejected` on every delivery (the reason is logged each time and stored with the delivery in
TeamsNoise), so Service Bus dead-letters the message after the subscription's max delivery count;
docs/teams.md explains why the reason cannot ride on the dead-letter itself. An unset or unusable
TEAMS_WEBHOOK_URL completes the message with a configuration warning instead of a crash loop.
"""

from __future__ import annotations

import logging

import azure.functions as func

from handlers.messages import counts_failures, log_poison
from shared import logs
from shared.consumers.teams import Result, TeamsNotConfigured, check_url
from shared.core.alert_view import AlertFormatError, parse_alert
from shared.runtime import Runtime, current

log = logging.getLogger("devicemon.teams")


@counts_failures("teams")
async def handle(msg: func.ServiceBusMessage, runtime: Runtime | None = None) -> Result | None:
    rt = runtime or current()
    try:
        check_url(rt.settings.teams_webhook_url)
    except TeamsNotConfigured as exc:
        logs.event(
            log,
            "teams_not_configured",
            level=logging.WARNING,
            message_id=msg.message_id,
            detail=str(exc),
        )
        return None
    try:
        alert = parse_alert(msg.get_body())
    except AlertFormatError as exc:
        log_poison(log, msg, str(exc))
        raise
    notifier = await rt.teams_notifier()
    return await notifier.handle(alert, msg.delivery_count or 0)
