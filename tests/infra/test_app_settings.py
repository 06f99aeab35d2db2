"""The function app's settings in infra/ against what the code reads.

Source of truth for the names: local.settings.sample.json (every setting the code reads, with
its meaning) and the triggers' %SETTING% references in function_app.py. In Azure every
connection is identity-based: no connection string, account key or SAS key in any setting.
"""

from __future__ import annotations

import ast
import json
import re

import pytest

from local.devhost.settings import max_request_body_size
from shared.settings import SERVICE_BUS_CONNECTION, TABLES_CONNECTION
from tests.infra import bicep

SAMPLE = bicep.ROOT / "local.settings.sample.json"

# In local.settings.sample.json but not app settings in Azure: the worker runtime comes from
# functionAppConfig on Flex Consumption (setting it is an error there), and the three connection
# strings are the local stack's; Azure uses their identity-based `__` forms instead.
LOCAL_ONLY = {
    "FUNCTIONS_WORKER_RUNTIME",
    "AzureWebJobsStorage",
    SERVICE_BUS_CONNECTION,
    TABLES_CONNECTION,
}

# Being added to the code now (the issue lists them); required even before the sample has them.
ALSO_READ = {
    "SYNC_SCHEDULE",
    "SUBSCRIPTION_SCHEDULE",
    "NOTIFICATION_URL",
    "LIFECYCLE_NOTIFICATION_URL",
    "SUBSCRIPTION_EXPIRY_MINUTES",
    "SYNC_STALE_MINUTES",
    "TEAMS_WEBHOOK_URL",
    "TEAMS_FLAP_WINDOW_MINUTES",
    "TEAMS_FLAP_THRESHOLD",
    "TEAMS_MASS_WINDOW_MINUTES",
    "TEAMS_MASS_THRESHOLD",
    "REMEDIATION_MODE",
    "REMEDIATION_MAX_ACTIONS_PER_HOUR",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

# Azure values that differ from the sample's local ones on purpose.
AZURE_VALUE_DIFFERS = {
    "GRAPH_CLIENT_STATE",  # Key Vault reference
    "ALLOWED_TENANT_IDS",  # the deployment's tenant
    "AZURE_CLIENT_ID",  # the user-assigned identity
    "TEAMS_WEBHOOK_URL",  # Key Vault reference
    "NOTIFICATION_URL",
    "LIFECYCLE_NOTIFICATION_URL",
}

# Settings Flex Consumption rejects or ignores (runtime and package come from functionAppConfig):
# azure-functions docs, functions-app-settings.md "Flex Consumption plan deprecations", and
# flex-consumption-plan.md "Considerations" (time zones); AzureWebJobsStorage as a connection string
# because the host's storage is identity-based here.
FLEX_FORBIDDEN = {
    "ENABLE_ORYX_BUILD",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_DNS_SERVER",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
    "WEBSITE_VNET_ROUTE_ALL",
    "WEBSITE_TIME_ZONE",
    "TZ",
    "AzureWebJobsStorage",
}

SECRET_MARKERS = re.compile(
    r"AccountKey=|SharedAccessKey|SharedAccessSignature|sig=|listKeys|listConnectionStrings"
    r"|primaryConnectionString|secondaryConnectionString|primaryKey|secondaryKey|instrumentationKey",
    re.IGNORECASE,
)


def sample_values() -> dict[str, str]:
    values: dict[str, str] = json.loads(SAMPLE.read_text(encoding="utf-8"))["Values"]
    return {k: v for k, v in values.items() if not k.startswith("//")}


def code_settings() -> set[str]:
    return set(sample_values()) - LOCAL_ONLY


def code_defaults() -> dict[str, str]:
    """Setting name -> default, for every name shared/settings.py reads literally (env.get("X"),
    _int(env, "X", 3, ...), _bool(...), _choice(...)); the default is None-free text or ""."""
    tree = ast.parse((bicep.ROOT / "shared" / "settings.py").read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in {"_int", "_bool", "_choice", "_required"}:
            args = node.args[1:]
        elif (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and isinstance(func.value, ast.Name)
            and func.value.id == "env"
        ):
            args = node.args
        else:
            continue
        if not (isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)):
            continue
        value = args[1] if len(args) > 1 else None
        if isinstance(value, ast.Constant):
            found[args[0].value] = (
                str(value.value).lower() if isinstance(value.value, bool) else str(value.value)
            )
        else:
            found[args[0].value] = ""  # computed or absent: not compared
    return found


def trigger_setting_references() -> set[str]:
    """%NAME% references in the trigger decorators (function_app.py): resolved from app settings."""
    tree = ast.parse((bicep.ROOT / "function_app.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.update(re.findall(r"%([A-Za-z0-9_]+)%", node.value))
    return found


@pytest.fixture(scope="module")
def settings() -> dict[str, bicep.Setting]:
    return bicep.app_settings()


def test_every_setting_the_code_reads_is_set_in_azure(settings: dict[str, bicep.Setting]) -> None:
    required = code_settings() | set(code_defaults()) | ALSO_READ | trigger_setting_references()
    missing = sorted(required - set(settings))
    assert not missing, (
        f"app settings the code reads but infra/ does not set: {missing}. Add them to the "
        "appSettings object in infra/main.bicep (or the host settings in modules/functionapp.bicep)."
    )


def test_no_connection_string_or_key_in_any_setting(settings: dict[str, bicep.Setting]) -> None:
    for name, setting in settings.items():
        assert not SECRET_MARKERS.search(setting.text), f"{name} carries a key: {setting.text}"
        if name.upper().endswith("CONNECTION_STRING") or name.endswith("Connection"):
            # The only one allowed: Application Insights', which holds no secret once local auth
            # is off (ingestion needs the Entra token of APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
            assert name == "APPLICATIONINSIGHTS_CONNECTION_STRING", f"{name} is a connection string"
    for name in (SERVICE_BUS_CONNECTION, TABLES_CONNECTION, "AzureWebJobsStorage"):
        assert name not in settings, f"{name} would be a connection string: use {name}__* settings"


def test_no_key_is_read_anywhere_in_infra() -> None:
    for path in bicep.bicep_files():
        text = path.read_text(encoding="utf-8")
        # listKeys(), listConnectionStrings(), x.listKeys()...: no key ever leaves a resource.
        assert not re.search(r"\blist[A-Z]\w*\(", text), f"{path.name} reads keys"


def test_flex_consumption_settings_are_not_app_settings(settings: dict[str, bicep.Setting]) -> None:
    assert not FLEX_FORBIDDEN & set(settings)


def test_identity_based_connections_use_the_user_assigned_identity(
    settings: dict[str, bicep.Setting],
) -> None:
    client_id = "identity.outputs.clientId"
    for prefix in (SERVICE_BUS_CONNECTION, TABLES_CONNECTION):
        assert settings[f"{prefix}__credential"].text == "managedidentity"
        assert settings[f"{prefix}__clientId"].text == client_id
    assert settings[f"{SERVICE_BUS_CONNECTION}__fullyQualifiedNamespace"].text == (
        "serviceBus.outputs.fullyQualifiedNamespace"
    )
    assert settings[f"{TABLES_CONNECTION}__tableServiceUri"].text == "storage.outputs.tableEndpoint"
    assert settings["AZURE_CLIENT_ID"].text == client_id
    # The Functions host's storage, in functionapp.bicep where the identity is a parameter.
    assert settings["AzureWebJobsStorage__credential"].text == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"].text == "identityClientId"
    assert settings["AzureWebJobsStorage__blobServiceUri"].text == "storageBlobEndpoint"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].text == (
        "ClientId=${identityClientId};Authorization=AAD"
    )
    assert settings["GRAPH_CREDENTIAL"].text == "default"


def test_the_service_bus_namespace_setting_is_a_host_name() -> None:
    servicebus = bicep.template("modules/servicebus.bicep")
    fqns = bicep.render(servicebus["outputs"]["fullyQualifiedNamespace"]["value"])
    # https://<ns>.servicebus.windows.net:443/ -> <ns>.servicebus.windows.net
    assert fqns == "split(replace(namespace.properties.serviceBusEndpoint, https://, ), :)[0]"


def test_secrets_are_key_vault_references(settings: dict[str, bicep.Setting]) -> None:
    assert bicep.KEY_VAULT_REFERENCE.match(settings["GRAPH_CLIENT_STATE"].text)
    teams = settings["TEAMS_WEBHOOK_URL"].expr["operator"]["operands"]
    assert bicep.render(teams["condition"]) == "empty(teamsWebhookUrl)"
    assert teams["true_value"] == ""  # Teams cards off until a URL is configured
    assert bicep.KEY_VAULT_REFERENCE.match(teams["false_value"])
    site = bicep.body(bicep.template("modules/functionapp.bicep")["resources"]["site"])
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"


def test_entity_and_tenant_settings(settings: dict[str, bicep.Setting]) -> None:
    assert settings["DEVICE_CHANGES_QUEUE"].text == "serviceBus.outputs.queueName"
    assert settings["DEVICE_ALERTS_TOPIC"].text == "serviceBus.outputs.topicName"
    main = bicep.template("main.bicep")
    assert main["variables"]["queueName"]["value"] == sample_values()["DEVICE_CHANGES_QUEUE"]
    assert main["variables"]["topicName"]["value"] == sample_values()["DEVICE_ALERTS_TOPIC"]
    assert settings["ALLOWED_TENANT_IDS"].text == "subscription().tenantId"
    assert settings["NOTIFICATION_URL"].text == (
        "https://${site.properties.defaultHostName}/api/graph/notifications"
    )
    assert settings["LIFECYCLE_NOTIFICATION_URL"].text == (
        "https://${site.properties.defaultHostName}/api/graph/lifecycle"
    )


def test_defaults_match_the_documented_ones(settings: dict[str, bicep.Setting]) -> None:
    """Tunables keep local.settings.sample.json's values unless Azure needs another one."""
    sample = sample_values()
    checked = 0
    for name, value in sample.items():
        if name in LOCAL_ONLY or name in AZURE_VALUE_DIFFERS or name not in settings:
            continue
        azure = bicep.literal(settings[name])
        if azure is None:
            continue
        assert azure == value, (
            f"{name}: infra/ sets {azure!r}, local.settings.sample.json {value!r}"
        )
        checked += 1
    assert checked >= 8
    main = bicep.template("main.bicep")
    assert bicep.default(main, "intuneEnabled") is (sample["INTUNE_ENABLED"] == "true")
    assert bicep.render(settings["INTUNE_ENABLED"].expr) == "(intuneEnabled ? true : false)"


def test_defaults_match_the_code(settings: dict[str, bicep.Setting]) -> None:
    """Where infra/ sets a constant (or a parameter's default), it is the code's own default."""
    checked = 0
    for name, value in code_defaults().items():
        if not value or name in AZURE_VALUE_DIFFERS or name not in settings:
            continue
        azure = bicep.literal(settings[name])
        if azure is None:
            continue
        assert azure == value, (
            f"{name}: infra/ sets {azure!r}, shared/settings.py defaults to {value!r}"
        )
        checked += 1
    assert checked >= 15


def test_issue_defaults_for_settings_being_added() -> None:
    main = bicep.template("main.bicep")
    expected = {
        "syncSchedule": "0 */1 * * * *",
        "subscriptionSchedule": "0 0 */6 * * *",
        "subscriptionExpiryMinutes": "4320",
        "syncStaleMinutes": "30",
        "remediationMode": "off",
        "tablePrefix": "",
    }
    for param, value in expected.items():
        assert bicep.default(main, param) == value, param
    assert bicep.decorators(main["parameters"]["remediationMode"])["allowed"] == [
        "off",
        "dry-run",
        "on",
    ]


def test_table_prefix_is_the_one_the_tables_are_created_with(
    settings: dict[str, bicep.Setting],
) -> None:
    assert settings["TABLE_PREFIX"].text == "tablePrefix"
    names = bicep.template("main.bicep")["variables"]["tableNames"]["value"]
    assert all(name.startswith("${tablePrefix}") for name in names)


def test_the_host_refuses_bodies_over_what_the_webhook_accepts(
    settings: dict[str, bicep.Setting],
) -> None:
    """The Functions host buffers a request body before the worker runs: its own limit must be
    devicemon's, or an anonymous POST costs up to the host's 100 MB default before the 413."""
    limit = settings["FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"]
    assert limit.origin == "modules/functionapp.bicep"
    # One value, not two copies that can drift apart.
    assert limit.text == "appSettings.MAX_NOTIFICATION_BYTES"
    assert (
        bicep.literal(settings["MAX_NOTIFICATION_BYTES"])
        == code_defaults()["MAX_NOTIFICATION_BYTES"]
    )
    # The dev host emulates the same host setting under the same name.
    assert max_request_body_size({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "1048576"}) == 1_048_576
