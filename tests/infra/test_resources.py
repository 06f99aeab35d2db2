"""The resources infra/ provisions, checked on the parsed templates (no Bicep CLI here)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra import bicep


def resources(path: str) -> dict[str, dict[str, Any]]:
    return bicep.template(path)["resources"]


def props(path: str, name: str) -> dict[str, Any]:
    properties: dict[str, Any] = bicep.body(resources(path)[name])["properties"]
    return properties


@pytest.mark.parametrize("path", bicep.bicep_files(), ids=lambda p: p.name)
def test_every_template_parses(path: Any) -> None:
    assert bicep.template(path)


def test_main_deploys_every_module() -> None:
    main = bicep.template("main.bicep")
    assert main["globals"]["scope"]["value"] == "subscription"
    used = {m["detail"]["path"] for m in main["modules"].values()}
    on_disk = {f"modules/{p.name}" for p in bicep.MODULES.glob("*.bicep")}
    assert used == on_disk


# --- storage -----------------------------------------------------------------------------------


def test_storage_has_no_shared_keys_and_no_anonymous_access() -> None:
    account = props("modules/storage.bicep", "account")
    assert account["allowSharedKeyAccess"] is False
    assert account["defaultToOAuthAuthentication"] is True
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["supportsHttpsTrafficOnly"] is True


def code_tables() -> set[str]:
    """Table names the code builds from TABLE_PREFIX (settings properties and f-strings)."""
    names: set[str] = set()
    for folder in ("shared", "handlers"):
        for path in (bicep.ROOT / folder).rglob("*.py"):
            names.update(re.findall(r'table_prefix\}(\w+)"', path.read_text(encoding="utf-8")))
    return names


def test_every_table_the_code_uses_is_created() -> None:
    declared = bicep.template("main.bicep")["variables"]["tableNames"]["value"]
    created = {name.removeprefix("${tablePrefix}") for name in declared}
    assert {"DeviceState", "DeviceHistory", "DevicemonSync", "RemediationLog"} <= created
    assert created == code_tables()
    tables = resources("modules/storage.bicep")["tables"]
    assert bicep.loop(tables) == {"item_name": "tableName", "array_name": "tableNames"}


def test_deployment_container_is_private() -> None:
    assert props("modules/storage.bicep", "deploymentContainer")["publicAccess"] == "None"


# --- Service Bus -------------------------------------------------------------------------------


def test_namespace_is_standard_with_sas_keys_off() -> None:
    namespace = bicep.body(resources("modules/servicebus.bicep")["namespace"])
    assert namespace["sku"]["name"] == "Standard"
    assert namespace["properties"]["disableLocalAuth"] is True
    assert namespace["properties"]["minimumTlsVersion"] == "1.2"


def test_change_queue_has_sessions_duplicate_detection_and_a_delivery_limit() -> None:
    servicebus = bicep.template("modules/servicebus.bicep")
    queue = props("modules/servicebus.bicep", "queue")
    assert queue["requiresSession"] is True
    assert queue["requiresDuplicateDetection"] is True
    assert queue["duplicateDetectionHistoryTimeWindow"] == "queueDuplicateWindow"
    # Graph redelivers a failed notification for up to 4 hours: the window covers it.
    assert bicep.default(servicebus, "queueDuplicateWindow") == "PT4H"
    assert queue["maxDeliveryCount"] == "maxDeliveryCount"
    assert bicep.default(servicebus, "maxDeliveryCount") == 10  # docs/reliability.md
    assert queue["deadLetteringOnMessageExpiration"] is True


def test_alert_topic_has_duplicate_detection_and_both_subscriptions() -> None:
    servicebus = bicep.template("modules/servicebus.bicep")
    topic = props("modules/servicebus.bicep", "topic")
    assert topic["requiresDuplicateDetection"] is True
    assert bicep.default(servicebus, "topicDuplicateWindow") == "P1D"
    subscriptions = resources("modules/servicebus.bicep")["subscriptions"]
    assert bicep.loop(subscriptions) == {
        "item_name": "subscriptionName",
        "array_name": "subscriptionNames",
    }
    assert bicep.body(subscriptions)["properties"]["maxDeliveryCount"] == "maxDeliveryCount"
    main = bicep.template("main.bicep")
    assert main["variables"]["topicSubscriptionNames"]["value"] == ["teams", "remediation"]
    params = bicep.body(main["modules"]["serviceBus"])["params"]
    assert params["subscriptionNames"] == "topicSubscriptionNames"


# --- Key Vault, monitoring ---------------------------------------------------------------------


def test_key_vault_uses_rbac_and_soft_delete() -> None:
    vault = props("modules/keyvault.bicep", "vault")
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True
    assert "accessPolicies" not in vault


def test_key_vault_purge_protection_is_on_by_default_with_a_stated_retention() -> None:
    keyvault = bicep.template("modules/keyvault.bicep")
    main = bicep.template("main.bicep")
    assert bicep.default(keyvault, "enablePurgeProtection") is True
    assert bicep.default(main, "keyVaultPurgeProtection") is True
    parameters = json.loads((bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    assert (
        parameters["parameters"]["keyVaultPurgeProtection"]["value"]
        == "${KEY_VAULT_PURGE_PROTECTION=true}"
    )
    vault = props("modules/keyvault.bicep", "vault")
    # ARM refuses an explicit false: null leaves it off when the parameter says so.
    assert bicep.render(vault["enablePurgeProtection"]) == "(enablePurgeProtection ? true : null)"
    assert bicep.evaluate(keyvault, vault["enablePurgeProtection"], {}) is True
    assert vault["softDeleteRetentionInDays"] == "softDeleteRetentionInDays"
    params = bicep.body(main["modules"]["keyVault"])["params"]
    assert params["enablePurgeProtection"] == "keyVaultPurgeProtection"
    assert params["softDeleteRetentionInDays"] == "keyVaultSoftDeleteRetentionDays"
    retention = main["parameters"]["keyVaultSoftDeleteRetentionDays"]
    assert retention["default"] == 7
    assert bicep.decorators(retention)["min_value"] == 7
    assert bicep.decorators(retention)["max_value"] == 90


def diagnostic_settings(path: str) -> dict[str, dict[str, Any]]:
    return {
        name: bicep.body(resource)
        for name, resource in resources(path).items()
        if resource["type"] == "Microsoft.Insights/diagnosticSettings"
    }


@pytest.mark.parametrize(
    ("path", "scope", "categories"),
    [
        # Every secret read (the platform's, an admin's, a denied one) leaves an audit row.
        ("modules/keyvault.bicep", "vault", ["AuditEvent"]),
        # Management changes to the namespace and its entities (runtime audit: Premium only).
        ("modules/servicebus.bicep", "namespace", ["OperationalLogs"]),
    ],
)
def test_audit_logs_go_to_the_monitoring_workspace(
    path: str, scope: str, categories: list[str]
) -> None:
    (setting,) = diagnostic_settings(path).values()
    assert setting["scope"] == scope
    properties = setting["properties"]
    assert properties["workspaceId"] == "logAnalyticsWorkspaceId"
    assert properties["logAnalyticsDestinationType"] == "Dedicated"
    assert [log["category"] for log in properties["logs"]] == categories
    assert all(log["enabled"] is True for log in properties["logs"])
    main = bicep.template("main.bicep")
    module = next(m for m in main["modules"].values() if m["detail"]["path"] == path)
    workspace = bicep.body(module)["params"]["logAnalyticsWorkspaceId"]
    assert bicep.render(workspace) == "monitoring.outputs.workspaceId"
    monitoring = bicep.template("modules/monitoring.bicep")
    assert bicep.render(monitoring["outputs"]["workspaceId"]["value"]) == "workspace.id"


def test_teams_secret_only_exists_once_configured() -> None:
    vault = bicep.template("modules/keyvault.bicep")
    assert bicep.condition(vault["resources"]["teamsWebhookSecret"]) == "hasTeamsWebhook"
    assert bicep.render(vault["variables"]["hasTeamsWebhook"]["value"]) == "!empty(teamsWebhookUrl)"
    for name in ("graphClientState", "teamsWebhookUrl"):
        assert "secure" in bicep.decorators(vault["parameters"][name])
    main = bicep.template("main.bicep")
    for name in ("graphClientState", "teamsWebhookUrl"):
        assert "secure" in bicep.decorators(main["parameters"][name])
    assert bicep.decorators(main["parameters"]["graphClientState"])["max_length"] == 128


def test_monitoring_has_local_auth_off() -> None:
    assert props("modules/monitoring.bicep", "appInsights")["DisableLocalAuth"] is True
    assert props("modules/monitoring.bicep", "workspace")["features"]["disableLocalAuth"] is True
    workspace = props("modules/monitoring.bicep", "appInsights")["WorkspaceResourceId"]
    assert bicep.render(workspace) == "workspace.id"


# --- the function app --------------------------------------------------------------------------


def test_plan_is_flex_consumption() -> None:
    plan = bicep.body(resources("modules/functionapp.bicep")["plan"])
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True  # Linux


def test_site_runs_python_311_as_the_user_assigned_identity() -> None:
    app = bicep.template("modules/functionapp.bicep")
    site = bicep.body(app["resources"]["site"])
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    assert list(site["identity"]["userAssignedIdentities"]) == ["'${identityId}'"]
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "pythonVersion"}
    assert bicep.default(app, "pythonVersion") == "3.11"
    assert site["properties"]["httpsOnly"] is True
    assert site["properties"]["siteConfig"]["minTlsVersion"] == "1.2"


def test_deployment_storage_is_reached_by_identity() -> None:
    site = bicep.body(resources("modules/functionapp.bicep")["site"])
    storage = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }


def test_http_functions_have_an_always_ready_instance() -> None:
    app = bicep.template("modules/functionapp.bicep")
    site = bicep.body(app["resources"]["site"])
    assert (
        site["properties"]["functionAppConfig"]["scaleAndConcurrency"]["alwaysReady"]
        == "alwaysReady"
    )
    assert bicep.render(app["variables"]["alwaysReady"]["value"]) == (
        "((httpAlwaysReadyInstances > 0) ? [{name: http, instanceCount: httpAlwaysReadyInstances}] : [])"
    )
    assert bicep.default(app, "alwaysReadyHttpInstances") >= 1
    main = bicep.template("main.bicep")
    assert bicep.default(main, "alwaysReadyHttpInstances") >= 1


def test_basic_publishing_credentials_are_off() -> None:
    policies = {
        bicep.body(r)["name"]: bicep.body(r)["properties"]["allow"]
        for r in resources("modules/functionapp.bicep").values()
        if r["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    }
    assert policies == {"scm": False, "ftp": False}


def test_azd_finds_the_app_by_its_service_tag() -> None:
    site = bicep.body(resources("modules/functionapp.bicep")["site"])
    assert bicep.render(site["tags"]) == "union(tags, {'azd-service-name': serviceName})"
    assert bicep.default(bicep.template("modules/functionapp.bicep"), "serviceName") == "api"
    assert "\n  api:\n" in (bicep.ROOT / "azure.yaml").read_text(encoding="utf-8")


# --- Microsoft Graph permissions ---------------------------------------------------------------


def test_graph_permissions_follow_the_features() -> None:
    main = bicep.template("main.bicep")
    variables = main["variables"]
    assert bicep.render(variables["graphAppRoles"]["value"]) == (
        "concat([Device.Read.All, Policy.Read.All], intuneAppRoles, remediationAppRoles)"
    )
    assert bicep.render(variables["intuneAppRoles"]["value"]) == (
        "(intuneEnabled ? [DeviceManagementManagedDevices.Read.All, "
        "DeviceManagementConfiguration.Read.All] : [])"
    )
    # Privileged operations (remediation actions) only when remediation is on, not in dry-run.
    assert bicep.render(variables["remediationAppRoles"]["value"]) == (
        "((remediationMode == on) ? [DeviceManagementManagedDevices.PrivilegedOperations.All] : [])"
    )


def test_the_templates_grant_no_graph_permission() -> None:
    """Granting them is the administrator's grant-graph step (infra/hooks, docs/deploy.md)."""
    main = bicep.template("main.bicep")
    assert "grantGraphPermissions" not in main["parameters"]
    assert "GRAPH_PERMISSIONS_GRANTED" not in main["outputs"]
    # What grant-graph reads: the permissions the enabled features need.
    assert bicep.render(main["outputs"]["GRAPH_APP_ROLES"]["value"]) == "join(graphAppRoles, ,)"
    assert not (bicep.MODULES / "graph-permissions.bicep").exists()
    for path in bicep.bicep_files():
        for declaration in (bicep.template(path).get("resources") or {}).values():
            assert not declaration["type"].startswith("Microsoft.Graph/"), path.name


# --- no Bicep extension, no registry ------------------------------------------------------------

# Every host any file under infra/ may name. A registry (Bicep extension or module registry,
# container or package registry) is never among them: the project names none in code or docs.
ALLOWED_HOSTS = {
    "graph.microsoft.com",  # the Graph API the hooks call; the graphBaseUrl default
    "schema.management.azure.com",  # main.parameters.json's $schema
    "servicebus.windows.net",  # the namespace's host name, in a comment
    "learn.microsoft.com",  # Microsoft's documentation, cited in comments (role scopes, log categories)
}
HOST = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|dev|ms|us|cn|cloud|app)\b", re.I)
# `extension x` (and `provider x`, its earlier name) loads a Bicep extension from a registry.
EXTENSION_STATEMENT = re.compile(r"^\s*(?:extension|provider)\s", re.M)
# Module and extension references to a registry (br:, br/alias) or a template spec (ts:).
REMOTE_REFERENCE = re.compile(r"'(?:br|ts)[:/]")


def infra_text_files() -> list[Any]:
    return sorted(
        path
        for path in bicep.INFRA.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


@pytest.mark.parametrize("path", bicep.bicep_files(), ids=lambda p: p.name)
def test_no_template_declares_an_extension_or_a_remote_module(path: Any) -> None:
    assert not bicep.template(path).get("extensions"), path.name
    text = path.read_text(encoding="utf-8")
    assert not EXTENSION_STATEMENT.search(text), path.name
    assert not REMOTE_REFERENCE.search(text), path.name


def json_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(json_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(json_keys(v) for v in value))
    return set()


def test_no_json_under_infra_configures_extensions_or_registries() -> None:
    assert list(bicep.INFRA.rglob("bicepconfig.json")) == []
    files = sorted(bicep.INFRA.rglob("*.json"))
    assert bicep.INFRA / "main.parameters.json" in files
    for path in files:
        keys = json_keys(json.loads(path.read_text(encoding="utf-8")))
        assert not keys & {"extensions", "moduleAliases", "providerAliases"}, path.name


def test_infra_names_no_host_beyond_the_allowed_ones() -> None:
    seen: set[str] = set()
    for path in infra_text_files():
        hosts = {h.lower() for h in HOST.findall(path.read_text(encoding="utf-8"))}
        assert hosts <= ALLOWED_HOSTS, f"{path.relative_to(bicep.ROOT)}: {hosts - ALLOWED_HOSTS}"
        seen |= hosts
    assert "graph.microsoft.com" in seen  # the scan reads the files it should


# --- suppressions ------------------------------------------------------------------------------


def test_every_scanner_suppression_is_justified() -> None:
    pattern = re.compile(r"checkov:skip=(CKV2?_[A-Z]+_\d+)(?::(.*))?")
    seen = 0
    for path in bicep.bicep_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            match = pattern.search(line)
            if match:
                seen += 1
                reason = (match.group(2) or "").strip()
                assert len(reason) >= 30, (
                    f"{path.name}: {match.group(1)} needs a reason: {line.strip()}"
                )
    assert seen > 0
