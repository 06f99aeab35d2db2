"""Reading infra/*.bicep in tests, offline: pycep-parser turns a template into JSON.

The Bicep CLI cannot be installed here, so nothing is compiled: these helpers read the parsed
templates and render expressions back into Bicep-like text for assertions. pycep does not keep
quotes, so a rendered identifier and a rendered string literal look alike; `symbols()` tells them
apart where it matters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"

# Built-in role definition ids (the same in every tenant) and their names.
ROLE_NAMES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

_BINARY = {
    "equals": "==",
    "not_equals": "!=",
    "greater_than": ">",
    "greater_than_or_equals": ">=",
    "less_than": "<",
    "less_than_or_equals": "<=",
    "and": "&&",
    "or": "||",
    "coalesce": "??",
    "add": "+",
    "substract": "-",
    "multiply": "*",
    "divide": "/",
    "modulo": "%",
}


@cache
def _parser() -> BicepParser:
    return BicepParser()


@cache
def _parse(path: str) -> str:
    # Cached as JSON text so every caller gets its own copy to look at.
    return json.dumps(_parser().parse(text=Path(path).read_text(encoding="utf-8")))


def template(path: Path | str) -> dict[str, Any]:
    """The parsed template: globals, extensions, parameters, variables, resources, modules, outputs."""
    full = Path(path) if Path(path).is_absolute() else INFRA / path
    parsed: dict[str, Any] = json.loads(_parse(str(full)))
    return parsed


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def body(declaration: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's own properties, under any `if` condition or `for` loop."""
    config: dict[str, Any] = declaration["config"]
    while (
        isinstance(config, dict)
        and "config" in config
        and ("condition" in config or "loop_type" in config)
    ):
        config = config["config"]
    return config


def condition(declaration: dict[str, Any]) -> str | None:
    config = declaration["config"]
    if isinstance(config, dict) and config.get("condition") is not None:
        return render(config["condition"])
    return None


def loop(declaration: dict[str, Any]) -> dict[str, Any] | None:
    config = declaration["config"]
    if isinstance(config, dict) and "loop_type" in config:
        detail: dict[str, Any] = config["loop_type"]["detail"]
        return detail
    return None


def render(expr: Any) -> str:
    """An expression as Bicep-like text (string literals lose their quotes)."""
    if expr is None:
        return "null"
    if isinstance(expr, bool):
        return "true" if expr else "false"
    if isinstance(expr, int | float | str):
        return str(expr)
    if isinstance(expr, list):
        return "[" + ", ".join(render(item) for item in expr) + "]"
    if not isinstance(expr, dict):
        raise TypeError(f"unexpected {type(expr).__name__} in a parsed template")
    if "operator" in expr:
        op = expr["operator"]
        kind = op["type"]
        operands = op.get("operands") or {}
        if kind == "property_accessor":
            return f"{render(operands['operand_1'])}.{render(operands['operand_2'])}"
        if kind == "index_accessor":
            return f"{render(operands['operand_1'])}[{render(operands['operand_2'])}]"
        if kind == "conditional":
            return (
                f"({render(operands['condition'])} ? {render(operands['true_value'])}"
                f" : {render(operands['false_value'])})"
            )
        if kind == "not":
            return f"!{render(next(iter(operands.values())))}"
        if kind in _BINARY:
            return (
                f"({render(operands['operand_1'])} {_BINARY[kind]} {render(operands['operand_2'])})"
            )
        return f"{kind}(" + ", ".join(render(v) for v in operands.values()) + ")"
    if "function" in expr:
        fn = expr["function"]
        args = ", ".join(render(v) for v in (fn.get("parameters") or {}).values() if v is not None)
        text = f"{fn['type']}({args})"
        if fn.get("property_name"):
            text += f".{fn['property_name']}"
        return text
    if expr.get("type") == "lambda_expression":
        detail = expr["detail"]
        return f"{detail.get('var_1')} => {render(detail['expression'])}"
    return "{" + ", ".join(f"{k}: {render(v)}" for k, v in expr.items()) + "}"


def symbols(parsed: dict[str, Any]) -> set[str]:
    """Names declared in a template (parameters, variables, resources, modules)."""
    names: set[str] = set()
    for section in ("parameters", "variables", "resources", "modules"):
        names.update(parsed.get(section, {}))
    return names


def default(parsed: dict[str, Any], name: str) -> Any:
    return parsed["parameters"][name].get("default")


class TemplateFailure(Exception):
    """A template's fail('message') was evaluated: the deployment would stop with the message."""


def evaluate(parsed: dict[str, Any], expr: Any, params: Mapping[str, Any]) -> Any:
    """The value of a simple expression of `parsed` for the given parameter values (a parameter
    not given takes its default): literals, object and array literals, parameters, variables,
    `?:`, comparisons, `&&`, `||`, `!`, concat(), join() and fail() (raises TemplateFailure).
    Anything else raises NotImplementedError, so a test notices when a template outgrows it.
    """

    def value(e: Any) -> Any:
        if isinstance(e, bool | int | float) or e is None:
            return e
        if isinstance(e, list):
            return [value(item) for item in e]
        if isinstance(e, str):
            if e in parsed.get("parameters", {}):
                if e in params:
                    return params[e]
                if "default" not in parsed["parameters"][e]:
                    raise KeyError(f"parameter {e} has no default: give its value")
                return parsed["parameters"][e]["default"]
            if e in parsed.get("variables", {}):
                return value(parsed["variables"][e]["value"])
            return e  # a string literal (pycep drops the quotes)
        if isinstance(e, dict) and "operator" in e:
            kind = e["operator"]["type"]
            ops = e["operator"].get("operands") or {}
            if kind == "conditional":
                chosen = "true_value" if value(ops["condition"]) else "false_value"
                return value(ops[chosen])
            if kind == "not":
                return not value(next(iter(ops.values())))
            binary: dict[str, Callable[[Any, Any], Any]] = {
                "equals": lambda x, y: x == y,
                "not_equals": lambda x, y: x != y,
                "less_than": lambda x, y: x < y,
                "less_than_or_equals": lambda x, y: x <= y,
                "greater_than": lambda x, y: x > y,
                "greater_than_or_equals": lambda x, y: x >= y,
                "and": lambda x, y: bool(x) and bool(y),
                "or": lambda x, y: bool(x) or bool(y),
            }
            if kind in binary:
                return binary[kind](value(ops["operand_1"]), value(ops["operand_2"]))
        if isinstance(e, dict) and "function" in e:
            fn = e["function"]
            args = [value(v) for v in (fn.get("parameters") or {}).values() if v is not None]
            if fn["type"] == "concat" and all(isinstance(a, list) for a in args):
                return [item for a in args for item in a]
            if fn["type"] == "join" and len(args) == 2:
                return str(args[1]).join(str(item) for item in args[0])
            if fn["type"] == "fail" and len(args) == 1:
                raise TemplateFailure(str(args[0]))
        if isinstance(e, dict) and not {"operator", "function"} & set(e):
            return {key: value(item) for key, item in e.items()}
        raise NotImplementedError(f"cannot evaluate {render(e)}")

    return value(expr)


def decorators(declaration: dict[str, Any]) -> dict[str, Any]:
    return {d["type"]: d.get("argument") for d in declaration.get("decorators", [])}


KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(SecretUri=\$\{[^}]+\}\)$")


@dataclass(frozen=True)
class Setting:
    """One app setting as the templates set it: where, and the expression."""

    name: str
    expr: Any
    origin: str  # "main.bicep" (module param) or "modules/functionapp.bicep"

    @property
    def text(self) -> str:
        return render(self.expr)


def app_settings() -> dict[str, Setting]:
    """Every app setting of the function app: main.bicep's `appSettings` module parameter plus
    the objects functionapp.bicep unions into its `appsettings` config resource."""
    main = template("main.bicep")
    app = template("modules/functionapp.bicep")
    config = next(
        body(r)
        for r in app["resources"].values()
        if r["type"] == "Microsoft.Web/sites/config" and body(r)["name"] == "appsettings"
    )
    union = config["properties"]["function"]
    assert union["type"] == "union", "appsettings must be union(appSettings, <host objects>...)"
    module = next(
        m for m in main["modules"].values() if m["detail"]["path"] == "modules/functionapp.bicep"
    )
    settings: dict[str, Setting] = {}
    for arg in union["parameters"].values():
        if arg in app["parameters"]:
            source, origin = body(module)["params"][arg], "main.bicep"
        else:
            source, origin = app["variables"][arg]["value"], "modules/functionapp.bicep"
        assert isinstance(source, dict), f"{arg} must be an object literal"
        for name, expr in source.items():
            assert name not in settings, f"app setting {name} is set twice"
            settings[name] = Setting(name, expr, origin)
    return settings


def literal(setting: Setting) -> str | None:
    """The setting's value when it is a constant or a main.bicep parameter's default."""
    expr = setting.expr
    if setting.origin != "main.bicep" or not isinstance(expr, str | int | bool):
        return None
    main = template("main.bicep")
    if isinstance(expr, str) and expr in main["parameters"]:
        value = default(main, expr)
        return None if isinstance(value, dict | list) or value is None else str(value)
    if isinstance(expr, str) and expr in symbols(main):
        return None
    return str(expr)
