"""What remediation decides for an alert (pure): the plan, the rate limit's hour, the log's keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.consumers.remediation_log import row_key
from shared.consumers.remediation_plan import FINAL, Mode, Outcome, Skip, hour_bucket, plan
from shared.core.alert_view import parse_alert
from tests.alert_helpers import T0, make_alert

ACT = Outcome.CLAIMED


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize(
    ("alert", "applicable", "skip"),
    [
        ({}, True, None),
        ({"reasons": ("COMPLIANCE_UNKNOWN",)}, True, None),
        ({"reasons": ("DEVICE_DISABLED", "NOT_COMPLIANT")}, True, None),
        ({"management": "co_managed", "workload": "intune"}, True, None),
        (
            {"management": "co_managed", "workload": "configuration_manager"},
            False,
            Skip.COMPLIANCE_NOT_WITH_INTUNE,
        ),
        ({"management": "co_managed"}, False, Skip.COMPLIANCE_NOT_WITH_INTUNE),
        ({"management": "exchange"}, False, Skip.NOT_INTUNE_MANAGED),
        ({"management": "configuration_manager"}, False, Skip.NOT_INTUNE_MANAGED),
        ({"management": "jamf"}, False, Skip.NOT_INTUNE_MANAGED),
        ({"lost": False}, False, Skip.RESTORED),
        ({"reasons": ("DEVICE_DISABLED",)}, False, Skip.NO_FIX_FOR_REASONS),
        ({"reasons": ("DEVICE_DELETED",)}, False, Skip.NO_FIX_FOR_REASONS),
        ({"reasons": ("NOT_HYBRID_JOINED", "NOT_JOINED")}, False, Skip.NO_FIX_FOR_REASONS),
        ({"management": "unmanaged", "managed_device_id": None}, False, Skip.NOT_INTUNE_MANAGED),
        ({"management": "unknown"}, False, Skip.NOT_INTUNE_MANAGED),
        ({"management": "intune", "managed_device_id": None}, False, Skip.NOT_INTUNE_MANAGED),
    ],
)
def test_plan(mode: Mode, alert: dict[str, Any], applicable: bool, skip: Skip | None) -> None:
    changes = dict(alert)
    workload = changes.pop("workload", None)
    body = make_alert(**changes)
    body["data"]["device"]["complianceWorkload"] = workload
    decided = plan(parse_alert(body), mode)
    if not applicable:
        assert (decided.outcome, decided.code) == (Outcome.SKIPPED, skip)
    elif mode is Mode.OFF:
        assert (decided.outcome, decided.code) == (Outcome.SKIPPED, Skip.MODE_OFF)
        assert "would run Intune syncDevice" in decided.reason
    elif mode is Mode.DRY_RUN:
        assert (decided.outcome, decided.code) == (Outcome.DRY_RUN, "syncDevice")
    else:
        assert (decided.outcome, decided.code, decided.acts) == (ACT, "syncDevice", True)
    assert decided.reason


def test_only_in_flight_states_are_not_final() -> None:
    assert set(Outcome) - FINAL == {Outcome.CLAIMED, Outcome.ACTING, Outcome.RETRY}


@pytest.mark.parametrize(
    ("moment", "bucket"),
    [
        (datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC), "2026112910"),
        (datetime(2026, 11, 29, 10, 59, 59, 999999, tzinfo=UTC), "2026112910"),
        (datetime(2026, 11, 29, 11, 0, 0, tzinfo=UTC), "2026112911"),
        (datetime(2026, 11, 29, 12, 30, tzinfo=timezone(timedelta(hours=2))), "2026112910"),
    ],
)
def test_the_budget_is_per_utc_clock_hour(moment: datetime, bucket: str) -> None:
    assert hour_bucket(moment) == bucket


def test_log_keys_are_deterministic_and_newest_first() -> None:
    older = parse_alert(make_alert(alert_id="a", at=T0))
    newer = parse_alert(make_alert(alert_id="b", at=T0 + timedelta(seconds=1)))
    assert row_key(older) == row_key(parse_alert(make_alert(alert_id="a", at=T0)))
    assert row_key(newer) < row_key(older)
    assert row_key(older).endswith("-a")


def test_settings_parse_the_consumers_settings_and_hide_the_webhook_url() -> None:
    from shared.settings import Settings, SettingsError

    env = {"GRAPH_CLIENT_STATE": "s", "TEAMS_WEBHOOK_URL": " https://flow.example/x?sig=s3cret "}
    settings = Settings.from_env(
        {**env, "REMEDIATION_MODE": "dry-run", "REMEDIATION_MAX_ACTIONS_PER_HOUR": "5"}
    )
    assert settings.remediation_mode == "dry-run"
    assert settings.remediation_max_actions_per_hour == 5
    assert settings.teams_webhook_url == "https://flow.example/x?sig=s3cret"
    assert "s3cret" not in repr(settings)
    defaults = Settings.from_env({"GRAPH_CLIENT_STATE": "s"})
    assert (defaults.remediation_mode, defaults.teams_webhook_url) == ("off", None)
    assert (defaults.teams_flap_window_minutes, defaults.teams_flap_threshold) == (60, 4)
    assert (defaults.teams_mass_window_minutes, defaults.teams_mass_threshold) == (10, 25)
    for bad in ({"REMEDIATION_MODE": "yes"}, {"TEAMS_FLAP_THRESHOLD": "1"}):
        with pytest.raises(SettingsError):
            Settings.from_env({**env, **bad})
