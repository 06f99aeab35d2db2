"""The Teams consumer: decide what the channel should see for an alert (noise control), render
it (shared/consumers/teams_cards.py) and post it to a Teams Workflows webhook.

Failures, as docs/teams.md explains:
- 429 and 5xx (and network errors) are retried in-process honouring Retry-After
  (shared/retry.py); when the retries run out the invocation fails and Service Bus redelivers.
- Any other 4xx is permanent: the reason (status and Teams' own error text, never the URL) is
  logged and stored with the delivery, and every delivery of that alert fails at once with
  `TeamsRejected`, so Service Bus dead-letters it after the subscription's max delivery count.
- No URL configured: a clear configuration message per alert, and the message is completed
  (a crash loop would only fill the dead-letter queue).
The webhook URL is a secret: it appears in no log, no exception and no record.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from shared import logs
from shared.consumers.noise import FlapAction, MassAction, NoiseSettings
from shared.consumers.noise_cards import flapping_card, mass_card
from shared.consumers.risk_cards import at_risk_card, cleared_card
from shared.consumers.teams_cards import alert_card, message
from shared.consumers.teams_store import Delivery, DeliveryStatus, TeamsStore
from shared.core.alert_view import AlertView
from shared.retry import RetryPolicy, Transient, retrying
from shared.settings import Settings

log = logging.getLogger("devicemon.teams")
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
# A flow that keeps answering 429 with a long Retry-After is not worth a message lock: past this
# the invocation fails and Service Bus redelivers (the host renews locks up to 5 minutes).
DEFAULT_RETRY = RetryPolicy(attempts=5, base_delay=1.0, max_delay=20.0, max_retry_after=60.0)


class TeamsNotConfigured(Exception):
    """TEAMS_WEBHOOK_URL is unset or unusable; the message says what to do."""


class PermanentFailure(Exception):
    """Retrying cannot help; the message must end in the dead-letter queue."""


class TeamsRejected(PermanentFailure):
    """Teams answered a 4xx other than 408/429: the flow refuses this post."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Teams rejected the card: HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class TeamsUnavailable(Exception):
    """429, 5xx or a network error: worth retrying. Its text never contains the URL."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.retry_after = retry_after


def check_url(url: str | None) -> str:
    if not url:
        raise TeamsNotConfigured(
            "TEAMS_WEBHOOK_URL is not set: alerts are not posted to Teams. Set it to the URL of "
            "a Teams Workflows flow 'When a Teams webhook request is received' (docs/teams.md), "
            "or disable the function with the app setting AzureWebJobs.teams_alert.Disabled=true."
        )
    parts = urlsplit(url)
    local = parts.scheme == "http" and (parts.hostname or "") in _LOCAL_HOSTS
    if not (parts.scheme == "https" or local) or not parts.hostname:
        raise TeamsNotConfigured(
            "TEAMS_WEBHOOK_URL is not an https URL: alerts are not posted to Teams "
            "(the value is a secret and is not shown; see docs/teams.md)."
        )
    return url


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _classify(exc: BaseException) -> Transient | None:
    return Transient(exc.retry_after) if isinstance(exc, TeamsUnavailable) else None


def _detail(response: httpx.Response, limit: int = 500) -> str:
    """Teams' error text, cut short; an echo of the URL is the only thing it could leak."""
    text = " ".join(response.text.split())
    url = str(response.request.url) if response.request is not None else ""
    if url:
        text = text.replace(url, "<webhook url>")
    return text[:limit] or response.reason_phrase or "no error text"


class TeamsClient:
    """Posts messages to one Workflows webhook with one long-lived HTTP client."""

    def __init__(
        self,
        url: str,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = check_url(url)
        self._retry = retry
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(15.0), follow_redirects=False)

    def __repr__(self) -> str:  # never show the URL
        return "TeamsClient(<webhook url hidden>)"

    async def post(self, payload: dict[str, Any]) -> int:
        """POST one message; the status on success (Workflows answers 202)."""

        async def once() -> int:
            try:
                response = await self._http.post(self._url, json=payload)
            except httpx.TransportError as exc:
                raise TeamsUnavailable(f"network error {type(exc).__name__}") from None
            status = response.status_code
            if 200 <= status < 300:
                return status
            if status in (408, 429) or status >= 500:
                raise TeamsUnavailable(
                    f"Teams answered HTTP {status}",
                    retry_after(response.headers.get("retry-after")),
                )
            raise TeamsRejected(status, _detail(response))

        return await retrying(once, _classify, self._retry)

    async def close(self) -> None:
        await self._http.aclose()


@dataclass(frozen=True, slots=True)
class Result:
    alert_id: str
    status: DeliveryStatus
    decision: str
    posted: int


def noise_settings(settings: Settings) -> NoiseSettings:
    return NoiseSettings(
        flap_window=timedelta(minutes=settings.teams_flap_window_minutes),
        flap_threshold=settings.teams_flap_threshold,
        mass_window=timedelta(minutes=settings.teams_mass_window_minutes),
        mass_threshold=settings.teams_mass_threshold,
    )


class TeamsNotifier:
    """One alert in, at most the right cards out, each alert handled once across redeliveries."""

    def __init__(
        self,
        client: TeamsClient,
        store: TeamsStore,
        noise: NoiseSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._store = store
        self._noise = noise
        self._clock = clock

    @property
    def store(self) -> TeamsStore:
        return self._store

    async def handle(self, alert: AlertView, delivery_count: int = 0) -> Result:
        delivery = await self._store.get_delivery(alert.id)
        if delivery is not None and delivery.status in (
            DeliveryStatus.POSTED,
            DeliveryStatus.SUPPRESSED,
        ):
            logs.event(log, "teams_duplicate", alert_id=alert.id, status=delivery.status.value)
            return Result(alert.id, delivery.status, delivery.decision, delivery.posted)
        if delivery is not None and delivery.status is DeliveryStatus.REJECTED:
            self._log_rejected(alert, delivery, delivery_count)
            raise TeamsRejected(delivery.rejected_status or 0, delivery.rejected_reason)
        if delivery is None:
            delivery = await self._decide(alert)
            await self._store.save(delivery)
        return await self._post(alert, delivery, delivery_count)

    async def _decide(self, alert: AlertView) -> Delivery:
        now = self._clock()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # Table precision: ms
        new = await self._store.record_arrival(alert, now)
        mass = await self._store.mass_step(alert.id, now, new, self._noise)
        payloads: list[dict[str, Any]] = []
        parts: list[str] = []
        if mass.action in (MassAction.START, MassAction.UPDATE, MassAction.END):
            assert mass.first is not None and mass.last is not None
            summary = await self._store.summary(
                mass.action.value, mass.first, mass.last, mass.next_summary
            )
            window = int(self._noise.mass_window.total_seconds() // 60)
            payloads.append(message(mass_card(summary, window)))
            parts.append(f"mass-{mass.action.value}")
        elif mass.action is MassAction.SUPPRESS:
            parts.append("mass-suppressed")
        own_card = mass.action in (MassAction.NORMAL, MassAction.END)
        if alert.about_risk:
            if own_card:
                payload, part = await self._risk_card(alert, now)
                payloads += [payload] if payload else []
                parts.append(part)
            if alert.at_risk:
                await self._store.note_risk(alert, folded=not own_card, now=now)
        elif own_card:
            flap, flips = await self._store.flap_step(alert, self._noise)
            if flap.action is FlapAction.POST:
                note = None
                if flap.skipped:
                    note = f"{flap.skipped} earlier change(s) of this device were not posted while it was flapping."
                payloads.append(message(alert_card(alert, note)))
                parts.append("card")
            elif flap.action is FlapAction.FLAPPING:
                assert flap.quiet_until is not None
                window = int(self._noise.flap_window.total_seconds() // 60)
                card = flapping_card(alert, flips, window, flap.quiet_until, flap.skipped)
                payloads.append(message(card))
                parts.append("flapping")
            else:
                parts.append("flap-skipped")
        decision = "+".join(parts)
        if not payloads:
            logs.event(
                log,
                "teams_alert_suppressed",
                alert_id=alert.id,
                device_id=alert.object_id,
                decision=decision,
            )
        return Delivery(
            alert_id=alert.id,
            device_id=alert.object_id,
            device_name=alert.name,
            alert_type=alert.type,
            decision=decision,
            payloads=tuple(payloads),
            status=DeliveryStatus.DECIDED if payloads else DeliveryStatus.SUPPRESSED,
            decided_at=now,
        )

    async def _risk_card(
        self, alert: AlertView, now: datetime
    ) -> tuple[dict[str, Any] | None, str]:
        """An early warning's own card. Risk episodes skip flap control: the pipeline raises at
        most one at_risk and one cleared per episode. A cleared whose at_risk was folded into a
        mass-event summary is not posted alone: nobody saw the warning it would resolve."""
        if alert.at_risk:
            return message(at_risk_card(alert, now)), "at-risk-card"
        if await self._store.risk_folded(alert.object_id):
            return None, "cleared-folded"
        return message(cleared_card(alert)), "cleared-card"

    async def _post(self, alert: AlertView, delivery: Delivery, delivery_count: int) -> Result:
        posted = delivery.posted
        for index in range(delivery.posted, len(delivery.payloads)):
            try:
                await self._client.post(delivery.payloads[index])
            except TeamsRejected as exc:
                rejected = await self._store.mark_rejected(delivery, posted, exc.status, exc.detail)
                self._log_rejected(alert, rejected, delivery_count)
                raise
            except Exception as exc:
                logs.event(
                    log,
                    "teams_post_failed",
                    level=logging.WARNING,
                    alert_id=alert.id,
                    device_id=alert.object_id,
                    delivery_count=delivery_count,
                    error=f"{type(exc).__name__}: {exc}",
                )
                raise
            posted = index + 1
            await self._store.mark_posted(delivery, posted)
            logs.event(
                log,
                "teams_card_posted",
                alert_id=alert.id,
                device_id=alert.object_id,
                decision=delivery.decision,
                part=posted,
            )
        status = DeliveryStatus.POSTED if delivery.payloads else DeliveryStatus.SUPPRESSED
        return Result(alert.id, status, delivery.decision, posted)

    def _log_rejected(self, alert: AlertView, delivery: Delivery, delivery_count: int) -> None:
        logs.event(
            log,
            "teams_post_rejected",
            level=logging.ERROR,
            alert_id=alert.id,
            device_id=alert.object_id,
            status=delivery.rejected_status,
            reason=delivery.rejected_reason,
            delivery_count=delivery_count,
        )
