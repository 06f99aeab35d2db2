"""CLI tests: `devicemon` runs in-process (cli.main.run) with the environment a user would
export, against the real local stack."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.main import run
from local import stack as local_stack
from local.graphsim.admin import SimAdmin
from shared.runtime import Runtime
from shared.settings import Settings
from tests.cli.seed import Fleet, isolated_settings, seed_fleet, settings_env

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


async def devicemon(capsys: pytest.CaptureFixture[str], env: dict[str, str], *argv: str) -> Result:
    capsys.readouterr()
    code = await run(list(argv), env)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return settings_env(settings)


@pytest.fixture
async def app_tables(runtime: Runtime) -> None:
    """The tables the function app creates on its first run (the CLI never creates one)."""
    await runtime.bookkeeping()


@pytest.fixture(scope="module")
def fleet_tenant() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="module")
def fleet_settings(stack: local_stack.Stack, fleet_tenant: str) -> Settings:
    return isolated_settings(stack, fleet_tenant)


@pytest.fixture(scope="module")
def fleet_sim(stack: local_stack.Stack, fleet_tenant: str) -> Iterator[SimAdmin]:
    with SimAdmin(stack.graph_root, fleet_tenant) as admin:
        admin.ensure()
        yield admin


@pytest.fixture(scope="module")
async def fleet(fleet_settings: Settings, fleet_sim: SimAdmin) -> AsyncIterator[Fleet]:
    """Seeded once per module: the read-only commands share it."""
    runtime = Runtime(fleet_settings)
    try:
        yield await seed_fleet(runtime, fleet_sim)
    finally:
        await runtime.close()


@pytest.fixture
def fleet_env(fleet: Fleet, fleet_settings: Settings) -> dict[str, str]:
    return settings_env(fleet_settings)
