"""azd hooks for devicemon (azure.yaml), and the Graph permission grant an administrator runs.

    python infra/hooks/devicemon_hooks.py preprovision     # before `azd provision`
    python infra/hooks/devicemon_hooks.py postprovision    # after it: Graph permission status
    python infra/hooks/devicemon_hooks.py postdeploy       # after `azd deploy`: sync + subscription
    python infra/hooks/devicemon_hooks.py grant-graph [--prune]   # an administrator, once

grant-graph is the only way devicemon's Microsoft Graph application permissions are granted: the
templates in infra/ do not assign them. postprovision stops `azd up` before deploy until they are.

Runs on the deploying machine with the standard library only (not in the project's virtualenv).
Under azd the environment's values (.azure/<env>/.env) arrive as environment variables; run by
hand, they are read with `azd env get-values`. Azure is reached through the Azure CLI (`az`),
signed in as the person running the command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
DEFAULT_GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
# The Graph permissions devicemon may hold; `grant-graph --prune` only ever removes these.
DEVICEMON_APP_ROLES = (
    "Device.Read.All",
    "Policy.Read.All",
    "DeviceManagementManagedDevices.Read.All",
    "DeviceManagementConfiguration.Read.All",
    "DeviceManagementManagedDevices.PrivilegedOperations.All",
)
CLIENT_STATE_LENGTH = 64  # Graph accepts up to 128 characters
# The oldest azd that deploys devicemon (docs/deploy.md, prerequisites): 1.12.0 brings Bicep 0.33.93,
# the first with fail(), which modules/functionapp.bicep uses to stop a zone-redundant plan without
# two always-ready instances; and `azd up` reads GRAPH_CLIENT_STATE, set by this hook, in the same
# run only since 1.10.2 (Azure/azure-dev#3973, fixed by #4363: parameters were cached before hooks).
MIN_AZD = (1, 12, 0)
REMEDIATION_MODES = ("off", "dry-run", "on")


class HookError(RuntimeError):
    """A step failed; the message says what to do."""


Runner = Callable[[Sequence[str]], str]


@dataclass
class HttpResponse:
    status: int
    body: str
    content_type: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


Http = Callable[[str, str, Mapping[str, str], bytes | None], HttpResponse]


@dataclass
class Context:
    """What a hook needs from the outside world; tests replace every part."""

    env: dict[str, str]
    run: Runner
    http: Http
    out: TextIO = field(default_factory=lambda: sys.stdout)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def say(self, message: str) -> None:
        print(f"devicemon: {message}", file=self.out, flush=True)

    def require(self, *names: str) -> list[str]:
        missing = [n for n in names if not self.env.get(n)]
        if missing:
            raise HookError(
                f"{', '.join(missing)} not set in the azd environment: run `azd provision` first"
            )
        return [self.env[n] for n in names]


# --- the outside world -------------------------------------------------------------------------


def run_command(args: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise HookError(
            f"`{args[0]}` is not installed (see docs/deploy.md, prerequisites)"
        ) from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise HookError(f"`{' '.join(args[:3])} ...` failed: {detail}")
    return done.stdout


def http_request(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None
) -> HttpResponse:
    if not url.startswith("https://"):
        raise HookError(f"refusing a non-HTTPS URL: {url}")
    # https only (checked above): no file: or custom schemes.
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return HttpResponse(
                response.status,
                response.read().decode("utf-8", "replace"),
                response.headers.get("Content-Type", ""),
            )
    except urllib.error.HTTPError as error:
        return HttpResponse(
            error.code,
            error.read().decode("utf-8", "replace"),
            error.headers.get("Content-Type", "") if error.headers else "",
        )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        return HttpResponse(0, str(error))


def azd_env_values(run: Runner) -> dict[str, str]:
    try:
        values = json.loads(run(["azd", "env", "get-values", "--output", "json"]))
    except (HookError, json.JSONDecodeError):
        return {}
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}


def load_env(run: Runner, environ: Mapping[str, str]) -> dict[str, str]:
    """Under azd the process environment already holds the azd environment (AZURE_ENV_NAME is
    always in it); run by hand, read it with `azd env get-values` and let the process override."""
    merged = {} if environ.get("AZURE_ENV_NAME") else azd_env_values(run)
    merged.update(environ)
    return merged


def az_json(ctx: Context, *args: str) -> Any:
    text = ctx.run(["az", *args, "--output", "json"])
    return json.loads(text) if text.strip() else None


# --- preprovision ------------------------------------------------------------------------------


def new_client_state() -> str:
    # Letters and digits only: no character that a shell, `azd env set` or Graph could mangle.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(CLIENT_STATE_LENGTH))


def parse_azd_version(text: str) -> tuple[int, int, int] | None:
    """The version `azd version` prints (JSON or text); None for a dev build or no version."""
    try:
        version = str(json.loads(text)["azd"]["version"])
    except (json.JSONDecodeError, KeyError, TypeError):
        version = text
    found = re.search(r"(\d+)\.(\d+)\.(\d+)(\S*)", version)
    if found is None or "dev" in found.group(4):
        return None
    return (int(found.group(1)), int(found.group(2)), int(found.group(3)))


def check_azd(ctx: Context) -> None:
    """Stop before anything is generated or provisioned when azd is too old for devicemon."""
    wanted = ".".join(map(str, MIN_AZD))
    try:
        found = parse_azd_version(ctx.run(["azd", "version", "--output", "json"]))
    except HookError:
        found = None
    if found is None:
        ctx.say(f"warning: could not tell the azd version; devicemon needs azd {wanted} or later")
    elif found < MIN_AZD:
        raise HookError(
            f"azd {'.'.join(map(str, found))} is too old: devicemon needs azd {wanted} or later "
            "(its Bicep, and GRAPH_CLIENT_STATE read in the same `azd up`); upgrade azd and run "
            "`azd up` again (docs/deploy.md, prerequisites)"
        )


def preprovision(ctx: Context) -> int:
    """Check azd; generate GRAPH_CLIENT_STATE once per azd environment; check the values
    main.bicep takes."""
    check_azd(ctx)
    if not ctx.env.get("GRAPH_CLIENT_STATE"):
        value = new_client_state()
        ctx.run(["azd", "env", "set", "GRAPH_CLIENT_STATE", value])
        ctx.env["GRAPH_CLIENT_STATE"] = value
        ctx.say("generated GRAPH_CLIENT_STATE (kept in this azd environment and in Key Vault)")
    elif not 32 <= len(ctx.env["GRAPH_CLIENT_STATE"]) <= 128:
        raise HookError("GRAPH_CLIENT_STATE must be 32 to 128 characters long")
    teams = ctx.env.get("TEAMS_WEBHOOK_URL", "")
    if teams and not teams.startswith("https://"):
        raise HookError("TEAMS_WEBHOOK_URL must be the https:// URL of the Teams Workflows flow")
    mode = ctx.env.get("REMEDIATION_MODE", "off") or "off"
    if mode not in REMEDIATION_MODES:
        raise HookError(f"REMEDIATION_MODE={mode!r} is not one of {', '.join(REMEDIATION_MODES)}")
    if mode == "on":
        ctx.say(
            "REMEDIATION_MODE=on: the identity also needs "
            "DeviceManagementManagedDevices.PrivilegedOperations.All (grant-graph)"
        )
    return 0


# --- Graph application permissions -------------------------------------------------------------


def wanted_app_roles(env: Mapping[str, str]) -> list[str]:
    return [r.strip() for r in env.get("GRAPH_APP_ROLES", "").split(",") if r.strip()]


def graph_base(env: Mapping[str, str]) -> str:
    return (env.get("GRAPH_BASE_URL") or DEFAULT_GRAPH_BASE_URL).rstrip("/")


def graph_app_roles(ctx: Context) -> tuple[str, dict[str, str]]:
    """Microsoft Graph's service principal id in this tenant, and its app role ids by value."""
    sp = az_json(ctx, "ad", "sp", "show", "--id", GRAPH_APP_ID)
    roles = {r["value"]: r["id"] for r in sp.get("appRoles", []) if r.get("value")}
    return sp["id"], roles


def current_assignments(ctx: Context, principal_id: str, graph_sp_id: str) -> dict[str, str]:
    """The identity's app role assignments on Microsoft Graph: app role id -> assignment id."""
    url = f"{graph_base(ctx.env)}/servicePrincipals/{principal_id}/appRoleAssignments"
    found: dict[str, str] = {}
    while url:
        page = az_json(ctx, "rest", "--method", "get", "--url", url)
        for item in page.get("value", []):
            if item.get("resourceId") == graph_sp_id:
                found[item["appRoleId"]] = item["id"]
        url = page.get("@odata.nextLink", "")
    return found


def grant_graph(ctx: Context, *, prune: bool = False, attempts: int = 6) -> int:
    """Assign the Graph app roles in GRAPH_APP_ROLES to the managed identity (idempotent).

    For a managed identity this is the admin consent: the caller needs Privileged Role
    Administrator (or Global Administrator) in Microsoft Entra ID.
    """
    (principal_id,) = ctx.require("AZURE_MANAGED_IDENTITY_PRINCIPAL_ID")
    wanted = wanted_app_roles(ctx.env)
    if not wanted:
        raise HookError("GRAPH_APP_ROLES is empty: run `azd provision` first")
    unknown = [r for r in wanted if r not in DEVICEMON_APP_ROLES]
    if unknown:
        raise HookError(f"unexpected Graph permissions in GRAPH_APP_ROLES: {', '.join(unknown)}")
    graph_sp_id, role_ids = graph_app_roles(ctx)
    have = current_assignments(ctx, principal_id, graph_sp_id)
    url = f"{graph_base(ctx.env)}/servicePrincipals/{principal_id}/appRoleAssignments"
    for role in wanted:
        role_id = role_ids.get(role)
        if role_id is None:
            raise HookError(f"Microsoft Graph has no application permission {role}")
        if role_id in have:
            ctx.say(f"{role}: already granted")
            continue
        body = json.dumps(
            {"principalId": principal_id, "resourceId": graph_sp_id, "appRoleId": role_id}
        )
        for attempt in range(1, attempts + 1):
            try:
                ctx.run(
                    [
                        *("az", "rest", "--method", "post", "--url", url),
                        *("--headers", "Content-Type=application/json", "--body", body),
                        *("--output", "none"),
                    ]
                )
                break
            except HookError as error:
                # A new identity takes a while to replicate in Entra ID ("not a valid reference").
                if attempt == attempts or "valid reference" not in str(error).lower():
                    raise
                ctx.sleep(10)
        ctx.say(f"{role}: granted")
    if prune:
        by_id = {role_id: value for value, role_id in role_ids.items()}
        for role_id, assignment_id in have.items():
            role = by_id.get(role_id, "")
            if role in DEVICEMON_APP_ROLES and role not in wanted:
                ctx.run(["az", "rest", "--method", "delete", "--url", f"{url}/{assignment_id}"])
                ctx.say(f"{role}: removed (no longer needed)")
    return 0


def missing_app_roles(ctx: Context) -> list[str] | None:
    """Wanted roles the identity lacks; None when the directory cannot be read."""
    try:
        (principal_id,) = ctx.require("AZURE_MANAGED_IDENTITY_PRINCIPAL_ID")
        graph_sp_id, role_ids = graph_app_roles(ctx)
        have = current_assignments(ctx, principal_id, graph_sp_id)
    except (HookError, KeyError, TypeError, json.JSONDecodeError):
        return None
    return [r for r in wanted_app_roles(ctx.env) if role_ids.get(r) not in have]


def consent_instructions(ctx: Context, missing: Sequence[str]) -> None:
    ctx.say(
        "the managed identity still needs these Microsoft Graph application permissions: "
        + ", ".join(missing)
    )
    ctx.say(
        "an administrator (Privileged Role Administrator or Global Administrator) grants them "
        "with: python infra/hooks/devicemon_hooks.py grant-graph   (docs/deploy.md, step 3)"
    )


def postprovision(ctx: Context) -> int:
    """Stop before deploy while the identity lacks its Graph permissions.

    Entra ID caches a managed identity's token, permissions included, for up to about 24 hours,
    and the app asks for its Graph token within minutes of being deployed (the delta sync timer):
    deployed before the consent, it would keep getting 403 from Graph for hours. So `azd up` stops
    here until an administrator grants them (then `azd deploy`), unless
    DEVICEMON_DEPLOY_WITHOUT_GRAPH=true.
    """
    wanted = wanted_app_roles(ctx.env)
    missing = missing_app_roles(ctx)
    if missing == []:
        ctx.say(f"Graph permissions in place: {', '.join(wanted)}")
        return 0
    consent_instructions(ctx, wanted if missing is None else missing)
    if missing is None:
        ctx.say("(could not read the identity's permissions with your sign-in; continuing)")
        return 0
    if ctx.env.get("DEVICEMON_DEPLOY_WITHOUT_GRAPH", "").lower() == "true":
        ctx.say("DEVICEMON_DEPLOY_WITHOUT_GRAPH=true: deploying anyway")
        return 0
    ctx.say(
        "stopping before deploy: Entra ID caches the app's Graph token, permissions included, "
        "for up to 24 hours, so grant first and then run `azd deploy` (docs/deploy.md, step 3)"
    )
    return 1


# --- postdeploy: first sync and the Graph subscription ----------------------------------------


def function_key(ctx: Context) -> str:
    """The app's default function key (GET /api/health and POST /api/ops/* need one)."""
    rg, app = ctx.require("AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME")
    keys = az_json(ctx, "functionapp", "keys", "list", "--resource-group", rg, "--name", app)
    key = (keys.get("functionKeys") or {}).get("default") or keys.get("masterKey")
    if not key:
        raise HookError(f"no function key found on {app}")
    return str(key)


def health(ctx: Context, base_url: str, key: str) -> HttpResponse:
    return ctx.http("GET", f"{base_url}/api/health", {"x-functions-key": key}, None)


def health_report(response: HttpResponse) -> dict[str, Any] | None:
    """The JSON report of GET /api/health: 200 healthy or degraded, 503 unhealthy. Anything else
    (404, or a 503 page while the host starts) means the app is not up yet."""
    if response.status not in (200, 503) or "json" not in response.content_type:
        return None
    try:
        report = response.json()
    except ValueError:
        return None
    return report if isinstance(report, dict) and "status" in report else None


def wait_for(
    ctx: Context,
    base_url: str,
    key: str,
    timeout: float,
    done: Callable[[dict[str, Any]], bool],
) -> dict[str, Any] | None:
    """Poll the health report until `done(report)`; the last report seen, or None if none came."""
    deadline = ctx.clock() + timeout
    last: dict[str, Any] | None = None
    while True:
        report = health_report(health(ctx, base_url, key))
        if report is not None:
            last = report
            if done(report):
                return report
        if ctx.clock() >= deadline:
            return last
        ctx.sleep(10)


def subscription_active(report: Mapping[str, Any]) -> bool:
    return (report.get("subscription") or {}).get("status") == "active"


def postdeploy(ctx: Context, *, timeout: float = 300.0) -> int:
    """Once the app answers, queue a delta sync and the subscription upkeep now (POST
    /api/ops/sync and /api/ops/subscription) instead of waiting for their timers, and report."""
    (base_url,) = ctx.require("AZURE_FUNCTION_APP_URL")
    base_url = base_url.rstrip("/")
    key = function_key(ctx)
    ctx.say(f"waiting for {base_url}/api/health ...")
    if wait_for(ctx, base_url, key, timeout, lambda report: True) is None:
        ctx.say(
            f"the app did not answer within {int(timeout)} s; look at its logs in Application "
            "Insights, then run `azd hooks run postdeploy`"
        )
        return 1
    missing = missing_app_roles(ctx)
    if missing:
        consent_instructions(ctx, missing)
        ctx.say("then start the sync and the subscription with: azd hooks run postdeploy")
        return 0
    for command in ("sync", "subscription"):
        response = ctx.http(
            "POST",
            f"{base_url}/api/ops/{command}?reason=azd-postdeploy",
            {"x-functions-key": key},
            b"",
        )
        if response.status != 202:
            raise HookError(
                f"POST /api/ops/{command}: HTTP {response.status} {response.body[:300]}"
            )
        ctx.say(f"queued: {command}")
    report = wait_for(ctx, base_url, key, timeout, subscription_active)
    if report is None:
        return 1
    subscription = report.get("subscription") or {}
    ctx.say(
        f"health: {report.get('status')}; subscription {subscription.get('status')}"
        + (f", expires {subscription['expiresAt']}" if subscription.get("expiresAt") else "")
    )
    for problem in report.get("problems") or []:
        ctx.say(f"  {problem}")
    if not subscription_active(report):
        ctx.say(
            "the subscription is not active yet: Graph may have refused it (see lastError in "
            "GET /api/health); the delta sync still sees every change (docs/deploy.md, step 5)"
        )
    return 0


# --- entry point -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "hook", choices=["preprovision", "postprovision", "postdeploy", "grant-graph"]
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="grant-graph: also remove devicemon permissions no longer needed",
    )
    args = parser.parse_args(argv)
    ctx = Context(env=load_env(run_command, os.environ), run=run_command, http=http_request)
    try:
        if args.hook == "preprovision":
            return preprovision(ctx)
        if args.hook == "postprovision":
            return postprovision(ctx)
        if args.hook == "postdeploy":
            return postdeploy(ctx, timeout=float(ctx.env.get("DEVICEMON_HEALTH_TIMEOUT", "300")))
        return grant_graph(ctx, prune=args.prune)
    except HookError as error:
        ctx.say(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
