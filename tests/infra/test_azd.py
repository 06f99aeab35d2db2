"""azure.yaml, infra/main.parameters.json and the hooks agree with main.bicep."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import yaml

from infra.hooks import devicemon_hooks as hooks
from tests.infra import bicep

HOOKS_SOURCE = bicep.INFRA / "hooks" / "devicemon_hooks.py"
PLACEHOLDER = re.compile(r"^\$\{(?P<var>[A-Z_][A-Z0-9_]*)(?:=(?P<default>[^}]*))?\}$")


def azure_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((bicep.ROOT / "azure.yaml").read_text(encoding="utf-8"))
    return loaded


def parameters() -> dict[str, str]:
    data = json.loads((bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    return {name: entry["value"] for name, entry in data["parameters"].items()}


def test_azure_yaml_deploys_the_root_as_a_python_function_app() -> None:
    config = azure_yaml()
    assert config["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert config["services"] == {"api": {"project": ".", "language": "python", "host": "function"}}
    assert (bicep.ROOT / "function_app.py").exists() and (bicep.ROOT / "host.json").exists()


def test_azd_itself_refuses_a_version_older_than_the_hook_accepts() -> None:
    wanted = ".".join(map(str, hooks.MIN_AZD))
    assert azure_yaml()["requiredVersions"] == {"azd": f">= {wanted}"}


def test_azure_yaml_hooks_run_existing_subcommands() -> None:
    parser_choices = {"preprovision", "postprovision", "postdeploy", "grant-graph"}
    for name, hook in azure_yaml()["hooks"].items():
        for platform in ("posix", "windows"):
            command = hook[platform]["run"].split()
            assert command[1] == "infra/hooks/devicemon_hooks.py"
            assert command[2] == name and name in parser_choices


def test_every_required_parameter_is_supplied_and_nothing_else() -> None:
    main = bicep.template("main.bicep")
    supplied = parameters()
    assert set(supplied) <= set(main["parameters"])
    required = {n for n, p in main["parameters"].items() if p.get("default") is None}
    assert required <= set(supplied), "azd would prompt for these"


def test_parameter_file_defaults_match_the_template() -> None:
    main = bicep.template("main.bicep")
    for name, value in parameters().items():
        match = PLACEHOLDER.match(value)
        assert match, f"{name}: {value!r} is not ${{VAR}} or ${{VAR=default}}"
        if match.group("default") is None:
            continue
        default = bicep.default(main, name)
        expected = str(default).lower() if isinstance(default, bool) else str(default)
        assert match.group("default") == expected, name


def test_hooks_and_parameters_use_the_same_azd_variables() -> None:
    variables = {PLACEHOLDER.match(v).group("var") for v in parameters().values()}  # type: ignore[union-attr]
    # The preprovision hook generates / checks these before main.bicep receives them.
    assert {"GRAPH_CLIENT_STATE", "TEAMS_WEBHOOK_URL", "REMEDIATION_MODE"} <= variables
    assert {"DEVICEMON_DEVELOPER_ACCESS", "AZURE_PRINCIPAL_ID"} <= variables
    # The Graph permissions are granted by grant-graph only: no switch for the deployment.
    assert "GRANT_GRAPH_PERMISSIONS" not in variables
    assert "grantGraphPermissions" not in parameters()


def required_by_hooks() -> set[str]:
    """Names the hooks take from the azd environment with ctx.require(...)."""
    tree = ast.parse(HOOKS_SOURCE.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "require"
        ):
            names.update(
                a.value
                for a in node.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            )
    return names


def read_by_hooks() -> set[str]:
    """Names the hooks read from their environment: ctx.require(...), env.get(...), env[...]."""
    tree = ast.parse(HOOKS_SOURCE.read_text(encoding="utf-8"))
    names = set(required_by_hooks())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            names.add(node.slice.value)
    return {n for n in names if re.fullmatch(r"[A-Z][A-Z0-9_]+", n)}


# Read by the hooks but set by hand (or by azd itself), not by main.bicep.
HOOK_ONLY_VARIABLES = {
    "AZURE_ENV_NAME",
    "DEVICEMON_DEPLOY_WITHOUT_GRAPH",
    "DEVICEMON_HEALTH_TIMEOUT",
    "GRAPH_BASE_URL",
}


def test_hooks_only_need_outputs_main_bicep_provides() -> None:
    outputs = set(bicep.template("main.bicep")["outputs"])
    needed = required_by_hooks() | {"GRAPH_APP_ROLES"}
    assert needed <= outputs, needed - outputs
    # Everything else they read is an azd variable main.parameters.json or a person sets.
    variables = {PLACEHOLDER.match(v).group("var") for v in parameters().values()}  # type: ignore[union-attr]
    unexplained = read_by_hooks() - outputs - variables - HOOK_ONLY_VARIABLES
    assert not unexplained, unexplained
    assert "GRAPH_PERMISSIONS_GRANTED" not in read_by_hooks() | outputs


def test_graph_roles_known_to_the_grant_step_cover_the_template() -> None:
    main = bicep.template("main.bicep")
    text = " ".join(
        bicep.render(main["variables"][v]["value"])
        for v in ("graphAppRoles", "intuneAppRoles", "remediationAppRoles")
    )
    in_template = set(re.findall(r"[A-Za-z]+(?:\.[A-Za-z]+)+\.All", text))
    assert in_template == set(hooks.DEVICEMON_APP_ROLES)


def test_deploy_doc_covers_every_step_and_setting() -> None:
    doc = (bicep.ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for needle in (
        "## Prerequisites",
        "azd up",
        "grant-graph",
        "admin consent",
        "TEAMS_WEBHOOK_URL",
        "devicemon subscription show",
        "/api/health",
        "azd down --purge",
    ):
        assert needle in doc, needle
    for value in parameters().values():
        variable = PLACEHOLDER.match(value).group("var")  # type: ignore[union-attr]
        if not variable.startswith("AZURE_") and variable != "GRAPH_CLIENT_STATE":
            assert f"`{variable}`" in doc, f"docs/deploy.md does not explain {variable}"


def test_deploy_doc_grants_graph_permissions_only_with_the_hook() -> None:
    doc = (bicep.ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    step = doc[doc.index("## 3. Grant the Microsoft Graph permissions") :]
    step = step[: step.index("\n## 4.")]
    # Who runs it, the exact command, what it grants, and why deploy waits for it.
    for needle in (
        "Privileged Role Administrator",
        "Global Administrator",
        "python infra/hooks/devicemon_hooks.py grant-graph",
        *hooks.DEVICEMON_APP_ROLES,
        "only with `REMEDIATION_MODE=on`",
        "stops",
        "24",
    ):
        assert needle in step, needle
    # The Bicep extension path is gone from the docs.
    for gone in ("GRANT_GRAPH_PERMISSIONS", "graph-permissions.bicep", "Bicep extension"):
        assert gone not in doc, gone


def test_the_deployment_package_is_the_app_only() -> None:
    """azd packages the repository root (azure.yaml: project .) minus .funcignore; without one it
    only drops __pycache__ and .venv, so node_modules and .azure/<env>/.env (GRAPH_CLIENT_STATE,
    the Teams URL) would be uploaded."""
    funcignore = bicep.ROOT / ".funcignore"
    assert funcignore.exists(), (
        "no .funcignore at the repository root: azd would upload node_modules and .azure/"
    )
    patterns = {
        line.strip().strip("/")
        for line in funcignore.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for must_go in (".azure", ".venv", "node_modules", "__pycache__", "tests", "local"):
        assert must_go in patterns, f".funcignore must exclude {must_go}"
    for must_stay in ("function_app.py", "host.json", "requirements.txt", "shared", "handlers"):
        assert must_stay not in patterns, f".funcignore must keep {must_stay}"
