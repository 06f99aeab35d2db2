"""Loading a FunctionApp and describing its functions from their declared bindings."""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import typing
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import azure.functions as func

log = logging.getLogger("devhost")

TriggerKind = Literal["http", "servicebus", "timer", "other"]
NO_ANNOTATION: Any = inspect.Parameter.empty
ALL_KINDS: frozenset[str] = frozenset({"http", "servicebus", "timer"})

_KIND_BY_TYPE: dict[str, TriggerKind] = {
    "httpTrigger": "http",
    "serviceBusTrigger": "servicebus",
    "timerTrigger": "timer",
}

# FunctionApp.get_functions() builds and validates the functions; a second call fails
# on "duplicate" names, so the result is remembered per app object.
_FUNCTIONS_CACHE: weakref.WeakKeyDictionary[Any, list[func.Function]] = weakref.WeakKeyDictionary()


def _plain(value: Any) -> Any:
    """Binding dicts hold decorator enums; turn them into the strings function.json carries."""
    if isinstance(value, Enum):
        return value.value if isinstance(value.value, str) else value.name
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class BindingInfo:
    """One binding of a function as function.json would show it (camelCase keys)."""

    name: str
    type: str
    direction: str  # "in" | "out" | "inout"
    props: dict[str, Any]


@dataclass
class FunctionSpec:
    """What the dev host needs to know to run one function."""

    name: str
    kind: TriggerKind
    trigger: BindingInfo
    bindings: list[BindingInfo]
    user_function: Callable[..., Any]
    is_async: bool
    parameters: list[str]
    annotations: dict[str, Any] = field(default_factory=dict)
    # Resolved return annotation, or NO_ANNOTATION when the function declares none.
    return_annotation: Any = None
    has_retry_policy: bool = False

    @property
    def trigger_arg(self) -> str:
        return self.trigger.name


def _binding_info(binding: Any) -> BindingInfo:
    props = _plain(dict(binding.get_dict_repr()))
    direction_value = props.pop("direction", None)
    numeric = getattr(binding, "direction", None)
    direction = (
        {0: "in", 1: "out", 2: "inout"}.get(numeric, "in")
        if isinstance(numeric, int)
        else str(direction_value or "in").lower()
    )
    return BindingInfo(
        name=str(props.get("name", binding.name)),
        type=str(props.get("type", binding.type)),
        direction=direction,
        props=props,
    )


def _return_annotation(user_function: Callable[..., Any]) -> Any:
    """The return annotation as the worker sees it (string annotations resolved)."""
    try:
        hints = typing.get_type_hints(user_function)
    except Exception:  # unresolvable forward references: the worker would not check either
        return NO_ANNOTATION
    return hints.get("return", NO_ANNOTATION)


def get_functions(app: Any) -> list[func.Function]:
    """app.get_functions(), called at most once per app object."""
    cached = _FUNCTIONS_CACHE.get(app)
    if cached is None:
        cached = list(app.get_functions())
        _FUNCTIONS_CACHE[app] = cached
    return cached


def describe_functions(app: Any) -> list[FunctionSpec]:
    """A FunctionSpec per function the app declares (all trigger kinds, unsupported included)."""
    specs: list[FunctionSpec] = []
    for function in get_functions(app):
        trigger = function.get_trigger()
        if trigger is None:  # get_functions() already rejects these; keep mypy honest
            continue
        trigger_info = _binding_info(trigger)
        bindings = [_binding_info(b) for b in function.get_bindings()]
        user_function = function.get_user_function()
        # The worker awaits coroutine functions on its loop and runs the rest in a thread.
        target = inspect.unwrap(user_function)
        is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(user_function)
        try:
            signature = inspect.signature(user_function)
            parameters = list(signature.parameters)
            annotations = {
                n: p.annotation
                for n, p in signature.parameters.items()
                if p.annotation is not inspect.Parameter.empty
            }
        except (TypeError, ValueError):
            parameters, annotations = [trigger_info.name], {}
        return_annotation = _return_annotation(user_function)
        specs.append(
            FunctionSpec(
                name=str(function.get_function_name()),
                kind=_KIND_BY_TYPE.get(trigger_info.type, "other"),
                trigger=trigger_info,
                bindings=bindings,
                user_function=user_function,
                is_async=is_async,
                parameters=parameters,
                annotations=annotations,
                return_annotation=return_annotation,
                has_retry_policy=function.get_setting("retry_policy") is not None,
            )
        )
    return specs


def load_app(target: str, root: str | Path | None = None) -> Any:
    """Import "module:attribute" (attribute defaults to "app"), the way the worker finds it.

    The worker imports function_app.py from the script root, so that directory goes on
    sys.path first; relative imports inside the app then behave as they do in Azure.
    """
    module_name, _, attribute = target.partition(":")
    attribute = attribute or "app"
    root_dir = str(Path(root).resolve()) if root is not None else str(Path.cwd())
    if root_dir not in sys.path:
        sys.path.insert(0, root_dir)
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attribute.split("."):
        obj = getattr(obj, part)
    if not hasattr(obj, "get_functions"):
        raise TypeError(f"{target} is {type(obj).__name__}, not a FunctionApp")
    return obj


def normalize_only(only: Iterable[str] | str | None) -> frozenset[str]:
    """The set of trigger kinds to run from e.g. "http,timer" or ["servicebus"]."""
    if only is None:
        return ALL_KINDS
    items = only.split(",") if isinstance(only, str) else list(only)
    kinds = frozenset(i.strip().lower() for i in items if i.strip())
    aliases = {"sb": "servicebus", "service-bus": "servicebus", "timers": "timer"}
    kinds = frozenset(aliases.get(k, k) for k in kinds)
    unknown = kinds - ALL_KINDS
    if unknown:
        raise ValueError(f"unknown trigger kind(s) {sorted(unknown)}; use {sorted(ALL_KINDS)}")
    return kinds
