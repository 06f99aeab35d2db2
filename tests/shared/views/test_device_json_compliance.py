"""The read API's device body with Intune's failing compliance settings: which devices ask Intune,
and the shape (checked against docs/openapi.yaml and, for the shared part, the alert schema)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from shared.core.compliance_details import (
    UNAVAILABLE_REASONS,
    ComplianceDetails,
    parse_policy_states,
    unavailable,
)
from shared.core.records import StateRow
from shared.views.device_json import compliance_target, device_detail_json
from tests.shared.views.fleet_data import T0, record

DOCS = Path(__file__).resolve().parents[3] / "docs"
OPENAPI = yaml.safe_load((DOCS / "openapi.yaml").read_text())
ALERT_SCHEMA = json.loads((DOCS / "alert.schema.json").read_text())
DETAIL = jsonschema.Draft202012Validator(
    {"$ref": "urn:devicemon:openapi#/components/schemas/DeviceDetail"},
    registry=Registry().with_resource(
        "urn:devicemon:openapi", Resource.from_contents(OPENAPI, default_specification=DRAFT202012)
    ),
)
ALERT_COMPLIANCE = jsonschema.Draft202012Validator(
    {**ALERT_SCHEMA["properties"]["data"]["properties"]["compliance"], "$defs": {}}
)
MANAGED = "c1d2e3f4-a5b6-4c7d-8e9f-a0b1c2d3e4f5"
# A deviceCompliancePolicyStates answer in the documented shape (its list example).
BODY = {
    "value": [
        {
            "id": "3b7c9d2e-5f41-4a8b-9c6d-7e8f9a0b1c2d",
            "displayName": "Windows 11 security baseline",
            "state": "nonCompliant",
            "platformType": "windows10AndLater",
            "settingCount": 2,
            "settingStates": [
                {"setting": "Windows10CompliancePolicy.BitLockerEnabled", "state": "nonCompliant"},
                {"setting": "Windows10CompliancePolicy.ContosoNewCheck", "state": "conflict"},
            ],
        }
    ]
}


@pytest.mark.parametrize(
    ("changes", "asks"),
    [
        ({}, False),  # eligible
        ({"eligible": False, "reasons": ("NOT_COMPLIANT",)}, True),
        ({"eligible": False, "reasons": ("COMPLIANCE_UNKNOWN",)}, True),
        (
            {
                "eligible": False,
                "reasons": ("NOT_HYBRID_JOINED",),
                "warnings": ("COMPLIANCE_ERROR",),
            },
            True,
        ),
        ({"eligible": False, "reasons": ("DEVICE_DISABLED",)}, False),
        ({"eligible": False, "reasons": ("NOT_COMPLIANT",), "managed_device_id": None}, False),
        ({"eligible": False, "reasons": ("NOT_COMPLIANT",), "deleted": True}, False),
    ],
)
def test_only_a_device_ineligible_for_compliance_asks_intune(
    changes: dict[str, Any], asks: bool
) -> None:
    assert compliance_target(record(**changes)) == (MANAGED if asks else None)


def state() -> StateRow:
    return StateRow(record(eligible=False, reasons=("NOT_COMPLIANT",)), "lost", T0)


@pytest.mark.parametrize(
    "details",
    [parse_policy_states(BODY), ComplianceDetails()]
    + [unavailable(reason, "Intune said no") for reason in UNAVAILABLE_REASONS],
    ids=["failing", "nothing-failing", *UNAVAILABLE_REASONS],
)
def test_the_device_body_carries_the_details_as_the_alert_does(details: ComplianceDetails) -> None:
    body = device_detail_json(state(), [], False, details)
    DETAIL.validate(body)
    ALERT_COMPLIANCE.validate(body["compliance"])
    assert ComplianceDetails.from_json(body["compliance"]) == details


def test_failing_settings_have_a_sentence_and_a_fix_and_unknown_ones_keep_intunes_name() -> None:
    body = device_detail_json(state(), [], False, parse_policy_states(BODY))
    bitlocker, unknown = body["compliance"]["failingSettings"]
    assert "BitLocker" in bitlocker["sentence"] and "Turn on BitLocker" in bitlocker["fix"]
    assert unknown["setting"] == "Windows10CompliancePolicy.ContosoNewCheck"
    assert "Windows10CompliancePolicy.ContosoNewCheck" in unknown["sentence"]
    assert body["compliance"]["failingPolicies"][0]["displayName"] == "Windows 11 security baseline"


def test_without_details_the_body_is_as_before() -> None:
    body = device_detail_json(state(), [], False)
    DETAIL.validate(body)
    assert "compliance" not in body
