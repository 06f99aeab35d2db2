"""ASP.NET-style route templates ("devices/{id:int}/{*rest}") as the Functions host matches them."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote

log = logging.getLogger("devhost")

_PARAM = re.compile(r"\{([^{}]+)\}")

# Regex fragments for the route constraints that restrict the text shape; the
# numeric/length ones are checked after matching (see _check).
_SHAPES = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?i:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": r"[{(]?[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}[)}]?",
    "decimal": r"-?\d+(?:\.\d+)?",
    "double": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
    "float": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
    "datetime": r"[^/]+",
}
_CHECKED = {"min", "max", "range", "length", "minlength", "maxlength", "regex"}


@dataclass
class _Param:
    name: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constraints: list[tuple[str, str]] = field(default_factory=list)


def _parse_param(text: str, template: str) -> _Param:
    catch_all = text.startswith("*")
    text = text.lstrip("*")
    default = None
    if "=" in text:
        text, default = text.split("=", 1)
    optional = text.endswith("?")
    text = text.rstrip("?")
    name, *raw_constraints = text.split(":")
    if not name.isidentifier() and not name.replace("-", "_").isidentifier():
        raise ValueError(f"route {template!r}: bad parameter name {name!r}")
    constraints: list[tuple[str, str]] = []
    for raw in raw_constraints:
        kind, _, arg = raw.partition("(")
        constraints.append((kind.lower(), arg[:-1] if arg.endswith(")") else arg))
    # A default makes the parameter optional, as in ASP.NET Core.
    return _Param(
        name, optional or catch_all or default is not None, catch_all, default, constraints
    )


def _check(value: str, constraints: list[tuple[str, str]]) -> bool:
    """Constraints that need more than a shape regex."""
    for kind, arg in constraints:
        try:
            if kind == "min" and int(value) < int(arg):
                return False
            if kind == "max" and int(value) > int(arg):
                return False
            if kind == "range":
                low, high = (int(x) for x in arg.split(","))
                if not low <= int(value) <= high:
                    return False
            if kind == "length":
                bounds = [int(x) for x in arg.split(",")]
                low, high = (bounds[0], bounds[0]) if len(bounds) == 1 else bounds
                if not low <= len(value) <= high:
                    return False
            if kind == "minlength" and len(value) < int(arg):
                return False
            if kind == "maxlength" and len(value) > int(arg):
                return False
            if kind == "regex" and re.fullmatch(arg, value, re.IGNORECASE) is None:
                return False
            if kind == "guid":
                uuid.UUID(value.strip("{}()"))
        except ValueError:
            return False
    return True


@dataclass
class RouteTemplate:
    """A compiled route template; `match()` returns route params or None."""

    template: str
    regex: re.Pattern[str]
    params: dict[str, _Param]
    precedence: tuple[int, ...]

    @classmethod
    def compile(cls, prefix: str, route: str) -> RouteTemplate:
        template = "/".join(p for p in (prefix.strip("/"), route.strip("/")) if p)
        pattern = ""
        params: dict[str, _Param] = {}
        precedence: list[int] = []
        segments = template.split("/") if template else []
        for index, segment in enumerate(segments):
            pieces = _PARAM.split(segment)  # literal, param, literal, param, ...
            if len(pieces) == 1:
                pattern += "/" + re.escape(segment)
                precedence.append(1)  # literal segments win over parameters
                continue
            segment_pattern = ""
            segment_optional = False
            rank = 2
            for i, piece in enumerate(pieces):
                if i % 2 == 0:
                    segment_pattern += re.escape(piece)
                    continue
                param = _parse_param(piece, template)
                if param.catch_all and index != len(segments) - 1:
                    raise ValueError(f"route {template!r}: catch-all must be the last segment")
                params[param.name] = param
                shapes = [_SHAPES[k] for k, _ in param.constraints if k in _SHAPES]
                for kind, _ in param.constraints:
                    if kind not in _SHAPES and kind not in _CHECKED:
                        log.warning(
                            "route %r: constraint %r not enforced by devhost", template, kind
                        )
                body = ".*" if param.catch_all else (shapes[0] if shapes else "[^/]+")
                segment_pattern += f"(?P<{param.name.replace('-', '_')}>{body})"
                if param.optional and len(pieces) == 3 and not pieces[0] and not pieces[2]:
                    segment_optional = True
                rank = max(rank, 5 if param.catch_all else 4 if param.optional else 3)
                if param.constraints and rank == 3:
                    rank = 2
            pattern += f"(?:/{segment_pattern})?" if segment_optional else "/" + segment_pattern
            precedence.append(rank)
        regex = re.compile("^" + pattern + "/?$", re.IGNORECASE)
        return cls(template, regex, params, tuple(precedence))

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Route params for a raw (still percent-encoded) path, or None when it does not match."""
        path = raw_path.split("?", 1)[0]
        m = self.regex.match(path)
        if m is None:
            return None
        values: dict[str, str] = {}
        for name, param in self.params.items():
            raw = m.group(name.replace("-", "_"))
            if raw is None or raw == "":
                if param.default is not None:
                    values[name] = param.default
                continue
            # Like ASP.NET Core, decode everything except an encoded "/", which stays "%2F".
            value = unquote(re.sub("%2[fF]", "%252F", raw))
            if not _check(value, param.constraints):
                return None
            values[name] = value
        return values
