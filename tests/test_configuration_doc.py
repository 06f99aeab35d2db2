"""docs/configuration.md tells the truth: every setting the code reads, the sample sets or the
templates set has a row; each row's default is the one `Settings.from_env` applies; its `sample`
and `Azure` columns say what local.settings.sample.json and infra/ really do."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "configuration.md").read_text("utf-8")
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text("utf-8"))["Values"]
MAIN_BICEP = (ROOT / "infra" / "main.bicep").read_text("utf-8")
APP_BICEP = (ROOT / "infra" / "modules" / "functionapp.bicep").read_text("utf-8")
PARAMETERS = (ROOT / "infra" / "main.parameters.json").read_text("utf-8")
REQUIRED = {"GRAPH_CLIENT_STATE": "a-client-state"}


def rows() -> dict[str, list[str]]:
    """setting -> [default, what it does, sample, Azure], from every table of the doc."""
    found = {}
    for line in DOC.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        named = (
            re.fullmatch(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[0])
            if line.startswith("| `")
            else None
        )
        if named:
            assert len(cells) == 5, line
            assert named.group(1) not in found, f"{named.group(1)} has two rows"
            found[named.group(1)] = cells[1:]
    return found


ROWS = rows()


class Recording(Mapping[str, str]):
    """An environment that remembers every name asked of it."""

    def __init__(self, values: dict[str, str]) -> None:
        self.data = values
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.data[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return self.data.get(key, default)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def read_by_settings() -> set[str]:
    env = Recording(dict(REQUIRED))
    Settings.from_env(env)
    return env.asked


def set_in_bicep() -> set[str]:
    block = MAIN_BICEP[
        MAIN_BICEP.index("appSettings: {") : MAIN_BICEP.index(
            "\n    }\n", MAIN_BICEP.index("appSettings: {")
        )
    ]
    names = set(re.findall(r"^\s+([A-Za-z_][A-Za-z0-9_]*): ", block, re.M)) - {"appSettings"}
    for var in ("hostSettings", "urlSettings"):
        start = APP_BICEP.index(f"var {var} = {{")
        body = APP_BICEP[start : APP_BICEP.index("\n}", start)]
        names |= set(re.findall(r"^\s+([A-Za-z_][A-Za-z0-9_]*): ", body, re.M))
    return names


def bound_by_function_app() -> set[str]:
    return set(re.findall(r'"%([A-Za-z_][A-Za-z0-9_]*)%"', (ROOT / "function_app.py").read_text()))


def test_every_setting_the_code_reads_or_infra_sets_has_a_row() -> None:
    wanted = read_by_settings() | bound_by_function_app() | set_in_bicep()
    wanted |= {k for k in SAMPLE if not k.startswith("//")}
    assert wanted - set(ROWS) == set(), "settings missing from docs/configuration.md"


def test_every_row_is_a_setting_something_uses() -> None:
    used = read_by_settings() | bound_by_function_app() | set_in_bicep() | set(SAMPLE)
    used |= set(re.findall(r'"([A-Z][A-Z0-9_]+)"', (ROOT / "shared" / "telemetry.py").read_text()))
    assert set(ROWS) - used == set(), "rows for settings nothing reads or sets"


def test_the_settings_module_points_to_this_document() -> None:
    assert "docs/configuration.md" in (ROOT / "shared" / "settings.py").read_text()


@pytest.mark.parametrize("name", sorted(read_by_settings() - set(REQUIRED)))
def test_the_documented_default_is_the_one_applied(name: str) -> None:
    default = ROWS[name][0]
    if default in ("none", "(empty)"):
        shown = ""
    else:
        literal = re.fullmatch(r"`([^`]*)`", default)
        assert literal, f"{name}: default {default!r} is neither `value`, (empty) nor none"
        shown = literal.group(1)
    assert Settings.from_env({**REQUIRED, name: shown}) == Settings.from_env(REQUIRED)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_the_sample_column_says_what_the_sample_does(name: str) -> None:
    assert ROWS[name][2] == ("yes" if name in SAMPLE else "no")


@pytest.mark.parametrize("name", sorted(ROWS))
def test_the_azure_column_says_what_the_templates_do(name: str) -> None:
    azure = ROWS[name][3]
    assert azure.startswith("not set") is (name not in set_in_bicep()), azure
    line = re.search(rf"^\s+{name}: (.*)$", MAIN_BICEP + APP_BICEP, re.M)
    for param in re.findall(r"param `([A-Za-z]+)`", azure):
        assert line, name
        if "Key Vault reference" in azure:  # the secret goes to Key Vault, the setting refers to it
            assert "Microsoft.KeyVault" in line.group(1)
            assert re.search(rf":\s*{param}\s*$", MAIN_BICEP, re.M), f"{param} is not passed on"
        else:
            assert re.search(rf"\b{param}\b", line.group(1)), f"{name} from {param}"
    for variable in re.findall(r"azd `([A-Z_]+)`", azure):
        assert f"${{{variable}" in PARAMETERS, variable
    fixed = re.fullmatch(r"fixed `([^`]*)`", azure)
    if fixed:
        assert re.search(
            rf"^\s+{name}: '{re.escape(fixed.group(1))}'$", MAIN_BICEP + APP_BICEP, re.M
        )
