"""The azd hooks (infra/hooks/devicemon_hooks.py) with `az`, `azd` and HTTP replaced by fakes."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from infra.hooks import devicemon_hooks as hooks
from tests.infra import bicep

GRAPH_SP = "graph-sp-object-id"
ROLE_IDS = {
    "Device.Read.All": "role-device-read",
    "Policy.Read.All": "role-policy-read",
    "DeviceManagementManagedDevices.Read.All": "role-intune-read",
    "DeviceManagementConfiguration.Read.All": "role-intune-config-read",
    "DeviceManagementManagedDevices.PrivilegedOperations.All": "role-intune-privileged",
    "User.Read.All": "role-user-read",
}
PRINCIPAL = "mi-principal-id"
APP_URL = "https://func-devicemon-x.azurewebsites.net"


class FakeAzure:
    """Answers the `az` / `azd` commands the hooks run; records every call."""

    def __init__(
        self,
        assigned: Sequence[str] = (),
        fail_posts: int = 0,
        fail_message: str = "",
        azd_version: str = '{"azd": {"version": "1.23.0", "commit": "0123abc"}}',
    ) -> None:
        self.azd_version = azd_version
        self.calls: list[list[str]] = []
        self.assigned = {ROLE_IDS[r]: f"assignment-{r}" for r in assigned}
        self.fail_posts = fail_posts
        self.fail_message = fail_message
        self.env_set: dict[str, str] = {}

    def __call__(self, args: Sequence[str]) -> str:
        args = list(args)
        self.calls.append(args)
        if args[:3] == ["azd", "env", "set"]:
            self.env_set[args[3]] = args[4]
            return ""
        if args[:2] == ["azd", "version"]:
            if not self.azd_version:
                raise hooks.HookError("`azd version ...` failed: unknown command")
            return self.azd_version
        if args[:3] == ["azd", "env", "get-values"]:
            return json.dumps({"AZURE_MANAGED_IDENTITY_PRINCIPAL_ID": PRINCIPAL})
        if args[:4] == ["az", "ad", "sp", "show"]:
            roles = [{"id": i, "value": v} for v, i in ROLE_IDS.items()]
            return json.dumps({"id": GRAPH_SP, "appRoles": roles})
        if args[:2] == ["az", "rest"]:
            method = args[args.index("--method") + 1]
            url = args[args.index("--url") + 1]
            if method == "get":
                value = [
                    {"id": a, "appRoleId": r, "resourceId": GRAPH_SP}
                    for r, a in self.assigned.items()
                ]
                value.append({"id": "other", "appRoleId": "x", "resourceId": "another-api"})
                return json.dumps({"value": value})
            if method == "post":
                if self.fail_posts:
                    self.fail_posts -= 1
                    raise hooks.HookError(self.fail_message)
                body = json.loads(args[args.index("--body") + 1])
                assert body["principalId"] == PRINCIPAL and body["resourceId"] == GRAPH_SP
                assert url.endswith(f"/servicePrincipals/{PRINCIPAL}/appRoleAssignments")
                self.assigned[body["appRoleId"]] = f"assignment-{body['appRoleId']}"
                return ""
            if method == "delete":
                assignment = url.rsplit("/", 1)[1]
                self.assigned = {r: a for r, a in self.assigned.items() if a != assignment}
                return ""
        if args[:4] == ["az", "functionapp", "keys", "list"]:
            return json.dumps({"masterKey": "master", "functionKeys": {"default": "fkey"}})
        raise AssertionError(f"unexpected command {args}")

    def posts(self) -> list[list[str]]:
        return [c for c in self.calls if c[:2] == ["az", "rest"] and "post" in c]


class FakeHttp:
    """The function app: health reports in sequence, and the ops routes."""

    def __init__(self, health: Sequence[hooks.HttpResponse]) -> None:
        self.health = list(health)
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def __call__(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> hooks.HttpResponse:
        self.requests.append((method, url, dict(headers)))
        assert headers.get("x-functions-key") == "fkey"
        if url.startswith(f"{APP_URL}/api/health"):
            return self.health.pop(0) if len(self.health) > 1 else self.health[0]
        if method == "POST" and "/api/ops/" in url:
            return hooks.HttpResponse(202, '{"queued": "x"}', "application/json")
        return hooks.HttpResponse(404, "")


def report(status: str, subscription: str) -> hooks.HttpResponse:
    body = {
        "status": status,
        "problems": [],
        "subscription": {"status": subscription, "expiresAt": "2026-12-01T00:00:00Z"},
    }
    return hooks.HttpResponse(
        200 if status != "unhealthy" else 503, json.dumps(body), "application/json; charset=utf-8"
    )


def make(
    env: dict[str, str], azure: FakeAzure, http: FakeHttp | None = None
) -> tuple[hooks.Context, io.StringIO]:
    out = io.StringIO()
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    ctx = hooks.Context(
        env=env,
        run=azure,
        http=http or FakeHttp([hooks.HttpResponse(404, "")]),
        out=out,
        sleep=sleep,
        clock=lambda: now[0],
    )
    return ctx, out


def deployed_env(**extra: str) -> dict[str, str]:
    env = {
        "AZURE_ENV_NAME": "dev",
        "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID": PRINCIPAL,
        "GRAPH_APP_ROLES": "Device.Read.All,DeviceManagementManagedDevices.Read.All",
        "AZURE_FUNCTION_APP_URL": APP_URL + "/",
        "AZURE_FUNCTION_APP_NAME": "func-devicemon-x",
        "AZURE_RESOURCE_GROUP": "rg-dev",
    }
    env.update(extra)
    return env


# --- preprovision ------------------------------------------------------------------------------


def test_preprovision_generates_the_client_state_once() -> None:
    azure = FakeAzure()
    ctx, _ = make({"AZURE_ENV_NAME": "dev"}, azure)
    assert hooks.preprovision(ctx) == 0
    value = azure.env_set["GRAPH_CLIENT_STATE"]
    assert len(value) == hooks.CLIENT_STATE_LENGTH <= 128 and value.isalnum()
    # Next time it is in the azd environment: kept as it is.
    azure2 = FakeAzure()
    ctx2, _ = make({"AZURE_ENV_NAME": "dev", "GRAPH_CLIENT_STATE": value}, azure2)
    assert hooks.preprovision(ctx2) == 0
    assert azure2.env_set == {}
    assert hooks.new_client_state() != value


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GRAPH_CLIENT_STATE": "short"}, "32 to 128"),
        ({"TEAMS_WEBHOOK_URL": "http://example.test/hook"}, "https://"),
        ({"REMEDIATION_MODE": "yes"}, "REMEDIATION_MODE"),
    ],
)
def test_preprovision_rejects_bad_values(env: dict[str, str], message: str) -> None:
    ctx, _ = make({"GRAPH_CLIENT_STATE": "x" * 40, **env}, FakeAzure())
    with pytest.raises(hooks.HookError, match=message):
        hooks.preprovision(ctx)


@pytest.mark.parametrize(
    ("printed", "allowed"),
    [
        ('{"azd": {"version": "1.9.3", "commit": "e162"}}', False),
        ('{"azd": {"version": "1.10.2", "commit": "x"}}', False),
        ('{"azd": {"version": "1.11.1", "commit": "x"}}', False),
        ('{"azd": {"version": "1.12.0", "commit": "x"}}', True),
        ('{"azd": {"version": "1.31.2", "commit": "x"}}', True),
        ('{"azd": {"version": "2.0.0", "commit": "x"}}', True),
        # Older releases print text even when asked for JSON.
        ("azd version 1.9.3 (commit e1624330dcc7dde440ecc1eda06aac40e68aa0a3)", False),
        ("azd version 1.12.1 (commit 5b92e06)", True),
    ],
)
def test_preprovision_stops_on_an_azd_too_old_for_devicemon(printed: str, allowed: bool) -> None:
    azure = FakeAzure(azd_version=printed)
    ctx, out = make({"AZURE_ENV_NAME": "dev"}, azure)
    if allowed:
        assert hooks.preprovision(ctx) == 0
        assert "GRAPH_CLIENT_STATE" in azure.env_set
    else:
        with pytest.raises(hooks.HookError, match=r"needs azd 1\.12\.0 or later"):
            hooks.preprovision(ctx)
        # Nothing generated: the next run, on a newer azd, starts clean.
        assert azure.env_set == {}
    assert "warning" not in out.getvalue()


@pytest.mark.parametrize("printed", ["", '{"azd": {"version": "0.0.0-dev.0", "commit": "x"}}'])
def test_an_unknown_azd_version_is_a_warning(printed: str) -> None:
    ctx, out = make({"AZURE_ENV_NAME": "dev"}, FakeAzure(azd_version=printed))
    assert hooks.preprovision(ctx) == 0
    assert "warning: could not tell the azd version; devicemon needs azd 1.12.0" in out.getvalue()


def test_the_deploy_guide_states_the_azd_version_the_hook_checks() -> None:
    guide = (bicep.ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    wanted = ".".join(map(str, hooks.MIN_AZD))
    assert f"azd {wanted} or later" in guide


# --- grant-graph -------------------------------------------------------------------------------


def test_grant_graph_assigns_only_what_is_missing() -> None:
    azure = FakeAzure(assigned=["Device.Read.All"])
    ctx, out = make(deployed_env(), azure)
    assert hooks.grant_graph(ctx) == 0
    assert len(azure.posts()) == 1
    assert set(azure.assigned) == {"role-device-read", "role-intune-read"}
    assert "Device.Read.All: already granted" in out.getvalue()
    # Idempotent: a second run posts nothing.
    again = FakeAzure(assigned=["Device.Read.All", "DeviceManagementManagedDevices.Read.All"])
    ctx2, _ = make(deployed_env(), again)
    assert hooks.grant_graph(ctx2) == 0
    assert again.posts() == []


def test_grant_graph_prunes_only_devicemon_permissions_no_longer_needed() -> None:
    azure = FakeAzure(
        assigned=[
            "Device.Read.All",
            "DeviceManagementManagedDevices.PrivilegedOperations.All",
            "User.Read.All",
        ]
    )
    ctx, _ = make(deployed_env(GRAPH_APP_ROLES="Device.Read.All"), azure)
    assert hooks.grant_graph(ctx, prune=True) == 0
    assert set(azure.assigned) == {"role-device-read", "role-user-read"}


def test_grant_graph_waits_for_a_new_identity_to_replicate() -> None:
    azure = FakeAzure(fail_posts=2, fail_message="Not a valid reference update.")
    ctx, _ = make(deployed_env(GRAPH_APP_ROLES="Device.Read.All"), azure)
    assert hooks.grant_graph(ctx) == 0
    assert "role-device-read" in azure.assigned


def test_grant_graph_reports_a_refusal() -> None:
    azure = FakeAzure(
        fail_posts=1, fail_message="Authorization_RequestDenied: Insufficient privileges"
    )
    ctx, _ = make(deployed_env(GRAPH_APP_ROLES="Device.Read.All"), azure)
    with pytest.raises(hooks.HookError, match="Insufficient privileges"):
        hooks.grant_graph(ctx)


def test_grant_graph_refuses_permissions_it_does_not_know() -> None:
    ctx, _ = make(
        deployed_env(GRAPH_APP_ROLES="Device.Read.All,Directory.ReadWrite.All"), FakeAzure()
    )
    with pytest.raises(hooks.HookError, match="unexpected"):
        hooks.grant_graph(ctx)


# --- grant-graph for each REMEDIATION_MODE, as main.bicep computes GRAPH_APP_ROLES ------------

READ = "Device.Read.All"
POLICIES = "Policy.Read.All"
INTUNE = "DeviceManagementManagedDevices.Read.All"
# Intune's compliance policy states, for the failing settings of a lost alert (issue 16).
CONFIG = "DeviceManagementConfiguration.Read.All"
PRIVILEGED = "DeviceManagementManagedDevices.PrivilegedOperations.All"
# What the identity must end up with: privileged operations only when remediation really acts.
EXPECTED_PERMISSIONS = [
    ("off", True, {READ, INTUNE, CONFIG, POLICIES}),
    ("dry-run", True, {READ, INTUNE, CONFIG, POLICIES}),
    ("on", True, {READ, INTUNE, CONFIG, PRIVILEGED, POLICIES}),
    ("off", False, {READ, POLICIES}),
    ("dry-run", False, {READ, POLICIES}),
    ("on", False, {READ, PRIVILEGED, POLICIES}),
]


def app_roles_output(remediation_mode: str, intune_enabled: bool) -> str:
    """GRAPH_APP_ROLES as `azd provision` would store it for these settings."""
    main = bicep.template("main.bicep")
    params = {"remediationMode": remediation_mode, "intuneEnabled": intune_enabled}
    value = bicep.evaluate(main, main["outputs"]["GRAPH_APP_ROLES"]["value"], params)
    assert isinstance(value, str)
    return value


def granted(azure: FakeAzure) -> set[str]:
    names = {role_id: name for name, role_id in ROLE_IDS.items()}
    return {names[role_id] for role_id in azure.assigned}


@pytest.mark.parametrize(
    ("mode", "intune", "expected"),
    EXPECTED_PERMISSIONS,
    ids=[f"{m}-intune-{'on' if i else 'off'}" for m, i, _ in EXPECTED_PERMISSIONS],
)
def test_grant_graph_grants_exactly_what_the_settings_need(
    mode: str, intune: bool, expected: set[str]
) -> None:
    env = deployed_env(GRAPH_APP_ROLES=app_roles_output(mode, intune), REMEDIATION_MODE=mode)
    azure = FakeAzure()
    ctx, _ = make(env, azure)
    assert hooks.postprovision(ctx) == 1  # nothing granted yet: azd up stops before deploy
    assert hooks.grant_graph(ctx) == 0
    assert granted(azure) == expected
    assert len(azure.posts()) == len(expected)  # one assignment each, nothing else
    ctx, out = make(env, azure)
    assert hooks.postprovision(ctx) == 0  # and now deploy goes ahead
    assert "in place" in out.getvalue()


def test_turning_remediation_off_prunes_the_privileged_permission() -> None:
    azure = FakeAzure()
    ctx, _ = make(deployed_env(GRAPH_APP_ROLES=app_roles_output("on", True)), azure)
    assert hooks.grant_graph(ctx) == 0
    assert PRIVILEGED in granted(azure)
    for mode in ("dry-run", "off"):
        ctx, _ = make(deployed_env(GRAPH_APP_ROLES=app_roles_output(mode, True)), azure)
        assert hooks.grant_graph(ctx, prune=True) == 0
        assert granted(azure) == {READ, POLICIES, INTUNE, CONFIG}


# --- postprovision -----------------------------------------------------------------------------


def test_postprovision_stops_before_deploy_until_an_administrator_grants() -> None:
    ctx, out = make(deployed_env(), FakeAzure(assigned=["Device.Read.All"]))
    assert hooks.postprovision(ctx) == 1  # `azd up` stops: no deploy, no Graph token cached yet
    text = out.getvalue()
    assert "DeviceManagementManagedDevices.Read.All" in text and "grant-graph" in text
    assert "Device.Read.All," not in text  # already granted, not listed
    assert "azd deploy" in text


def test_postprovision_passes_once_granted_or_when_told_to() -> None:
    both = ["Device.Read.All", "DeviceManagementManagedDevices.Read.All"]
    ctx, out = make(deployed_env(), FakeAzure(assigned=both))
    assert hooks.postprovision(ctx) == 0
    assert "in place" in out.getvalue()
    ctx, _ = make(deployed_env(DEVICEMON_DEPLOY_WITHOUT_GRAPH="true"), FakeAzure())
    assert hooks.postprovision(ctx) == 0


def test_postprovision_continues_when_the_directory_cannot_be_read() -> None:
    azure = FakeAzure()

    def denied(args: Sequence[str]) -> str:
        if list(args[:4]) == ["az", "ad", "sp", "show"]:
            raise hooks.HookError("Insufficient privileges to complete the operation.")
        return azure(args)

    ctx, out = make(deployed_env(), FakeAzure())
    ctx.run = denied
    assert hooks.postprovision(ctx) == 0
    assert "grant-graph" in out.getvalue()


def test_postprovision_checks_the_directory_whatever_the_environment_says() -> None:
    """Only the directory counts: an environment provisioned before the Bicep extension path was
    removed may still hold its old GRAPH_PERMISSIONS_GRANTED=true output, and it changes nothing."""
    azure = FakeAzure()
    ctx, out = make(deployed_env(GRAPH_PERMISSIONS_GRANTED="true"), azure)
    assert hooks.postprovision(ctx) == 1
    assert "stopping before deploy" in out.getvalue()
    assert any(c[:4] == ["az", "ad", "sp", "show"] for c in azure.calls)


# --- postdeploy --------------------------------------------------------------------------------


def test_postdeploy_waits_for_the_app_then_queues_sync_and_subscription() -> None:
    both = ["Device.Read.All", "DeviceManagementManagedDevices.Read.All"]
    http = FakeHttp(
        [
            hooks.HttpResponse(503, "<html>starting</html>", "text/html"),
            report("unhealthy", "none"),
            report("degraded", "creating"),
            report("healthy", "active"),
        ]
    )
    ctx, out = make(deployed_env(), FakeAzure(assigned=both), http)
    assert hooks.postdeploy(ctx, timeout=120) == 0
    posted = [url for method, url, _ in http.requests if method == "POST"]
    assert posted == [
        f"{APP_URL}/api/ops/sync?reason=azd-postdeploy",
        f"{APP_URL}/api/ops/subscription?reason=azd-postdeploy",
    ]
    assert "subscription active" in out.getvalue()


def test_postdeploy_stops_at_missing_consent() -> None:
    http = FakeHttp([report("unhealthy", "none")])
    ctx, out = make(deployed_env(), FakeAzure(assigned=[]), http)
    assert hooks.postdeploy(ctx, timeout=60) == 0
    assert not [r for r in http.requests if r[0] == "POST"]
    assert "grant-graph" in out.getvalue()


def test_postdeploy_fails_when_the_app_never_answers() -> None:
    http = FakeHttp([hooks.HttpResponse(404, "")])
    ctx, out = make(deployed_env(), FakeAzure(), http)
    assert hooks.postdeploy(ctx, timeout=30) == 1
    assert "did not answer" in out.getvalue()


def test_postdeploy_reports_a_refused_subscription_without_failing() -> None:
    both = ["Device.Read.All", "DeviceManagementManagedDevices.Read.All"]
    http = FakeHttp([report("degraded", "refused")])
    ctx, out = make(deployed_env(), FakeAzure(assigned=both), http)
    assert hooks.postdeploy(ctx, timeout=30) == 0
    assert "not active yet" in out.getvalue()


# --- plumbing ----------------------------------------------------------------------------------


def test_env_comes_from_azd_when_run_by_hand() -> None:
    env = hooks.load_env(FakeAzure(), {"PATH": "/bin"})
    assert env["AZURE_MANAGED_IDENTITY_PRINCIPAL_ID"] == PRINCIPAL
    under_azd = FakeAzure()
    assert hooks.load_env(under_azd, {"AZURE_ENV_NAME": "dev"}) == {"AZURE_ENV_NAME": "dev"}
    assert under_azd.calls == []


def test_missing_outputs_are_named() -> None:
    ctx, _ = make({}, FakeAzure())
    with pytest.raises(hooks.HookError, match="AZURE_FUNCTION_APP_URL"):
        hooks.postdeploy(ctx)


def test_main_turns_errors_into_exit_code_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(hooks, "run_command", FakeAzure())
    monkeypatch.setattr(hooks.os, "environ", {"AZURE_ENV_NAME": "dev"})
    assert hooks.main(["grant-graph"]) == 1
    assert "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID" in capsys.readouterr().out


def test_http_refuses_plain_http() -> None:
    with pytest.raises(hooks.HookError):
        hooks.http_request("GET", "http://example.test/", {}, None)


def test_only_a_json_health_report_means_the_app_is_up() -> None:
    assert hooks.health_report(hooks.HttpResponse(200, "not json", "application/json")) is None
    assert hooks.health_report(hooks.HttpResponse(503, "<html/>", "text/html")) is None
    assert hooks.health_report(hooks.HttpResponse(404, "{}", "application/json")) is None
    up: Any = hooks.health_report(report("unhealthy", "none"))
    assert up["status"] == "unhealthy"


def test_grant_graph_runs_without_an_azd_environment() -> None:
    def no_azd(args: Sequence[str]) -> str:
        if args[0] == "azd":
            raise hooks.HookError("no project exists; run `azd init`")
        return FakeAzure()(args)

    env = hooks.load_env(
        no_azd,
        {"AZURE_MANAGED_IDENTITY_PRINCIPAL_ID": PRINCIPAL, "GRAPH_APP_ROLES": "Device.Read.All"},
    )
    ctx, out = make(env, FakeAzure())
    assert hooks.grant_graph(ctx) == 0
    assert "Device.Read.All: granted" in out.getvalue()
