"""Flex Consumption's own rules, held by the templates so that `azd up` cannot trip on them.

Sources (azure-functions docs): flex-consumption-plan.md ("Always ready instances", "Considerations"),
reliability-functions.md (availability zones), functions-app-settings.md ("Flex Consumption plan
deprecations").
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra import bicep

APP = "modules/functionapp.bicep"

# Site properties Flex Consumption deprecates (functions-app-settings.md, the table's
# `properties.*` rows): none may be set anywhere under the site's properties.
DEPRECATED_SITE_PROPERTIES = [
    "alwaysOn",
    "containerSize",
    "dnsConfiguration",
    "ftpsState",
    "isReserved",
    "isXenon",
    "javaVersion",
    "linuxFxVersion",
    "netFrameworkVersion",
    "powerShellVersion",
    "functionAppScaleLimit",
    "preWarmedInstanceCount",
    "use32BitWorkerProcess",
    "vnetBackupRestoreEnabled",
    "vnetContentShareEnabled",
    "vnetImagePullEnabled",
    "vnetRouteAllEnabled",
    "windowsFxVersion",
]


def app() -> dict[str, Any]:
    return bicep.template(APP)


def always_ready(params: dict[str, Any]) -> Any:
    parsed = app()
    return bicep.evaluate(parsed, parsed["variables"]["alwaysReady"]["value"], params)


def azd_default(parameter: str) -> tuple[str, str]:
    """(azd variable, default) that main.parameters.json maps to a main.bicep parameter."""
    text = json.loads((bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    found = re.fullmatch(r"\$\{(\w+)=(.*)\}", text["parameters"][parameter]["value"])
    assert found, f"{parameter} has no azd variable with a default"
    return found.group(1), found.group(2)


@pytest.mark.parametrize("zone_redundant", [False, True])
@pytest.mark.parametrize("instances", range(11))
def test_zone_redundancy_needs_two_always_ready_instances(
    zone_redundant: bool, instances: int
) -> None:
    params = {"zoneRedundant": zone_redundant, "alwaysReadyHttpInstances": instances}
    if zone_redundant and instances < 2:
        with pytest.raises(bicep.TemplateFailure, match="at least 2"):
            always_ready(params)
    else:
        expected = [{"name": "http", "instanceCount": instances}] if instances else []
        assert always_ready(params) == expected


def test_zone_redundant_true_with_the_default_instances_stops_with_the_fix() -> None:
    zone_variable, _ = azd_default("zoneRedundant")
    instances_variable, default = azd_default("alwaysReadyHttpInstances")
    main = bicep.template("main.bicep")
    module = next(m for m in main["modules"].values() if m["detail"]["path"] == APP)
    passed = bicep.body(module)["params"]
    # main.bicep hands both values to the module unchanged, so the module's check sees them.
    assert passed["zoneRedundant"] == "zoneRedundant"
    assert passed["alwaysReadyHttpInstances"] == "alwaysReadyHttpInstances"
    assert bicep.default(main, "alwaysReadyHttpInstances") == int(default) == 1
    with pytest.raises(bicep.TemplateFailure) as failure:
        always_ready({"zoneRedundant": True, "alwaysReadyHttpInstances": int(default)})
    message = str(failure.value)
    assert f"{zone_variable}=true" in message
    assert f"azd env set {instances_variable} 2" in message


def test_the_site_scales_with_the_checked_always_ready_list() -> None:
    site = bicep.body(app()["resources"]["site"])
    scale = site["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["alwaysReady"] == "alwaysReady"
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"


def test_maximum_instance_count_stays_within_flex_limits() -> None:
    parsed = app()
    declared = bicep.decorators(parsed["parameters"]["maximumInstanceCount"])
    # 40 was the lowest maximum in preview and deploys under the current rule (1) too; 1000 is
    # the highest supported value.
    assert declared["min_value"] == 40
    assert declared["max_value"] == 1000
    assert 40 <= bicep.default(parsed, "maximumInstanceCount") <= 1000


def keys(tree: Any) -> set[str]:
    if isinstance(tree, dict):
        return {k.lower() for k in tree} | {k for v in tree.values() for k in keys(v)}
    if isinstance(tree, list):
        return {k for v in tree for k in keys(v)}
    return set()


def sites() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}:{name}", bicep.body(resource))
        for path in bicep.bicep_files()
        for name, resource in bicep.template(path).get("resources", {}).items()
        if resource["type"] == "Microsoft.Web/sites"
    ]


def test_the_function_app_is_the_only_site() -> None:
    assert [name for name, _ in sites()] == ["functionapp.bicep:site"]


@pytest.mark.parametrize("name", DEPRECATED_SITE_PROPERTIES)
def test_no_site_sets_a_property_flex_consumption_deprecates(name: str) -> None:
    for where, site in sites():
        assert name.lower() not in keys(site["properties"]), f"{where} sets {name}"
