"""Role assignments: every one the code needs, each on the narrowest scope, and nothing broader.

What the code needs, and why:
- the Service Bus triggers in function_app.py receive: Data Receiver on the queue and on each
  topic subscription they listen to (not the topic, not the namespace);
- shared/adapters/servicebus.py sends changes and commands to the queue (webhook, sync, ops routes) and
  alerts to the topic: Data Sender on those two entities;
- the tables: Storage Table Data Contributor on each of devicemon's tables, not the account: the
  tables come from storage.bicep, and with an identity the app never creates one
  (shared/adapters/table_adapter.py), which a table-scoped role would refuse;
- the Functions host's blob storage (AzureWebJobsStorage, the deployment package): Storage Blob
  Data Owner on the account;
- the Key Vault references: Key Vault Secrets User on each referenced secret;
- telemetry with local auth off: Monitoring Metrics Publisher on the Application Insights component.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

import pytest

from shared.settings import SERVICE_BUS_CONNECTION
from tests.infra import bicep

RBAC = "modules/rbac.bicep"

QUEUE = "Microsoft.ServiceBus/namespaces/queues"
TOPIC = "Microsoft.ServiceBus/namespaces/topics"
SUBSCRIPTION = "Microsoft.ServiceBus/namespaces/topics/subscriptions"
STORAGE = "Microsoft.Storage/storageAccounts"
TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"
TABLE_ROLE = "Storage Table Data Contributor"
SECRET = "Microsoft.KeyVault/vaults/secrets"
APP_INSIGHTS = "Microsoft.Insights/components"

SENDER = "Azure Service Bus Data Sender"
RECEIVER = "Azure Service Bus Data Receiver"

EXPECTED = {
    ("Storage Blob Data Owner", STORAGE, "hostRoles"),
    (TABLE_ROLE, TABLE, "loop:tableNames"),
    (SENDER, QUEUE, None),
    (RECEIVER, QUEUE, None),
    (SENDER, TOPIC, None),
    (RECEIVER, SUBSCRIPTION, "loop:subscriptionNames"),
    ("Key Vault Secrets User", SECRET, "loop:vaultItemNames"),
    ("Monitoring Metrics Publisher", APP_INSIGHTS, "hostRoles"),
}


@dataclass(frozen=True)
class Assignment:
    role: str
    scope_type: str
    guard: str | None  # the `if` condition, or "loop:<array>" for one per item


def assignments() -> set[Assignment]:
    rbac = bicep.template(RBAC)
    role_ids = rbac["variables"]["roles"]["value"]
    found: set[Assignment] = set()
    for resource in rbac["resources"].values():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        config = bicep.body(resource)
        role_key = (
            bicep.render(config["properties"]["roleDefinitionId"]).split("roles.")[1].rstrip(")")
        )
        scope = bicep.render(config["scope"]).split("[")[0]
        scope_type = rbac["resources"][scope]["type"]
        assert rbac["resources"][scope]["existing"], f"{scope} must be an existing resource"
        loop = bicep.loop(resource)
        guard = f"loop:{loop['array_name']}" if loop else bicep.condition(resource)
        assert config["properties"]["principalId"] == "principalId"
        assert config["properties"]["principalType"] == "principalType"
        found.add(Assignment(bicep.ROLE_NAMES[role_ids[role_key]], scope_type, guard))
    return found


def test_role_ids_are_the_built_in_roles() -> None:
    roles = bicep.template(RBAC)["variables"]["roles"]["value"]
    assert set(roles.values()) <= set(bicep.ROLE_NAMES)


def test_exactly_the_roles_the_code_needs_on_the_narrowest_scopes() -> None:
    assert {(a.role, a.scope_type, a.guard) for a in assignments()} == EXPECTED


def test_nothing_on_a_namespace_vault_group_or_subscription() -> None:
    broad = {
        "Microsoft.ServiceBus/namespaces",
        "Microsoft.KeyVault/vaults",
        "Microsoft.Resources/resourceGroups",
    }
    assert not {a for a in assignments() if a.scope_type in broad}
    for path in bicep.bicep_files():
        parsed = bicep.template(path)
        for name, resource in parsed.get("resources", {}).items():
            if resource["type"] == "Microsoft.Authorization/roleAssignments":
                assert path.name == "rbac.bicep", (
                    f"{path.name}: {name} (role assignments live in rbac.bicep)"
                )


def test_the_table_role_is_on_each_table_and_never_on_the_account() -> None:
    table_roles = {a for a in assignments() if a.role == TABLE_ROLE}
    assert table_roles == {Assignment(TABLE_ROLE, TABLE, "loop:tableNames")}
    assert not {a for a in assignments() if a.scope_type == STORAGE and a.role == TABLE_ROLE}
    rbac = bicep.template(RBAC)
    # One assignment per table of the tableNames parameter, each scoped to that table, named
    # after it (a stable name per table, so a re-provision updates rather than duplicates).
    tables = rbac["resources"]["tables"]
    assert tables["existing"] and bicep.loop(tables) == {
        "item_name": "tableName",
        "array_name": "tableNames",
    }
    assert bicep.render(bicep.body(tables)["parent"]) == "tableService"
    assert bicep.body(rbac["resources"]["tableService"])["name"] == "default"
    assign = rbac["resources"]["tableDataContributors"]
    config = bicep.body(assign)
    assert bicep.render(config["scope"]) == "tables[i]"
    assert (
        bicep.render(config["name"])
        == "guid(tables[i].id, principalId, roles.storageTableDataContributor)"
    )
    assert rbac["variables"]["roles"]["value"]["storageTableDataContributor"] == (
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
    )


def test_both_principals_get_the_tables_storage_created() -> None:
    """The same list storage.bicep creates from main's tableNames, taken from its output so the
    assignments wait for the tables."""
    storage = bicep.template("modules/storage.bicep")
    assert bicep.render(storage["outputs"]["tableNames"]["value"]["config"]) == "tables[i].name"
    main = bicep.template("main.bicep")
    assert bicep.body(main["modules"]["storage"])["params"]["tableNames"] == "tableNames"
    for name, module in rbac_modules().items():
        params = bicep.body(module)["params"]
        assert bicep.render(params["tableNames"]) == "storage.outputs.tableNames", name


def rbac_modules() -> dict[str, dict[str, Any]]:
    main = bicep.template("main.bicep")
    return {n: m for n, m in main["modules"].items() if m["detail"]["path"] == RBAC}


def test_the_app_identity_gets_every_role_on_devicemons_entities() -> None:
    app = next(m for m in rbac_modules().values() if bicep.condition(m) is None)
    params = bicep.body(app)["params"]
    assert bicep.render(params["principalId"]) == "identity.outputs.principalId"
    assert params["principalType"] == "ServicePrincipal"
    assert params["hostRoles"] is True
    assert bicep.render(params["queueName"]) == "serviceBus.outputs.queueName"
    assert bicep.render(params["topicName"]) == "serviceBus.outputs.topicName"
    assert params["subscriptionNames"] == "topicSubscriptionNames"
    assert bicep.render(params["vaultItemNames"]) == "keyVault.outputs.referencedItemNames"


def test_the_deploying_user_gets_the_same_data_roles_only_on_request() -> None:
    dev = next(m for m in rbac_modules().values() if bicep.condition(m) is not None)
    assert bicep.condition(dev) == "(grantDeveloperAccess && !empty(principalId))"
    params = bicep.body(dev)["params"]
    assert params["principalId"] == "principalId"
    assert params["hostRoles"] is False  # no host blob storage, no telemetry publishing
    main = bicep.template("main.bicep")
    assert bicep.default(main, "grantDeveloperAccess") is False


def test_every_referenced_secret_and_only_those_get_a_role() -> None:
    vault = bicep.template("modules/keyvault.bicep")
    items = bicep.render(vault["outputs"]["referencedItemNames"]["value"])
    assert (
        items
        == "(hasTeamsWebhook ? [clientStateSecret.name, teamsWebhookSecret.name] : [clientStateSecret.name])"
    )


def service_bus_triggers() -> list[dict[str, Any]]:
    """The keyword arguments of every service_bus_*_trigger decorator in function_app.py."""
    tree = ast.parse((bicep.ROOT / "function_app.py").read_text(encoding="utf-8"))
    triggers = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.startswith("service_bus_")
        ):
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
            triggers.append({"kind": node.func.attr, **kwargs})
    return triggers


def resolve(name: str) -> str:
    """A trigger's entity name: %SETTING% resolved through the app settings to the Bicep value."""
    if not (name.startswith("%") and name.endswith("%")):
        return name
    setting = bicep.app_settings()[name.strip("%")]
    main = bicep.template("main.bicep")
    text = setting.text  # serviceBus.outputs.queueName -> main's queueName variable
    variable = text.rsplit(".", 1)[-1]
    value: str = main["variables"][variable]["value"]
    return value


def test_the_code_has_service_bus_triggers() -> None:
    kinds = {t["kind"] for t in service_bus_triggers()}
    assert "service_bus_queue_trigger" in kinds


@pytest.mark.parametrize(
    "trigger",
    service_bus_triggers(),
    ids=lambda t: t.get("queue_name") or t.get("subscription_name"),
)
def test_each_trigger_can_receive(trigger: dict[str, Any]) -> None:
    main = bicep.template("main.bicep")
    settings = bicep.app_settings()
    # Identity-based connection for the trigger's connection name.
    connection = trigger.get("connection", "AzureWebJobsServiceBus")
    assert connection == SERVICE_BUS_CONNECTION
    assert f"{connection}__fullyQualifiedNamespace" in settings
    assert settings[f"{connection}__credential"].text == "managedidentity"
    if trigger["kind"] == "service_bus_queue_trigger":
        assert resolve(trigger["queue_name"]) == main["variables"]["queueName"]["value"]
        servicebus = bicep.template("modules/servicebus.bicep")
        queue = bicep.body(servicebus["resources"]["queue"])["properties"]
        assert queue["requiresSession"] is bool(trigger.get("is_sessions_enabled", False))
        assert (RECEIVER, QUEUE, None) in EXPECTED
    elif trigger["kind"] == "service_bus_topic_trigger":
        assert resolve(trigger["topic_name"]) == main["variables"]["topicName"]["value"]
        # Receiver on each topic subscription, through the loop over topicSubscriptionNames.
        assert trigger["subscription_name"] in main["variables"]["topicSubscriptionNames"]["value"]
        assert (RECEIVER, SUBSCRIPTION, "loop:subscriptionNames") in EXPECTED
    else:  # an output binding sends
        entity = trigger.get("queue_name") or trigger.get("topic_name")
        assert entity is not None
        assert resolve(entity) in {
            main["variables"]["queueName"]["value"],
            main["variables"]["topicName"]["value"],
        }


def test_senders_match_what_the_code_sends_to() -> None:
    source = (bicep.ROOT / "shared" / "adapters" / "servicebus.py").read_text(encoding="utf-8")
    assert "get_queue_sender" in source and "get_topic_sender" in source
    assert "get_queue_receiver" not in source and "get_subscription_receiver" not in source
    assert {(SENDER, QUEUE, None), (SENDER, TOPIC, None)} <= EXPECTED


def test_the_app_starts_after_its_roles_exist() -> None:
    """Key Vault references that fail at first start are only retried on restart or after 24 h."""
    main = bicep.template("main.bicep")
    app_rbac = next(n for n, m in rbac_modules().items() if bicep.condition(m) is None)
    assert bicep.body(main["modules"]["functionApp"])["dependsOn"] == [app_rbac]
