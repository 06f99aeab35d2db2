"""App settings, local.settings.json and host.json, read the way the Functions host reads them."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("devhost")

# The host resolves every %NAME% inside a binding expression, not only whole-value ones,
# so "alerts-%ENV%" is legal in a queue name.
_SETTING_EXPR = re.compile(r"%([^%]+)%")

# .NET TimeSpan text: [-][d.]hh:mm[:ss[.fffffff]]
_TIMESPAN = re.compile(
    r"^\s*(?P<neg>-)?(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2})"
    r"(?::(?P<s>\d{1,2})(?:\.(?P<frac>\d{1,7}))?)?\s*$"
)


class SettingError(ValueError):
    """A binding expression names an app setting that is not defined."""


def resolve_setting_expression(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace each %NAME% in a binding property with the app setting NAME.

    The host refuses to index a function whose expression names an undefined setting,
    so an undefined one is an error here too rather than a silent empty string.
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise SettingError(f"'%{name}%' does not resolve to a value (app setting {name} unset)")
        return env[name]

    return _SETTING_EXPR.sub(substitute, value)


def parse_timespan(text: str) -> timedelta:
    """Parse .NET TimeSpan text such as "00:05:00" or "1.02:00:00" (days.hours:min:sec)."""
    match = _TIMESPAN.match(text)
    if match is None:
        raise ValueError(f"not a TimeSpan (expected [d.]hh:mm[:ss[.fff]]): {text!r}")
    hours, minutes = int(match["h"]), int(match["m"])
    seconds = int(match["s"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"TimeSpan component out of range: {text!r}")
    frac = match["frac"] or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    value = timedelta(
        days=int(match["days"] or 0),
        hours=hours,
        minutes=minutes,
        seconds=seconds,
        microseconds=micro,
    )
    return -value if match["neg"] else value


def format_timespan(seconds: float) -> str:
    """A duration as .NET's TimeSpan prints it ("00:05:00", "00:00:00.2000000", "1.02:00:00"),
    the form the host's timeout messages use."""
    ticks = round(seconds * 10_000_000)
    days, rest = divmod(ticks, 86_400 * 10_000_000)
    hours, rest = divmod(rest, 3_600 * 10_000_000)
    minutes, rest = divmod(rest, 60 * 10_000_000)
    secs, fraction = divmod(rest, 10_000_000)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    if days:
        text = f"{days}.{text}"
    return f"{text}.{fraction:07d}" if fraction else text


def load_local_settings(
    path: str | os.PathLike[str],
    environ: MutableMapping[str, str] | None = None,
) -> dict[str, str]:
    """Export local.settings.json "Values" into the environment, as `func start` does.

    Like Core Tools, a variable that is already set wins over the file, so a CI job or a
    shell can override one setting without editing the file. Returns the file's Values.
    """
    env = os.environ if environ is None else environ
    data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if data.get("IsEncrypted"):
        raise ValueError(f"{path}: encrypted settings are not supported (IsEncrypted=true)")
    values = data.get("Values") or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: 'Values' must be an object")
    loaded: dict[str, str] = {}
    for key, raw in values.items():
        value = raw if isinstance(raw, str) else json.dumps(raw)
        loaded[key] = value
        if key in env:
            log.info("skipping %r from %s: already set in the environment", key, path)
            continue
        env[key] = value
    # ConnectionStrings:NAME is one of the places the host looks for a connection.
    for key, raw in (data.get("ConnectionStrings") or {}).items():
        env.setdefault(f"ConnectionStrings__{key}", str(raw))
    return loaded


def local_settings_port(path: str | os.PathLike[str]) -> int | None:
    """Host.LocalHttpPort from local.settings.json, which `func start` uses as its default port."""
    data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    port = (data.get("Host") or {}).get("LocalHttpPort") if isinstance(data, dict) else None
    return int(port) if port is not None else None


@dataclass(frozen=True)
class ServiceBusOptions:
    """host.json extensions.serviceBus, with the defaults of the v5 extension."""

    # The v5 extension documents 16 and 8; we do not multiply by the CPU count because a
    # developer box should not run 16x cores concurrent handlers against a local broker.
    max_concurrent_calls: int = 16
    max_concurrent_sessions: int = 8
    # Unset in host.json the SDK waits TryTimeout (60 s) for a session's next message,
    # which on a dev box just stalls other sessions; a few seconds keeps turnaround fast.
    session_idle_timeout: float = 5.0
    auto_complete_messages: bool = True
    max_auto_lock_renewal_duration: float = 300.0
    prefetch_count: int = 0


# host.json functionTimeout when it is absent: the Flex Consumption plan's default, 30 minutes
# (azure-functions docs, includes/functions-timeout-duration.md). "-1" means unbounded.
DEFAULT_FUNCTION_TIMEOUT = 30 * 60.0


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json the dev host honours."""

    route_prefix: str = "api"
    service_bus: ServiceBusOptions = field(default_factory=ServiceBusOptions)
    # host.json "functions": when present, only these functions are loaded.
    functions: tuple[str, ...] | None = None
    # host.json "functionTimeout" in seconds; None: unbounded.
    function_timeout: float | None = DEFAULT_FUNCTION_TIMEOUT


# The host's request body limit (Kestrel MaxRequestBodySize) is 100 MB unless the app
# setting FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (bytes) raises or lowers it.
DEFAULT_MAX_REQUEST_BODY_SIZE = 100 * 1024 * 1024


def max_request_body_size(environ: Mapping[str, str] | None = None) -> int:
    """The request body limit in bytes, honouring FUNCTIONS_REQUEST_BODY_SIZE_LIMIT."""
    env = os.environ if environ is None else environ
    raw = env.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT")
    return int(raw) if raw else DEFAULT_MAX_REQUEST_BODY_SIZE


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return parse_timespan(value).total_seconds()
    raise ValueError(f"host.json {what}: expected a TimeSpan string, got {value!r}")


def parse_host_json(data: Mapping[str, Any]) -> HostConfig:
    """Build a HostConfig from the parsed host.json document."""
    extensions = data.get("extensions") or {}
    http = extensions.get("http") or {}
    sb = extensions.get("serviceBus") or {}
    defaults = ServiceBusOptions()

    prefix = http.get("routePrefix", "api")
    prefix = "" if prefix is None else str(prefix).strip("/")

    sb_options = ServiceBusOptions(
        max_concurrent_calls=int(sb.get("maxConcurrentCalls", defaults.max_concurrent_calls)),
        max_concurrent_sessions=int(
            sb.get("maxConcurrentSessions", defaults.max_concurrent_sessions)
        ),
        session_idle_timeout=(
            _seconds(sb["sessionIdleTimeout"], "sessionIdleTimeout")
            if "sessionIdleTimeout" in sb
            else defaults.session_idle_timeout
        ),
        auto_complete_messages=bool(
            sb.get("autoCompleteMessages", defaults.auto_complete_messages)
        ),
        max_auto_lock_renewal_duration=(
            _seconds(sb["maxAutoLockRenewalDuration"], "maxAutoLockRenewalDuration")
            if "maxAutoLockRenewalDuration" in sb
            else defaults.max_auto_lock_renewal_duration
        ),
        prefetch_count=int(sb.get("prefetchCount", defaults.prefetch_count)),
    )
    if sb_options.max_concurrent_calls < 1 or sb_options.max_concurrent_sessions < 1:
        raise ValueError("host.json: maxConcurrentCalls/maxConcurrentSessions must be >= 1")
    if "messageHandlerOptions" in sb or "sessionHandlerOptions" in sb:
        log.warning(
            "host.json serviceBus.messageHandlerOptions/sessionHandlerOptions are v4-extension "
            "settings the current host ignores; use maxConcurrentCalls/maxConcurrentSessions"
        )

    functions = data.get("functions")
    return HostConfig(
        route_prefix=prefix,
        service_bus=sb_options,
        functions=tuple(str(f) for f in functions) if functions is not None else None,
        function_timeout=_function_timeout(data.get("functionTimeout")),
    )


def _function_timeout(value: Any) -> float | None:
    """host.json functionTimeout in seconds (functions-host-json.md: a TimeSpan, -1 unbounded)."""
    if value is None:
        return DEFAULT_FUNCTION_TIMEOUT
    if str(value).strip() == "-1":
        return None
    seconds = _seconds(value, "functionTimeout")
    if seconds <= 0:
        raise ValueError(f"host.json functionTimeout must be positive or -1, got {value!r}")
    return seconds


def load_host_config(source: str | os.PathLike[str] | Mapping[str, Any] | None) -> HostConfig:
    """HostConfig from a host.json path, an already-parsed mapping, or defaults for None."""
    if source is None:
        return HostConfig()
    if isinstance(source, Mapping):
        return parse_host_json(source)
    data = json.loads(Path(source).read_text(encoding="utf-8-sig"))
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object")
    return parse_host_json(data)
