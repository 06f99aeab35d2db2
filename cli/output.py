"""Terminal output: plain text that reads without colour, colour only on a TTY without NO_COLOR,
tables with aligned columns, CSV and JSON. Text from Graph is cleaned of control characters
before it reaches a terminal (a device name must not be able to move the cursor)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import textwrap
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO


def clean(value: object, limit: int | None = None) -> str:
    """Printable text: control characters become '?', and long values end in '…'."""
    text = "" if value is None else str(value)
    text = "".join("?" if unicodedata.category(ch).startswith("C") else ch for ch in text)
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """'1 page', '2 pages', '0 pages'."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Console:
    """Where and how to print. stdout carries results; stderr carries progress and errors."""

    def __init__(self, env: Mapping[str, str], out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = sys.stderr
        self.colour = self._isatty(self.out) and "NO_COLOR" not in env
        self.err_is_tty = self._isatty(self.err)

    @staticmethod
    def _isatty(stream: TextIO) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def bold(self, text: str) -> str:
        return self.paint(text, "1")

    def dim(self, text: str) -> str:
        return self.paint(text, "2")

    def good(self, text: str) -> str:
        return self.paint(text, "32")

    def bad(self, text: str) -> str:
        return self.paint(text, "31")

    def warn(self, text: str) -> str:
        return self.paint(text, "33")

    def verdict(self, eligible: bool) -> str:
        return self.good("eligible") if eligible else self.bad("INELIGIBLE")

    def say(self, text: str = "") -> None:
        with self._reader_may_leave():
            print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A message for the person, not for a pipe: goes to stderr."""
        with contextlib.suppress(BrokenPipeError):
            print(text, file=self.err, flush=True)

    def json(self, value: Any) -> None:
        with self._reader_may_leave():
            print(json.dumps(value, indent=2, ensure_ascii=False), file=self.out, flush=True)

    def csv(self, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        with self._reader_may_leave():
            writer = csv.writer(self.out, lineterminator="\n")
            writer.writerow(headers)
            for row in rows:
                # A leading =, +, - or @ would be a formula to a spreadsheet: neutralise it.
                writer.writerow([_csv_safe(v) for v in row])
            self.out.flush()

    @contextlib.contextmanager
    def _reader_may_leave(self) -> Iterator[None]:
        try:
            yield
        except BrokenPipeError:
            raise OutputClosed from None

    def silence(self) -> None:
        """Point stdout at /dev/null, so that the interpreter's last flush at exit does not
        meet the closed pipe again (Python's docs, signal module: "Note on SIGPIPE")."""
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.out.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # not a file descriptor (a test's buffer): nothing will flush it at exit


class OutputClosed(Exception):
    """Whoever read stdout went away (`devicemon fleet --csv | head`): not a failure."""


def _csv_safe(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  ") -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    cells = [[clean(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]) for i, v in enumerate(values)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return "\n".join([line(list(headers)), *(line(r) for r in cells)])


def pairs(items: Sequence[tuple[str, object]], indent: str = "  ") -> str:
    """'label   value' lines, labels padded to the longest."""
    width = max((len(label) for label, _ in items), default=0)
    return "\n".join(f"{indent}{label.ljust(width)}  {clean(value)}" for label, value in items)


def wrap(text: str, width: int = 88) -> str:
    """A help paragraph wrapped for RawDescriptionHelpFormatter (which keeps line breaks)."""
    return textwrap.fill(" ".join(text.split()), width)
