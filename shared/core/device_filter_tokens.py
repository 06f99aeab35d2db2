"""How the text of a filter-for-devices rule splits into tokens: punctuation, quoted strings
with their escapes, and words. Escapes from entra-docs `groups-dynamic-membership.md` ("Supported
values"): a double quote inside a value is written `" and a single quote ''; the docs give no
other, so any other backtick or lone quote inside a string is refused (device_filter.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass


class Refused(Exception):
    """The rule says something devicemon will not interpret, at `position`."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "(", ")", "[", "]", ",", "string", "word", "other", "end"
    text: str
    position: int
    value: str = ""  # a string token's unescaped value


_WORD = re.compile(r"-?[A-Za-z_][A-Za-z0-9_.]*")
_PUNCTUATION = "()[],"
_STOPS = set(_PUNCTUATION) | {'"', "'", "`"}


def _string(rule: str, start: int) -> tuple[str, int]:
    """Read a quoted string from `start` (its opening quote); return its value and the offset
    after it."""
    quote = rule[start]
    out: list[str] = []
    i = start + 1
    while i < len(rule):
        char = rule[i]
        pair = rule[i : i + 2]
        if pair == '`"':
            out.append('"')
            i += 2
        elif pair == "''":
            out.append("'")
            i += 2
        elif char == quote:
            return "".join(out), i + 1
        elif char == "`":
            raise Refused(i, 'a backtick inside a string escapes only a double quote (`")')
        elif char in "'\"":
            escape = "''" if char == "'" else '`"'
            raise Refused(i, f"a lone {char} inside a string (the docs escape it as {escape})")
        else:
            out.append(char)
            i += 1
    raise Refused(start, "the string is never closed")


def tokens(rule: str) -> list[Token]:
    found: list[Token] = []
    i = 0
    while i < len(rule):
        char = rule[i]
        if char.isspace():
            i += 1
        elif char in _PUNCTUATION:
            found.append(Token(char, char, i))
            i += 1
        elif char in "\"'":
            value, end = _string(rule, i)
            found.append(Token("string", rule[i:end], i, value))
            i = end
        elif char == "`":
            raise Refused(i, "a backtick outside a string (the docs' escape works inside one)")
        else:
            end = i
            while end < len(rule) and not rule[end].isspace() and rule[end] not in _STOPS:
                end += 1
            text = rule[i:end]
            found.append(Token("word" if _WORD.fullmatch(text) else "other", text, i))
            i = end
    found.append(Token("end", "", len(rule)))
    return found


def describe(token: Token) -> str:
    if token.kind == "end":
        return "the end of the rule"
    hint = " (a typographic dash, not '-')" if token.text[:1] in "\u2013\u2014\u2212" else ""
    return f"{token.text!r}{hint}"
