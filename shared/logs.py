"""Structured log events: one line per decision, readable in a terminal and queryable in
Application Insights (the fields travel as log record attributes, i.e. customDimensions).

Never pass secrets, tokens, clientState or whole payloads as fields.
"""

from __future__ import annotations

import logging
from typing import Any

# Third-party loggers and the level they are held at. The Python worker forwards every record at
# INFO or above to Application Insights, and these write at INFO what must not go there:
# - httpx: 'HTTP Request: POST <url> "HTTP/1.1 202 Accepted"' for every request, the URL whole:
#   for the Teams Workflows URL that includes its `sig`, a secret (the Graph SDK uses httpx too);
# - azure: the SDK's HTTP logging policy writes every request's URL and headers, and the Service
#   Bus SDK narrates each link and connection state change;
# - httpcore, uamqp: transport detail below those two.
# The HTTP logging policy's own logger is named as well: its header dumps were most of what reached
# Application Insights, and an explicit level holds even if something lowers `azure` later.
# Their warnings and errors still get through.
QUIET_LOGGERS: dict[str, int] = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "azure": logging.WARNING,
    "azure.core.pipeline.policies.http_logging_policy": logging.WARNING,
    "uamqp": logging.WARNING,
}


def quiet_sdk_loggers() -> None:
    """Raise the loggers in QUIET_LOGGERS to their level (never lower one set higher)."""
    for name, level in QUIET_LOGGERS.items():
        logger = logging.getLogger(name)
        if logger.level < level:
            logger.setLevel(level)


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `name` with key=value fields; None values are left out."""
    if not logger.isEnabledFor(level):
        return  # formatting is most of a log call's cost: skip it when nobody listens
    present = {k: v for k, v in fields.items() if v is not None}
    text = " ".join(f"{k}={_fmt(v)}" for k, v in present.items())
    # Flat, primitive attributes: OpenTelemetry exports them as log attributes, which Application
    # Insights shows as customDimensions["devicemon.<field>"] (docs/operations.md has queries).
    extra: dict[str, Any] = {"devicemon.event": name}
    for key, value in present.items():
        primitive = isinstance(value, str | int | float | bool)
        extra[f"devicemon.{key}"] = value if primitive else _fmt(value)
    logger.log(level, "%s %s", name, text, extra=extra)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items()) or "-"
    return str(value)
