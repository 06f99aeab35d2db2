"""Service Bus trigger on `device-alerts` / subscription `remediation`: opt-in remediation.

Every alert gets a recorded decision in RemediationLog (acted, dry run, skipped and why); with
REMEDIATION_MODE=on a lost alert for NOT_COMPLIANT / COMPLIANCE_UNKNOWN, or an at_risk alert for
GRACE_PERIOD_ENDING / CHECKIN_OVERDUE whose last check-in is old, on a device whose compliance
Intune evaluates (Intune managed, or co-managed with the compliance workload on Intune) triggers
Intune syncDevice, at most once per alert (docs/remediation.md). Raising abandons
the message (a transient Graph failure: the redelivery retries the same decision).
"""

from __future__ import annotations

import logging

import azure.functions as func

from handlers.messages import counts_failures, log_poison
from shared.consumers.remediation_log import LogEntry
from shared.core.alert_view import AlertFormatError, parse_alert
from shared.runtime import Runtime, current

log = logging.getLogger("devicemon.remediation")


@counts_failures("remediation")
async def handle(msg: func.ServiceBusMessage, runtime: Runtime | None = None) -> LogEntry:
    try:
        alert = parse_alert(msg.get_body())
    except AlertFormatError as exc:
        log_poison(log, msg, str(exc))
        raise
    remediator = await (runtime or current()).remediator()
    return await remediator.handle(alert, msg.delivery_count or 0)
